//! keel's performance harness: the stack's cost against a bare hyper-util client and against
//! reqwest-middleware, measured side by side in one run.
//!
//! Run everything with `cargo run --release -p keel-bench --bin bench -- all`; see
//! `BENCHMARKS.md` at the repository root for the figures and the machine they came from.
