//! The lifecycle of an issued code, filed under its reference.
//!
//! A [`CodeReference`] is a short, random, non-secret name for one issued code that a case
//! worker may note in their own system. It is drawn independently of the code, so neither
//! can be derived from the other. Its [`CodeStatusRecord`] holds no personal data: the
//! test type, the day of each change, and the code's store lookup (a one-way hash of the
//! code's hash, which can remove the code but cannot open its sealed record).

use std::fmt;

use ephemera_proto::DayNumber;
use ephemera_proto::report::ReportType;

use super::{API_KEY_ID_LEN, StoreError, decode};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

/// Crockford's base-32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters in a reference: 60 random bits.
pub const REFERENCE_LEN: usize = 12;

/// A short, random, non-secret name of one issued code (12 Crockford base-32 characters).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CodeReference([u8; REFERENCE_LEN]);

impl CodeReference {
    /// A fresh random reference, drawn independently of any code.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut out = [0u8; REFERENCE_LEN];
        let mut bytes = [0u8; REFERENCE_LEN];
        rng.fill_bytes(&mut bytes);
        for (slot, byte) in out.iter_mut().zip(bytes) {
            *slot = ALPHABET[usize::from(byte & 31)];
        }
        CodeReference(out)
    }

    /// Reads a reference as a person may type it: case-insensitive, hyphens and spaces
    /// ignored, `I`/`L` read as `1` and `O` as `0` (Crockford). `None` for anything else
    /// or another length.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > 4 * REFERENCE_LEN {
            return None;
        }
        let mut out = [0u8; REFERENCE_LEN];
        let mut len = 0;
        for c in text.chars().filter(|c| *c != '-' && *c != ' ') {
            let c = match c.to_ascii_uppercase() {
                'I' | 'L' => '1',
                'O' => '0',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || len == REFERENCE_LEN {
                return None;
            }
            out[len] = c as u8;
            len += 1;
        }
        (len == REFERENCE_LEN).then_some(CodeReference(out))
    }

    /// The reference as shown: 12 characters of `0-9A-Z` less `ILOU`.
    pub fn as_str(&self) -> &str {
        // Only ALPHABET bytes are ever stored (generate, parse, and a checked decode).
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The bytes it is filed under in the store.
    pub fn as_bytes(&self) -> &[u8; REFERENCE_LEN] {
        &self.0
    }
}

impl fmt::Display for CodeReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CodeReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodeReference({})", self.as_str())
    }
}

/// Where a code stands, with the day of its last change (days only, never a finer time).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CodeState {
    /// Issued and not yet used, revoked or expired.
    Issued,
    /// Redeemed by a phone on this day.
    Used(DayNumber),
    /// Revoked by staff on this day: it can no longer be redeemed.
    Revoked(DayNumber),
    /// Found unused after its expiry day by the retention sweep, which counted it expired
    /// on this day (its expiry day). Appended last: records stored before keep their
    /// encoding.
    Expired(DayNumber),
}

impl CodeState {
    /// The counter a change to this state adds to (none for [`CodeState::Issued`]).
    pub fn metric(self) -> Option<(super::StatsMetric, DayNumber)> {
        use super::StatsMetric;
        match self {
            CodeState::Issued => None,
            CodeState::Used(day) => Some((StatsMetric::CodesUsed, day)),
            CodeState::Revoked(day) => Some((StatsMetric::CodesRevoked, day)),
            CodeState::Expired(day) => Some((StatsMetric::CodesExpired, day)),
        }
    }
}

/// What the store keeps of one issued code under its reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeStatusRecord {
    /// The code's store lookup (a one-way hash of its hash): enough to remove it, not to
    /// open its sealed record or to find the code.
    pub lookup: [u8; 32],
    /// The test type its certificate would carry.
    pub test_type: ReportType,
    /// The day it was issued.
    pub issued: DayNumber,
    /// The day it stops working (it works until its exact expiry, which only the code opens).
    pub expires: DayNumber,
    /// Its state.
    pub state: CodeState,
    /// The id of the API key that issued it, if one did: only that key may look it up or
    /// revoke it. (Staff accounts are not named here; the audit trail names them.)
    pub issued_by_key: Option<[u8; API_KEY_ID_LEN]>,
}

/// The layout of [`CodeStatusRecord`] before `issued_by_key` (development builds of
/// issue 17): read as issued by staff.
#[derive(Deserialize)]
struct CodeStatusRecordV1 {
    lookup: [u8; 32],
    test_type: ReportType,
    issued: DayNumber,
    expires: DayNumber,
    state: CodeState,
}

impl CodeStatusRecord {
    /// Reads a stored record, of this layout or of the one before `issued_by_key`.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for bytes of neither.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        decode(bytes, "code-status").or_else(|error| {
            let old: CodeStatusRecordV1 = decode(bytes, "code-status").map_err(|_| error)?;
            Ok(CodeStatusRecord {
                lookup: old.lookup,
                test_type: old.test_type,
                issued: old.issued,
                expires: old.expires,
                state: old.state,
                issued_by_key: None,
            })
        })
    }
}

/// A code's status as reported on `day`: an issued code past its expiry day is expired.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CodeStatus {
    /// Issued and usable.
    Issued,
    /// Redeemed, on this day.
    Used(DayNumber),
    /// Expired unused, on this day (the day of its expiry).
    Expired(DayNumber),
    /// Revoked, on this day.
    Revoked(DayNumber),
}

impl CodeStatus {
    /// Its name in the API and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeStatus::Issued => "issued",
            CodeStatus::Used(_) => "used",
            CodeStatus::Expired(_) => "expired",
            CodeStatus::Revoked(_) => "revoked",
        }
    }

    /// The day of the change to this status (issued: `None`, see the record's day).
    pub fn day(self) -> Option<DayNumber> {
        match self {
            CodeStatus::Issued => None,
            CodeStatus::Used(day) | CodeStatus::Expired(day) | CodeStatus::Revoked(day) => {
                Some(day)
            }
        }
    }
}

impl CodeStatusRecord {
    /// Its status on `today`. A code still issued after its expiry day is expired (on its
    /// expiry day itself it may still work until its exact expiry, so it reads as issued).
    pub fn status(&self, today: DayNumber) -> CodeStatus {
        match self.state {
            CodeState::Issued if today > self.expires => CodeStatus::Expired(self.expires),
            CodeState::Issued => CodeStatus::Issued,
            CodeState::Used(day) => CodeStatus::Used(day),
            CodeState::Revoked(day) => CodeStatus::Revoked(day),
            CodeState::Expired(day) => CodeStatus::Expired(day),
        }
    }

    /// The counter changes of moving this record to `state`: the new state's counter up
    /// by one, and, for a code the sweep had found expired (only a clock stepped back lets
    /// it be redeemed after), the expired counter down by one. Nothing when the state does
    /// not change or the record has left [`CodeState::Issued`] otherwise.
    pub fn count_change(&self, state: CodeState) -> super::StatsTally {
        let mut tally = super::StatsTally::new();
        if self.state == state || !matches!(self.state, CodeState::Issued | CodeState::Expired(_)) {
            return tally;
        }
        let key = |(metric, day)| super::StatsKey {
            day,
            metric,
            test_type: Some(self.test_type),
        };
        if let Some(old) = self.state.metric() {
            tally.add(key(old), -1);
        }
        if let Some(new) = state.metric() {
            tally.add(key(new), 1);
        }
        tally
    }
}

/// What [`super::ReportStore::revoke_code`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The code was removed and is revoked from now on.
    Revoked,
    /// No code has this reference.
    Unknown,
    /// The code was no longer there to revoke (used, or expired and purged); its record
    /// says which.
    NotRevocable(CodeStatusRecord),
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn a_reference_is_twelve_crockford_characters_and_reads_back_as_typed() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let reference = CodeReference::generate(&mut rng);
        let text = reference.to_string();
        assert_eq!(text.len(), REFERENCE_LEN);
        assert!(text.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(CodeReference::parse(&text), Some(reference));
        let typed = format!("{}-{} ", &text[..6], &text[6..]).to_ascii_lowercase();
        assert_eq!(CodeReference::parse(&typed), Some(reference));
        assert_eq!(
            CodeReference::parse("oooo-llll-iiii"),
            CodeReference::parse("000011111111")
        );
        assert_ne!(CodeReference::generate(&mut rng), reference);
        for bad in [
            "",
            "0123456789A",
            "0123456789ABC",
            "0123456789AU",
            "0123456789A€",
        ] {
            assert_eq!(CodeReference::parse(bad), None, "{bad}");
        }
    }

    /// A confirmed code issued on day 100, expiring on day 101, still issued.
    fn issued_on_100() -> CodeStatusRecord {
        CodeStatusRecord {
            lookup: [0; 32],
            test_type: ReportType::ConfirmedTest,
            issued: DayNumber(100),
            expires: DayNumber(101),
            state: CodeState::Issued,
            issued_by_key: None,
        }
    }

    #[test]
    fn an_issued_code_reads_expired_only_after_its_expiry_day() {
        let record = issued_on_100();
        assert_eq!(record.status(DayNumber(101)), CodeStatus::Issued);
        assert_eq!(
            record.status(DayNumber(102)),
            CodeStatus::Expired(DayNumber(101))
        );
        let used = CodeStatusRecord {
            state: CodeState::Used(DayNumber(101)),
            ..record
        };
        assert_eq!(
            used.status(DayNumber(300)),
            CodeStatus::Used(DayNumber(101))
        );
        assert_eq!(used.status(DayNumber(300)).as_str(), "used");
        let swept = CodeStatusRecord {
            state: CodeState::Expired(DayNumber(101)),
            ..record.clone()
        };
        assert_eq!(
            swept.status(DayNumber(300)),
            CodeStatus::Expired(DayNumber(101))
        );
    }

    #[test]
    fn stored_states_keep_their_positions_and_expired_is_appended() {
        let day = DayNumber(3);
        for (state, tag) in [
            (CodeState::Issued, 0),
            (CodeState::Used(day), 1),
            (CodeState::Revoked(day), 2),
            (CodeState::Expired(day), 3),
        ] {
            let bytes = postcard::to_allocvec(&state).unwrap();
            assert_eq!(bytes[0], tag, "{state:?}");
            assert_eq!(postcard::from_bytes::<CodeState>(&bytes).unwrap(), state);
        }
    }

    #[test]
    fn a_state_change_counts_once_and_an_expired_code_redeemed_moves_its_count() {
        use crate::store::{StatsKey, StatsMetric};
        let record = issued_on_100();
        let key = |metric, day| StatsKey {
            day: DayNumber(day),
            metric,
            test_type: Some(ReportType::ConfirmedTest),
        };
        let used = record.count_change(CodeState::Used(DayNumber(101)));
        assert_eq!(
            used.changes().map(|(k, v)| (*k, v)).collect::<Vec<_>>(),
            vec![(key(StatsMetric::CodesUsed, 101), 1)]
        );
        let already = CodeStatusRecord {
            state: CodeState::Used(DayNumber(101)),
            ..record.clone()
        };
        assert!(
            already
                .count_change(CodeState::Used(DayNumber(101)))
                .is_empty()
        );
        assert!(
            already
                .count_change(CodeState::Revoked(DayNumber(102)))
                .is_empty()
        );
        let expired = CodeStatusRecord {
            state: CodeState::Expired(DayNumber(101)),
            ..record
        };
        let moved: Vec<_> = expired
            .count_change(CodeState::Used(DayNumber(102)))
            .changes()
            .map(|(k, v)| (*k, v))
            .collect();
        assert_eq!(
            moved,
            vec![
                (key(StatsMetric::CodesExpired, 101), -1),
                (key(StatsMetric::CodesUsed, 102), 1)
            ]
        );
    }

    #[test]
    fn a_record_of_the_layout_before_key_issuers_still_reads() {
        #[derive(Serialize)]
        struct V1 {
            lookup: [u8; 32],
            test_type: ReportType,
            issued: DayNumber,
            expires: DayNumber,
            state: CodeState,
        }
        let old = postcard::to_allocvec(&V1 {
            lookup: [4; 32],
            test_type: ReportType::ConfirmedTest,
            issued: DayNumber(7),
            expires: DayNumber(8),
            state: CodeState::Revoked(DayNumber(8)),
        })
        .unwrap();
        let record = CodeStatusRecord::decode(&old).unwrap();
        assert_eq!(
            (record.lookup, record.state, record.issued_by_key),
            ([4; 32], CodeState::Revoked(DayNumber(8)), None)
        );
        let new = CodeStatusRecord {
            issued_by_key: Some([9; API_KEY_ID_LEN]),
            ..record
        };
        let bytes = postcard::to_allocvec(&new).unwrap();
        assert_eq!(CodeStatusRecord::decode(&bytes).unwrap(), new);
        assert!(CodeStatusRecord::decode(&old[..10]).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_what_it_shows(text in "\\PC{0,60}") {
            if let Some(reference) = CodeReference::parse(&text) {
                prop_assert_eq!(CodeReference::parse(reference.as_str()), Some(reference));
                prop_assert_eq!(reference.as_str().len(), REFERENCE_LEN);
            }
        }
    }
}
