//! The HMAC that binds a certificate to one report without showing the report.

use std::fmt;

use rand_core::CryptoRng;
use ring::hmac;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::report::ReportContents;
use crate::revision::HmacBinding;

/// The phone's random HMAC key for one report. It stays on the phone until the upload, so
/// the authority that signs the HMAC never learns the report.
///
/// Zeroised on drop; `Debug` does not print it.
#[derive(Clone, Serialize, Deserialize)]
pub struct ReportHmacKey(pub [u8; 32]);

impl ReportHmacKey {
    /// Draws a fresh key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        ReportHmacKey(key)
    }

    /// HMAC-SHA256 over the report's version 1 HMAC input, which covers the entries only
    /// ([`ReportContents::hmac_input`] with [`HmacBinding::Unbound`]).
    pub fn authenticate(&self, contents: &ReportContents) -> ReportHmac {
        self.authenticate_bound(contents, HmacBinding::Unbound)
    }

    /// HMAC-SHA256 over the report's canonical HMAC input with `binding`
    /// ([`ReportContents::hmac_input`]): version 2 covers the revision key too.
    pub fn authenticate_bound(
        &self,
        contents: &ReportContents,
        binding: HmacBinding,
    ) -> ReportHmac {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&key, &contents.hmac_input(binding)).as_ref());
        ReportHmac(out)
    }
}

impl PartialEq for ReportHmacKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for ReportHmacKey {}

impl Drop for ReportHmacKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for ReportHmacKey {}

impl fmt::Debug for ReportHmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReportHmacKey(<redacted>)")
    }
}

/// An HMAC-SHA256 over a report; compared in constant time.
#[derive(Copy, Clone, Eq, Serialize, Deserialize)]
pub struct ReportHmac(pub [u8; 32]);

impl PartialEq for ReportHmac {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for ReportHmac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReportHmac({}…)", hex::encode(&self.0[..4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pet::EncounterToken;
    use crate::report::PublishedToken;
    use crate::time::DayNumber;

    #[test]
    fn the_key_is_zeroised_on_drop_and_never_shown() {
        fn zeroised_on_drop<T: ZeroizeOnDrop>() {}
        zeroised_on_drop::<ReportHmacKey>();
        let key = ReportHmacKey([0xa7; 32]);
        let shown = format!("{key:?} {:?}", Some(&key));
        assert!(!shown.contains(&hex::encode(key.0)));
        assert!(!shown.contains("167, 167"), "{shown}");
    }

    #[test]
    fn hmac_depends_on_key_and_contents() {
        let contents = ReportContents::Pet(vec![PublishedToken {
            day: DayNumber(20_000),
            token: EncounterToken([1; 16]),
        }]);
        let other = ReportContents::Pet(vec![PublishedToken {
            day: DayNumber(20_001),
            token: EncounterToken([1; 16]),
        }]);
        let k1 = ReportHmacKey([1; 32]);
        let k2 = ReportHmacKey([2; 32]);
        assert_eq!(
            k1.authenticate(&contents),
            k1.authenticate(&contents.clone())
        );
        assert_ne!(k1.authenticate(&contents), k2.authenticate(&contents));
        assert_ne!(k1.authenticate(&contents), k1.authenticate(&other));
        assert!(!format!("{k1:?}").contains("0101"));
    }
}
