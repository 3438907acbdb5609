//! Report classes: what the blind signer learns about a report (`docs/PROTOCOL.md` §4.4).

use serde::{Deserialize, Serialize};

use crate::report::ReportType;
use crate::time::DayNumber;
use crate::token::TokenError;

/// Days before the epoch up to which an onset is [`OnsetClass::Recent`].
const RECENT_ONSET_DAYS: u32 = 6;

/// How long before the key's epoch (the verify day) the symptom onset lay, in coarse
/// buckets: the node needs it to judge `days_since_onset`, and coarse buckets keep the
/// classes (and so the signer's view) few.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OnsetClass {
    /// No symptom onset known.
    None,
    /// 0 to 6 days before the epoch.
    Recent,
    /// 7 or more days before the epoch.
    Earlier,
}

impl OnsetClass {
    /// The bucket of `onset` for a key of `epoch`; `Err` for an onset after the epoch.
    ///
    /// # Errors
    /// [`TokenError::OnsetMismatch`] for an onset after `epoch`.
    pub fn of(onset: Option<DayNumber>, epoch: DayNumber) -> Result<OnsetClass, TokenError> {
        let Some(onset) = onset else {
            return Ok(OnsetClass::None);
        };
        match epoch.0.checked_sub(onset.0) {
            None => Err(TokenError::OnsetMismatch),
            Some(days) if days <= RECENT_ONSET_DAYS => Ok(OnsetClass::Recent),
            Some(_) => Ok(OnsetClass::Earlier),
        }
    }

    /// The byte the commitment and key id carry.
    pub fn code(self) -> u8 {
        match self {
            OnsetClass::None => 0,
            OnsetClass::Recent => 1,
            OnsetClass::Earlier => 2,
        }
    }
}

/// The class of report a token key signs for: the report type and the onset bucket. The
/// node needs both for its report rules (`gaen` keys take their type and days since onset
/// from it); the signer learns nothing else.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TokenClass {
    /// The report type the token authorises.
    pub test_type: ReportType,
    /// The symptom onset's bucket.
    pub onset: OnsetClass,
}

impl TokenClass {
    /// Every class a key is made for, per epoch: confirmed, likely and self-reported
    /// reports with each onset bucket, and revocations (which carry no onset). `Recursive`
    /// reports are never authorised by a code.
    pub const ALL: [TokenClass; 10] = {
        use OnsetClass::{Earlier, None, Recent};
        use ReportType::{ConfirmedClinicalDiagnosis, ConfirmedTest, Revoked, SelfReport};
        const fn c(test_type: ReportType, onset: OnsetClass) -> TokenClass {
            TokenClass { test_type, onset }
        }
        [
            c(ConfirmedTest, None),
            c(ConfirmedTest, Recent),
            c(ConfirmedTest, Earlier),
            c(ConfirmedClinicalDiagnosis, None),
            c(ConfirmedClinicalDiagnosis, Recent),
            c(ConfirmedClinicalDiagnosis, Earlier),
            c(SelfReport, None),
            c(SelfReport, Recent),
            c(SelfReport, Earlier),
            c(Revoked, None),
        ]
    };

    /// The class of a report of `test_type` with `onset`, signed on day `epoch`.
    ///
    /// # Errors
    /// [`TokenError::OnsetMismatch`] for an onset after `epoch`;
    /// [`TokenError::UnsupportedClass`] for a type no key is made for.
    pub fn of(
        test_type: ReportType,
        onset: Option<DayNumber>,
        epoch: DayNumber,
    ) -> Result<TokenClass, TokenError> {
        let class = TokenClass {
            test_type,
            onset: OnsetClass::of(onset, epoch)?,
        };
        class.check()?;
        Ok(class)
    }

    /// Whether keys are made for this class.
    ///
    /// # Errors
    /// [`TokenError::UnsupportedClass`] otherwise.
    pub fn check(self) -> Result<(), TokenError> {
        if Self::ALL.contains(&self) {
            Ok(())
        } else {
            Err(TokenError::UnsupportedClass)
        }
    }

    /// `u8(GAEN report type) ‖ u8(onset bucket)`: how the commitment and key id encode it.
    pub fn bytes(self) -> [u8; 2] {
        [self.test_type.code(), self.onset.code()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onset_buckets_have_exact_edges() {
        let epoch = DayNumber(20_000);
        assert_eq!(OnsetClass::of(None, epoch), Ok(OnsetClass::None));
        assert_eq!(OnsetClass::of(Some(epoch), epoch), Ok(OnsetClass::Recent));
        assert_eq!(
            OnsetClass::of(Some(DayNumber(19_994)), epoch),
            Ok(OnsetClass::Recent)
        );
        assert_eq!(
            OnsetClass::of(Some(DayNumber(19_993)), epoch),
            Ok(OnsetClass::Earlier)
        );
        assert_eq!(
            OnsetClass::of(Some(DayNumber(20_001)), epoch),
            Err(TokenError::OnsetMismatch)
        );
    }

    #[test]
    fn recursive_reports_and_revocations_with_an_onset_have_no_class() {
        let epoch = DayNumber(20_000);
        assert_eq!(
            TokenClass::of(ReportType::Recursive, None, epoch),
            Err(TokenError::UnsupportedClass)
        );
        assert_eq!(
            TokenClass::of(ReportType::Revoked, Some(epoch), epoch),
            Err(TokenError::UnsupportedClass)
        );
        assert!(TokenClass::of(ReportType::Revoked, None, epoch).is_ok());
        let distinct: std::collections::BTreeSet<[u8; 2]> =
            TokenClass::ALL.iter().map(|c| c.bytes()).collect();
        assert_eq!(distinct.len(), TokenClass::ALL.len());
    }
}
