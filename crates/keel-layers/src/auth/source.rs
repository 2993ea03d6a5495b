use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{Token, TokenError};

/// The future a [`TokenSource`] returns.
pub type FetchFuture = Pin<Box<dyn Future<Output = Result<Token, TokenError>> + Send + 'static>>;

/// The future of [`TokenSource::invalidate`].
pub type InvalidateFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Something that can fetch a fresh [`Token`]: an OAuth grant, a metadata server, a file,
/// or a store shared by many processes.
///
/// The trait is object safe; [`TokenCache`](super::TokenCache) holds an `Arc<dyn TokenSource>`,
/// and `Arc<dyn TokenSource>` and `Box<dyn TokenSource>` are token sources themselves, so a
/// source can wrap another one. The returned future owns what it needs (`'static`), so a fetch
/// can outlive the caller that started it and be shared by every caller waiting for it.
/// Retrying transient failures is the source's job (see `ClientCredentials`); the cache calls
/// `fetch` once per refresh.
///
/// # A token store shared by many processes
///
/// A cache is one process's view. When a token is shared through a store (Redis, a
/// database), a 401 in one process must drop the token *in the store*, or the next fetch
/// hands the revoked token straight back. [`invalidate`](TokenSource::invalidate) is that
/// hook: [`TokenCache::invalidate`](super::TokenCache::invalidate) calls it exactly when it
/// drops its current token (once per rejected token, however many 401s name it), and the
/// cache's next fetch starts only after the returned future completed. A shared store
/// implements it as an atomic compare-and-delete ("delete the stored token if it is still
/// `rejected`"), so one revocation causes one fetch for the whole fleet, and wraps an inner
/// source (the grant) that it calls when the store holds no token:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use keel_layers::auth::{
///     token_source_fn, FetchFuture, InvalidateFuture, Token, TokenCache, TokenSource,
/// };
///
/// /// Stands in for a store shared by many processes (one `Mutex` here).
/// #[derive(Clone)]
/// struct SharedStore {
///     slot: Arc<Mutex<Option<Token>>>,
///     grant: Arc<dyn TokenSource>,
/// }
///
/// impl TokenSource for SharedStore {
///     fn fetch(&self) -> FetchFuture {
///         let store = self.clone();
///         Box::pin(async move {
///             if let Some(token) = store.slot.lock().unwrap().clone() {
///                 return Ok(token);
///             }
///             let token = store.grant.fetch().await?;
///             *store.slot.lock().unwrap() = Some(token.clone());
///             Ok(token)
///         })
///     }
///
///     fn invalidate(&self, rejected: &Token) -> InvalidateFuture {
///         let (slot, rejected) = (self.slot.clone(), rejected.id());
///         Box::pin(async move {
///             let mut slot = slot.lock().unwrap();
///             // Compare, then delete: a token another process stored since stays.
///             if slot.as_ref().is_some_and(|t| t.id() == rejected) {
///                 *slot = None;
///             }
///         })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let grant: Arc<dyn TokenSource> = Arc::new(token_source_fn(|| async { Token::bearer("t", None) }));
/// let store = SharedStore { slot: Arc::default(), grant };
/// let (a, b) = (TokenCache::new(store.clone()), TokenCache::new(store));
/// let first = a.token().await.unwrap();
/// assert_eq!(b.token().await.unwrap().id(), first.id(), "one fetch for both processes");
/// a.invalidate(&first);
/// assert_ne!(a.token().await.unwrap().id(), first.id(), "the store dropped it too");
/// # }
/// ```
///
/// Closures adapt with [`token_source_fn`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a token source",
    note = "`TokenCache::new` takes a `TokenSource`: `ClientCredentials::new(..)`, or a closure wrapped in `token_source_fn(|| async {{ Token::bearer(..) }})`"
)]
pub trait TokenSource: Send + Sync + 'static {
    /// Fetches a new token.
    fn fetch(&self) -> FetchFuture;

    /// `rejected` was refused by a server: forget it wherever this source keeps tokens, if it
    /// is still the one kept there. The cache's next fetch waits for the returned future.
    ///
    /// The default does nothing (a source that keeps no token).
    fn invalidate(&self, rejected: &Token) -> InvalidateFuture {
        let _ = rejected;
        Box::pin(std::future::ready(()))
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    fn fetch(&self) -> FetchFuture {
        (**self).fetch()
    }

    fn invalidate(&self, rejected: &Token) -> InvalidateFuture {
        (**self).invalidate(rejected)
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Box<T> {
    fn fetch(&self) -> FetchFuture {
        (**self).fetch()
    }

    fn invalidate(&self, rejected: &Token) -> InvalidateFuture {
        (**self).invalidate(rejected)
    }
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
