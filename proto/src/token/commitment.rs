//! The commitment a token signs: one report, its class, its day and its federation.

use std::fmt;

use ring::digest;
use serde::{Deserialize, Serialize};

use crate::report::ReportContents;
use crate::revision::HmacBinding;
use crate::time::DayNumber;
use crate::token::TokenClass;

/// Domain label of the commitment.
const COMMITMENT_LABEL: &[u8] = b"ephemera/upload-token/v2";
/// Domain label of an audience derived from a federation's name.
const AUDIENCE_LABEL: &[u8] = b"ephemera/audience/v2";

/// The federation a token is meant for: a token verifies only at nodes of this audience
/// (issue 31, item 6).
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Audience(pub [u8; 32]);

impl Audience {
    /// `SHA-256("ephemera/audience/v2" ‖ name)`: the audience of the federation `name`.
    pub fn named(name: &str) -> Audience {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(AUDIENCE_LABEL);
        ctx.update(name.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Audience(out)
    }
}

impl fmt::Debug for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Audience({}…)", hex::encode(&self.0[..4]))
    }
}

/// The report side of a token: everything the commitment covers besides the key's epoch
/// and class. There is no exact symptom onset: the class's onset bucket is all a token
/// states, so uploads of one class and day cannot be told apart by their onset.
#[derive(Copy, Clone, Debug)]
pub struct TokenStatement<'a> {
    /// The federation the upload is for.
    pub audience: &'a Audience,
    /// The keys or tokens.
    pub contents: &'a ReportContents,
    /// The revision key and role (`docs/PROTOCOL.md` §4.2, §5.4).
    pub binding: HmacBinding,
}

impl TokenStatement<'_> {
    /// The commitment for a key of `epoch` and `class`:
    ///
    /// ```text
    /// SHA-256("ephemera/upload-token/v2" ‖ audience (32) ‖ u32le(epoch) ‖ class (2)
    ///         ‖ hmac_input(contents, binding))
    /// ```
    ///
    /// with `hmac_input` as in §4.2 (its own label first, the entries sorted).
    pub fn commitment(&self, epoch: DayNumber, class: TokenClass) -> Commitment {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(COMMITMENT_LABEL);
        ctx.update(&self.audience.0);
        ctx.update(&epoch.0.to_le_bytes());
        ctx.update(&class.bytes());
        ctx.update(&self.contents.hmac_input(self.binding));
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Commitment(out)
    }
}

/// The 32 bytes a token's signature covers (the RFC 9474 message).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Commitment(pub [u8; 32]);

impl fmt::Debug for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Commitment({}…)", hex::encode(&self.0[..4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pet::EncounterToken;
    use crate::report::{PublishedToken, ReportType};
    use crate::revision::RevisionSecret;
    use crate::token::OnsetClass;

    fn contents(byte: u8) -> ReportContents {
        ReportContents::Pet(vec![PublishedToken {
            day: DayNumber(20_000),
            token: EncounterToken([byte; 16]),
        }])
    }

    #[test]
    fn every_covered_field_changes_the_commitment() {
        let key = RevisionSecret::from_seed(&[9; 32]).key();
        let (a, b) = (Audience::named("north"), Audience::named("south"));
        let (c1, c2) = (contents(1), contents(2));
        let base = TokenStatement {
            audience: &a,
            contents: &c1,
            binding: HmacBinding::Upload(key),
        };
        let class = TokenClass {
            test_type: ReportType::ConfirmedTest,
            onset: OnsetClass::None,
        };
        let epoch = DayNumber(20_001);
        let reference = base.commitment(epoch, class);
        let variants = [
            TokenStatement {
                audience: &b,
                ..base
            }
            .commitment(epoch, class),
            TokenStatement {
                contents: &c2,
                ..base
            }
            .commitment(epoch, class),
            TokenStatement {
                binding: HmacBinding::Revision(key),
                ..base
            }
            .commitment(epoch, class),
            base.commitment(DayNumber(20_002), class),
            base.commitment(
                epoch,
                TokenClass {
                    test_type: ReportType::SelfReport,
                    ..class
                },
            ),
        ];
        for (i, variant) in variants.iter().enumerate() {
            assert_ne!(*variant, reference, "field {i} is not covered");
        }
        assert_eq!(base.commitment(epoch, class), reference);
    }
}
