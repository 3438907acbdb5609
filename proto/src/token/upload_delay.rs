//! When a phone uploads after its verify (`docs/PROTOCOL.md` §4.4): the delay that keeps the
//! upload's time from naming the verify it follows.

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::time::{SECONDS_PER_DAY, UnixTime};

/// Seconds left at the end of the upload day for retries before the token's key expires.
const RETRY_MARGIN_SECONDS: u64 = 1800;

/// How long a phone waits between the verify answer and the upload.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadDelay {
    /// At a uniformly random instant of the UTC day after the verify (the default), up to
    /// half an hour before its end, within the token's validity (`TOKEN_UPLOAD_DAYS`). The
    /// upload's time is then independent of the verify's time within its day: the authority
    /// cannot tell which of the day's verifies an upload follows better than chance (among
    /// those of its class). Reports reach phones 0 to 48 hours later than without a delay.
    #[default]
    NextDay,
    /// A uniformly random delay of up to this many seconds. Shorter, but an upload is then
    /// tied to the verifies of the window before it: better than chance for the authority
    /// whenever verifies are spread over more than that window.
    Uniform {
        /// The longest delay.
        max_seconds: u64,
    },
    /// None: the upload follows the verify at once. For tests; the authority links every
    /// upload to its verify by time.
    Immediate,
}

impl UploadDelay {
    /// When a phone whose verify was answered at `verified_at` uploads.
    pub fn upload_at(self, verified_at: UnixTime, rng: &mut impl CryptoRng) -> UnixTime {
        let mut uniform = |span: u64| if span == 0 { 0 } else { rng.next_u64() % span };
        match self {
            UploadDelay::NextDay => {
                let next_midnight = (verified_at.0 / SECONDS_PER_DAY + 1) * SECONDS_PER_DAY;
                UnixTime(next_midnight + uniform(SECONDS_PER_DAY - RETRY_MARGIN_SECONDS))
            }
            UploadDelay::Uniform { max_seconds } => {
                verified_at.plus_seconds(uniform(max_seconds.saturating_add(1)))
            }
            UploadDelay::Immediate => verified_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn the_next_day_delay_lands_inside_the_next_day_before_its_margin() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let day = 19_675u64;
        for offset in [0, 1, 43_200, SECONDS_PER_DAY - 1] {
            let verified = UnixTime(day * SECONDS_PER_DAY + offset);
            for _ in 0..200 {
                let at = UploadDelay::NextDay.upload_at(verified, &mut rng);
                assert_eq!(at.day().0 as u64, day + 1);
                assert!(at.0 % SECONDS_PER_DAY < SECONDS_PER_DAY - RETRY_MARGIN_SECONDS);
            }
        }
        let at = UploadDelay::Uniform { max_seconds: 60 }.upload_at(UnixTime(100), &mut rng);
        assert!((100..=160).contains(&at.0));
        assert_eq!(
            UploadDelay::Immediate.upload_at(UnixTime(7), &mut rng),
            UnixTime(7)
        );
    }
}
