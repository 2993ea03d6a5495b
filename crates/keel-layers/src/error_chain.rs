//! Finding a typed error anywhere in an error's [`source`](std::error::Error::source) chain.
//!
//! Errors reach a caller wrapped: a `BoxError` around a client's error around an
//! `std::io::Error`, or a layer's typed error around a token error. Every layer and client
//! that classifies failures walks the chain the same way, with this one function.
//!
//! # Example
//!
//! ```
//! use std::io;
//! use keel_layers::error_chain::find;
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("request failed")]
//! struct Wrapper(#[source] io::Error);
//!
//! let err: tower::BoxError = Box::new(Wrapper(io::ErrorKind::ConnectionReset.into()));
//! let io = find::<io::Error>(err.as_ref()).unwrap();
//! assert_eq!(io.kind(), io::ErrorKind::ConnectionReset);
//! ```

use std::error::Error;

/// The first error of type `T` in `err`'s chain (`err` itself first), if any.
pub fn find<'a, T: Error + 'static>(err: &'a (dyn Error + 'static)) -> Option<&'a T> {
    chain(err).find_map(|e| e.downcast_ref::<T>())
}

/// `err`, then each of its [`source`](Error::source)s in turn.
pub fn chain<'a>(
    err: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    let mut next = Some(err);
    std::iter::from_fn(move || {
        let current = next?;
        next = current.source();
        Some(current)
    })
}
