//! keel-sim (work in progress).
