//! The optional second factor: TOTP (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits, as
//! every authenticator app reads an `otpauth://` URI), and its secret sealed at rest.
//!
//! The secret is 160 random bits, shown once at enrolment as base32 and as an `otpauth://`
//! URI. The store keeps it sealed with ChaCha20-Poly1305 under a key derived from the node's
//! code pepper (`keys/`, never in the database) and bound to the account's name: a copy of
//! the database alone does not give it away. A code is accepted for the step before, the
//! step of and the step after the node's clock, and each step at most once per account
//! (the node remembers the last step used, in memory).

use std::fmt;

use ephemera_proto::UnixTime;
use ephemera_proto::auth::CodePepper;
use rand_core::CryptoRng;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce};
use ring::hmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Seconds per TOTP step.
pub(crate) const STEP_SECONDS: u64 = 30;
/// Digits of a code.
pub(crate) const DIGITS: u32 = 6;
/// Bytes of a secret (RFC 4226 recommends 160 bits).
const SECRET_LEN: usize = 20;
const SEAL_LABEL: &[u8] = b"ephemera/accounts/totp-seal/v1";
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A TOTP secret. `Debug` hides it; it is wiped when dropped.
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<[u8; SECRET_LEN]>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// Draws a new secret.
    pub fn generate(rng: &mut impl CryptoRng) -> TotpSecret {
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        rng.fill_bytes(bytes.as_mut());
        TotpSecret(bytes)
    }

    /// The secret as an authenticator app takes it typed in: base32, no padding.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32(self.0.as_ref()))
    }

    /// The secret as a base32 text, if it is one of the right length (tests, tools).
    pub fn from_base32(text: &str) -> Option<TotpSecret> {
        let mut bits: u64 = 0;
        let mut held = 0;
        let mut out = Zeroizing::new([0u8; SECRET_LEN]);
        let mut at = 0;
        for c in text.bytes() {
            let value = BASE32.iter().position(|&b| b == c)? as u64;
            bits = (bits << 5) | value;
            held += 5;
            if held >= 8 {
                held -= 8;
                *out.get_mut(at)? = (bits >> held) as u8;
                at += 1;
            }
        }
        (at == SECRET_LEN).then_some(TotpSecret(out))
    }

    /// The `otpauth://` URI an authenticator app reads (from a QR code, say).
    pub fn uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        let issuer = percent(issuer);
        Zeroizing::new(format!(
            "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            percent(account),
            self.to_base32().as_str(),
        ))
    }

    /// The code of step `step` (RFC 4226's HOTP over the step number).
    pub fn code_at_step(&self, step: u64) -> u32 {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, self.0.as_ref());
        let tag = hmac::sign(&key, &step.to_be_bytes());
        let mac = tag.as_ref();
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let value = u32::from_be_bytes([
            mac[offset] & 0x7f,
            mac[offset + 1],
            mac[offset + 2],
            mac[offset + 3],
        ]);
        value % 10u32.pow(DIGITS)
    }

    /// The code at `now`, as six digits (tests, tools).
    pub fn code_at(&self, now: UnixTime) -> String {
        format!("{:06}", self.code_at_step(now.0 / STEP_SECONDS))
    }

    /// The step `code` belongs to, if it is the code of the step before, at or after `now`
    /// and later than `last_step` (a step already used is refused). Compared in constant
    /// time.
    pub fn check(&self, code: &str, now: UnixTime, last_step: Option<u64>) -> Option<u64> {
        let code = code.trim();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = now.0 / STEP_SECONDS;
        let mut found = None;
        for step in [current.saturating_sub(1), current, current + 1] {
            let expected = format!("{:06}", self.code_at_step(step));
            let fresh = last_step.is_none_or(|last| step > last);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && fresh {
                found = Some(step);
            }
        }
        found
    }
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut bits: u64 = 0;
    let mut held = 0;
    for &byte in bytes {
        bits = (bits << 8) | u64::from(byte);
        held += 8;
        while held >= 5 {
            held -= 5;
            out.push(BASE32[((bits >> held) & 31) as usize] as char);
        }
    }
    if held > 0 {
        out.push(BASE32[((bits << (5 - held)) & 31) as usize] as char);
    }
    out
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Seals and opens TOTP secrets for the store, under a key derived from the code pepper.
pub(crate) struct TotpSeal {
    key: LessSafeKey,
}

impl fmt::Debug for TotpSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSeal(<redacted>)")
    }
}

impl TotpSeal {
    /// The seal of the node whose code pepper is `pepper`.
    pub(crate) fn new(pepper: &CodePepper) -> TotpSeal {
        TotpSeal {
            key: ephemera_node_core::keys::pepper_seal_key(pepper, SEAL_LABEL),
        }
    }

    /// `nonce ‖ ciphertext ‖ tag`, bound to `account`.
    pub(crate) fn seal(
        &self,
        account: &str,
        secret: &TotpSecret,
        rng: &mut impl CryptoRng,
    ) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut body = secret.0.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(account.as_bytes()),
                &mut body,
            )
            .expect("a 20-byte secret fits");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        zeroize::Zeroize::zeroize(&mut body);
        out
    }

    /// The secret sealed for `account`, or `None` if `sealed` is not one.
    pub(crate) fn open(&self, account: &str, sealed: &[u8]) -> Option<TotpSecret> {
        if sealed.len() != NONCE_LEN + SECRET_LEN + CHACHA20_POLY1305.tag_len() {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN]).ok()?;
        let mut body = Zeroizing::new(sealed[NONCE_LEN..].to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(account.as_bytes()), &mut body)
            .ok()?;
        let mut out = Zeroizing::new([0u8; SECRET_LEN]);
        out.copy_from_slice(plain);
        Some(TotpSecret(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_test_vectors() {
        // RFC 6238 Appendix B, SHA-1, seed "12345678901234567890", 8 digits there: the
        // last 6 of each are ours.
        let secret = TotpSecret(Zeroizing::new(*b"12345678901234567890"));
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(secret.code_at(UnixTime(time)), code, "{time}");
        }
        assert_eq!(
            secret.to_base32().as_str(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let back = TotpSecret::from_base32(&secret.to_base32()).unwrap();
        assert_eq!(back.0.as_ref(), secret.0.as_ref());
        assert!(TotpSecret::from_base32("GEZDGNBV").is_none(), "too short");
        assert!(TotpSecret::from_base32("gezdgnbvgy3tqojqgezdgnbvgy3tqojq").is_none());
    }

    #[test]
    fn codes_are_taken_within_a_step_and_once() {
        let secret = TotpSecret::generate(&mut rand::rng());
        let now = UnixTime(1_800_000_000);
        let code = secret.code_at(now);
        let step = now.0 / STEP_SECONDS;
        assert_eq!(secret.check(&code, now, None), Some(step));
        assert_eq!(secret.check(&code, now.plus_seconds(30), None), Some(step));
        assert_eq!(
            secret.check(&code, now.plus_seconds(90), None),
            None,
            "too late"
        );
        assert_eq!(secret.check(&code, now, Some(step)), None, "used once");
        assert_eq!(secret.check("12345", now, None), None);
        assert_eq!(secret.check("abcdef", now, None), None);
        assert!(!format!("{secret:?}").contains(secret.to_base32().as_str()));
        let uri = secret.uri("Ephemera", "case worker");
        assert!(uri.starts_with("otpauth://totp/Ephemera:case%20worker?secret="));
    }

    #[test]
    fn sealed_secrets_open_only_for_their_account_and_pepper() {
        let mut rng = rand::rng();
        let seal = TotpSeal::new(&CodePepper::generate(&mut rng));
        let secret = TotpSecret::generate(&mut rng);
        let sealed = seal.seal("alice", &secret, &mut rng);
        assert!(
            !sealed.windows(SECRET_LEN).any(|w| w == secret.0.as_ref()),
            "not in clear"
        );
        let opened = seal.open("alice", &sealed).unwrap();
        assert_eq!(opened.0.as_ref(), secret.0.as_ref());
        assert!(seal.open("bob", &sealed).is_none(), "bound to the account");
        let other = TotpSeal::new(&CodePepper::generate(&mut rng));
        assert!(other.open("alice", &sealed).is_none());
        assert!(seal.open("alice", &sealed[1..]).is_none());
    }

    proptest::proptest! {
        /// Any text offered as a TOTP code (or a secret) is checked or refused, never a
        /// panic; a sealed secret's bytes altered anywhere never open.
        #[test]
        fn any_offered_code_or_sealed_secret_is_refused_cleanly(text in "\\PC{0,12}", flip in 0usize..48) {
            let mut rng = rand::rng();
            let secret = TotpSecret::generate(&mut rng);
            let now = UnixTime(1_800_000_000);
            if let Some(step) = secret.check(&text, now, None) {
                proptest::prop_assert_eq!(secret.code_at_step(step), text.trim().parse::<u32>().unwrap());
            }
            let _ = TotpSecret::from_base32(&text);
            let seal = TotpSeal::new(&CodePepper::generate(&mut rng));
            let mut sealed = seal.seal("alice", &secret, &mut rng);
            sealed[flip] ^= 1;
            proptest::prop_assert!(seal.open("alice", &sealed).is_none());
        }
    }
}
