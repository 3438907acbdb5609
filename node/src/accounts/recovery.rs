//! Recovery codes: ten one-time codes of 80 bits each, shown once when TOTP is enrolled (or
//! renewed), kept only as SHA-256 hashes bound to the account, and each spent on use.

use rand_core::CryptoRng;
use ring::digest;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Codes in a set.
pub(crate) const CODES_PER_SET: usize = 10;
/// Characters of a code without its dashes (Crockford base32, 5 bits each: 80 bits).
const CODE_CHARS: usize = 16;
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LABEL: &[u8] = b"ephemera/accounts/recovery-code/v1";

/// Draws a new set: the codes to show once (`XXXX-XXXX-XXXX-XXXX`) and the hashes to keep.
pub(crate) fn generate(
    account: &str,
    rng: &mut impl CryptoRng,
) -> (Vec<Zeroizing<String>>, Vec<[u8; 32]>) {
    (0..CODES_PER_SET)
        .map(|_| {
            let mut code = Zeroizing::new(String::with_capacity(CODE_CHARS + 3));
            for i in 0..CODE_CHARS {
                if i > 0 && i % 4 == 0 {
                    code.push('-');
                }
                code.push(ALPHABET[(rng.next_u32() & 31) as usize] as char);
            }
            let hash = hash(account, &code).expect("a generated code is well formed");
            (code, hash)
        })
        .unzip()
}

/// The hash of `code` for `account`, if it is shaped like a code: dashes and spaces are
/// ignored, letters in either case, and I, L, O read as 1, 1, 0.
pub(crate) fn hash(account: &str, code: &str) -> Option<[u8; 32]> {
    let mut normal = Zeroizing::new(Vec::with_capacity(CODE_CHARS));
    for c in code.bytes().filter(|b| *b != b'-' && *b != b' ') {
        let c = match c.to_ascii_uppercase() {
            b'I' | b'L' => b'1',
            b'O' => b'0',
            other => other,
        };
        if !ALPHABET.contains(&c) || normal.len() == CODE_CHARS {
            return None;
        }
        normal.push(c);
    }
    if normal.len() != CODE_CHARS {
        return None;
    }
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(LABEL);
    ctx.update(&(account.len() as u64).to_be_bytes());
    ctx.update(account.as_bytes());
    ctx.update(&normal);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Some(out)
}

/// Spends `code` from `kept` if it is one of them: true when it was (it is then gone).
/// Every kept hash is compared, in constant time.
pub(crate) fn spend(account: &str, code: &str, kept: &mut Vec<[u8; 32]>) -> bool {
    let Some(hash) = hash(account, code) else {
        return false;
    };
    let mut found = None;
    for (i, candidate) in kept.iter().enumerate() {
        if bool::from(candidate.ct_eq(&hash)) {
            found = Some(i);
        }
    }
    match found {
        Some(i) => {
            kept.remove(i);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spent_once_and_bound_to_their_account() {
        let (codes, mut kept) = generate("alice", &mut rand::rng());
        assert_eq!(codes.len(), CODES_PER_SET);
        assert_eq!(codes[0].len(), 19);
        assert!(
            kept.iter()
                .all(|h| !hex::encode(h).contains(&codes[0].replace('-', "")))
        );
        let mut bobs = kept.clone();
        assert!(!spend("bob", &codes[0], &mut bobs), "another account's");
        assert!(spend("alice", &codes[0].to_lowercase(), &mut kept));
        assert_eq!(kept.len(), CODES_PER_SET - 1);
        assert!(!spend("alice", &codes[0], &mut kept), "spent");
        assert!(spend("alice", &codes[1].replace('-', " "), &mut kept));
        assert!(!spend("alice", "not a code", &mut kept));
        assert!(
            !spend("alice", &format!("{}0", &*codes[2]), &mut kept),
            "too long"
        );
    }

    proptest::proptest! {
        /// Any text offered as a recovery code is hashed or refused, never a panic, and
        /// spends nothing unless it is one.
        #[test]
        fn any_offered_code_is_refused_cleanly(text in "\\PC{0,40}") {
            let (_, mut kept) = generate("alice", &mut rand::rng());
            let _ = hash("alice", &text);
            proptest::prop_assert!(!spend("alice", &text, &mut kept));
            proptest::prop_assert_eq!(kept.len(), CODES_PER_SET);
        }
    }
}
