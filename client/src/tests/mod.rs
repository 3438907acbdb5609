//! Tests of the phone core, stepped by a fake clock.

mod phone;
mod util;
