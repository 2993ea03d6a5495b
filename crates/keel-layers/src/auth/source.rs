use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::{Token, TokenError};

/// The future a [`TokenSource`] returns.
pub type FetchFuture = Pin<Box<dyn Future<Output = Result<Token, TokenError>> + Send + 'static>>;

/// Something that can fetch a fresh [`Token`]: an OAuth grant, a metadata server, a file.
///
/// The trait is object safe; [`TokenCache`](super::TokenCache) holds an `Arc<dyn TokenSource>`.
/// The returned future owns what it needs (`'static`), so a fetch can outlive the caller that
/// started it and be shared by every caller waiting for it. Retrying transient failures is
/// the source's job (see [`ClientCredentials`](super::ClientCredentials)); the cache calls
/// `fetch` once per refresh.
///
/// Closures adapt with [`token_source_fn`].
pub trait TokenSource: Send + Sync + 'static {
    /// Fetches a new token.
    fn fetch(&self) -> FetchFuture;
}

/// A [`TokenSource`] made from a closure, see [`token_source_fn`].
#[derive(Clone)]
pub struct TokenSourceFn<F> {
    f: F,
}

/// Makes a [`TokenSource`] from a closure returning a future of `Result<Token, TokenError>`.
///
/// ```
/// use keel_layers::auth::{token_source_fn, Token, TokenCache};
///
/// let tokens = TokenCache::new(token_source_fn(|| async {
///     Token::bearer("from-a-file", None)
/// }));
/// # drop(tokens);
/// ```
pub fn token_source_fn<F, Fut>(f: F) -> TokenSourceFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Token, TokenError>> + Send + 'static,
{
    TokenSourceFn { f }
}

impl<F, Fut> TokenSource for TokenSourceFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Token, TokenError>> + Send + 'static,
{
    fn fetch(&self) -> FetchFuture {
        Box::pin((self.f)())
    }
}

impl<F> fmt::Debug for TokenSourceFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSourceFn").finish_non_exhaustive()
    }
}
