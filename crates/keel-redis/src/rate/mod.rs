//! x
#[derive(Debug)]
pub struct RedisRateState;
