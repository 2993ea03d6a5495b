//! Behaviour of the whole layer against scripted mock services, in paused virtual time.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use tokio::time::{sleep, timeout, Instant};
use tower::{BoxError, Layer, ServiceExt};

use super::*;

use crate::test_support::*;

mod bodies;
mod events;
mod hints;
mod limits;
mod pacing;
mod rate_state;
mod tower_retry;
mod transport;
