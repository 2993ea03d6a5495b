//! Rate-limit backoff: `Retry-After`, jittered exponential backoff, budgets and cooperative pacing.
