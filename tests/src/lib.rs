//! Cross-crate tests of Ephemera live in `tests/tests/`: the real phone core
//! (`ephemera-client`) against the real node (`ephemera-node`). The simulator is the
//! `ephemera-sim` crate (`tests/sim/`) and the benchmarks `ephemera-bench` (`tests/bench/`).
#![forbid(unsafe_code)]
