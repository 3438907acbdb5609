//! Integration tests over real HTTP on 127.0.0.1 with ephemeral ports, one module per area.

mod cli;
mod errors;
mod flow;
mod lifecycle;
mod privacy;
mod throughput;
mod util;
