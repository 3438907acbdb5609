//! Tests of the phone core, stepped by a fake clock.

mod batch_log;
mod clock;
mod durable;
mod duration;
mod filter;
mod forgetting;
mod phone;
mod ratchet;
mod sunset;
mod token;
mod util;
#[cfg(feature = "venue")]
mod venue;
#[cfg(feature = "venue")]
mod venue_releases;
