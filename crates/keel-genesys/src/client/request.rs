//! Sending one API request through the stack and classifying its outcome.
