//! The `bench` binary: runs keel's performance measurements and prints their tables.

fn main() {}
