//! Test support for keel: real servers started by the tests themselves.
//!
//! Tests run against the real thing (a `redis-server` process, …) rather than a mock, so that
//! scripts, expiries and reconnects behave as in production. Each module starts its server on
//! a free loopback port and stops it when the test binary exits.

pub mod redis;
