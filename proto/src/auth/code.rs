//! One-time upload codes a case worker hands to a positive person.

use std::fmt;

use rand_core::CryptoRng;
use ring::hmac;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::CodeError;

/// Characters of a code: Crockford base32 (no I, L, O, U), 5 bits each.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a code: 16 × 5 = 80 bits of entropy (`docs/PROTOCOL.md` §4.1).
pub const CODE_LENGTH: usize = 16;
/// Domain label of the code hash.
const CODE_HASH_LABEL: &[u8] = b"ephemera/upload-code/v1";

/// A one-time upload code, e.g. `7K2M-9QXD-4HBT-0W3R`.
///
/// # Privacy
/// The code is a bearer secret until used: `Debug` hides it, and a node stores only its
/// [`CodeHash`]. [`UploadCode::reveal`] is for showing it once to the case worker.
#[derive(Clone)]
pub struct UploadCode(Zeroizing<String>);

impl UploadCode {
    /// Draws a new code with 80 bits of entropy from `rng`.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut text = String::with_capacity(CODE_LENGTH);
        for _ in 0..CODE_LENGTH {
            // Masking a uniform u32 to 5 bits keeps the draw uniform over 32 symbols.
            let symbol = (rng.next_u32() & 31) as usize;
            text.push(ALPHABET[symbol] as char);
        }
        UploadCode(Zeroizing::new(text))
    }

    /// Parses what a person typed: case, spaces and dashes are ignored, and the look-alike
    /// letters O, I and L read as 0, 1 and 1.
    ///
    /// # Errors
    /// [`CodeError::BadLength`] or [`CodeError::BadCharacter`].
    pub fn parse(input: &str) -> Result<Self, CodeError> {
        let mut text = String::with_capacity(CODE_LENGTH);
        for c in input.chars() {
            if c == '-' || c == ' ' {
                continue;
            }
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return Err(CodeError::BadCharacter);
            }
            if text.len() == CODE_LENGTH {
                return Err(CodeError::BadLength { got: input.len() });
            }
            text.push(c);
        }
        if text.len() != CODE_LENGTH {
            return Err(CodeError::BadLength { got: text.len() });
        }
        Ok(UploadCode(Zeroizing::new(text)))
    }

    /// The code for display, grouped by four (`XXXX-XXXX-XXXX-XXXX`). Show it once; never
    /// log it.
    pub fn reveal(&self) -> String {
        let groups: Vec<&str> = (0..CODE_LENGTH / 4)
            .map(|i| &self.0[i * 4..i * 4 + 4])
            .collect();
        groups.join("-")
    }

    /// The hash a node stores instead of the code.
    pub fn hash(&self, pepper: &CodePepper) -> CodeHash {
        let key = hmac::Key::new(hmac::HMAC_SHA256, pepper.0.as_ref());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(CODE_HASH_LABEL);
        ctx.update(self.0.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        CodeHash(out)
    }
}

impl fmt::Debug for UploadCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UploadCode(<redacted>)")
    }
}

/// A node's secret key for hashing codes, so a stolen database cannot be brute-forced
/// offline without it.
pub struct CodePepper(pub Zeroizing<[u8; 32]>);

impl CodePepper {
    /// Draws a new pepper.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut());
        CodePepper(bytes)
    }
}

impl fmt::Debug for CodePepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodePepper(<redacted>)")
    }
}

/// HMAC-SHA256(pepper, label ‖ code): what a node stores for an issued code.
#[derive(Copy, Clone, Eq, Serialize, Deserialize)]
pub struct CodeHash(pub [u8; 32]);

impl PartialEq for CodeHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn generated_codes_parse_back_and_differ() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let pepper = CodePepper::generate(&mut rng);
        let a = UploadCode::generate(&mut rng);
        let b = UploadCode::generate(&mut rng);
        assert_ne!(a.hash(&pepper), b.hash(&pepper));
        let shown = a.reveal();
        assert_eq!(shown.len(), CODE_LENGTH + 3);
        let typed = shown.to_lowercase().replace('-', " ");
        assert_eq!(
            UploadCode::parse(&typed).unwrap().hash(&pepper),
            a.hash(&pepper)
        );
    }

    #[test]
    fn look_alike_letters_are_forgiven() {
        let pepper = CodePepper(Zeroizing::new([1; 32]));
        let canonical = UploadCode::parse("0111-2345-6789-ABCD").unwrap();
        let typed = UploadCode::parse("oIL1 2345 6789 abcd").unwrap();
        assert_eq!(canonical.hash(&pepper), typed.hash(&pepper));
    }

    #[test]
    fn bad_codes_are_refused() {
        assert_eq!(
            UploadCode::parse("ABC").unwrap_err(),
            CodeError::BadLength { got: 3 }
        );
        assert_eq!(
            UploadCode::parse("0011-2345-6789-ABCDE").unwrap_err(),
            CodeError::BadLength { got: 20 }
        );
        assert_eq!(
            UploadCode::parse("0011-2345-6789-ABCU").unwrap_err(),
            CodeError::BadCharacter
        );
        assert_eq!(
            UploadCode::parse("0011-2345-6789-ABCé").unwrap_err(),
            CodeError::BadCharacter
        );
    }

    #[test]
    fn pepper_changes_the_hash() {
        let code = UploadCode::parse("0011234567890ABC").unwrap();
        assert_ne!(
            code.hash(&CodePepper(Zeroizing::new([1; 32]))),
            code.hash(&CodePepper(Zeroizing::new([2; 32])))
        );
    }

    #[test]
    fn debug_never_shows_the_code() {
        let code = UploadCode::parse("7K2M9QXD4HBT0W3R").unwrap();
        let shown = format!(
            "{code:?} {:?}",
            code.hash(&CodePepper(Zeroizing::new([0; 32])))
        );
        assert!(!shown.contains("7K2M"), "{shown}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(input in ".{0,40}") {
            let _ = UploadCode::parse(&input);
        }
    }
}
