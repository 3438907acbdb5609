//! Cross-crate tests, the population simulator and the benchmarks of Ephemera.
#![forbid(unsafe_code)]

pub mod bench;
