//! Integration tests over real HTTP on 127.0.0.1 with ephemeral ports, one module per area.

mod accounts;
mod api_keys;
mod audit;
mod backup;
mod batch_log;
mod blind_token;
mod cli;
mod clock;
mod codes;
mod contract;
mod crash;
mod decoys;
mod disk_full;
mod disk_reserve;
mod errors;
mod flow;
mod hostile;
mod keys;
mod lifecycle;
mod monitoring;
mod privacy;
mod revision;
mod serving;
mod throughput;
mod upgrade;
mod util;
