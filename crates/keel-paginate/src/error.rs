//! Why a page stream ended early.

/// The error a [`PageStream`](crate::PageStream) yields; after it the stream ends.
///
/// `index` counts the pages of this stream from 1 (after a resume too), so the message says
/// how far the export got without showing any cursor or link (they can hold credentials).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PageError<E> {
    /// The fetch function failed; the pages before this one were all yielded.
    #[error("fetching page {index} failed")]
    Fetch {
        /// Ordinal of the page that failed, from 1.
        index: u64,
        /// The fetch function's error.
        #[source]
        source: E,
    },
    /// The server sent a cursor or next link it had sent before: following it would loop.
    #[error("page {index} points back to an earlier page: the server's pagination loops")]
    Repeated {
        /// Ordinal of the page whose next position was a repeat, from 1.
        index: u64,
    },
    /// The stream yielded `limit` pages (see [`max_pages`](crate::PageStream::max_pages)) and
    /// the server still announced more.
    #[error("the server announced more than {limit} pages")]
    TooManyPages {
        /// The configured limit.
        limit: u64,
    },
}

impl<E> PageError<E> {
    /// The fetch function's error, if that is why the stream ended.
    pub fn into_fetch(self) -> Option<E> {
        match self {
            PageError::Fetch { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `Box<dyn Error + Send + Sync>`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed fetch error that is an [`Error`](std::error::Error), so a [`PageError`] holding it
/// is one too and `?` turns it into a [`BoxError`].
///
/// `PageError<E>` is an `Error` when `E` is one, so with a typed fetch error `?` already
/// converts it into a `BoxError` (std's blanket `From`). A `BoxError` itself is not an
/// `Error`, so neither is `PageError<BoxError>`, and no impl can fix that soundly: both
/// `impl Error for PageError<BoxError>` and `impl From<PageError<BoxError>> for BoxError`
/// overlap with std's blanket impls as far as coherence is concerned (std may one day
/// implement `Error` for `Box<dyn Error + Send + Sync>`). So the boxed case has its own
/// type, in either of two ways:
///
/// - declare the fetch function's error type as `FetchError`: `?` on a `BoxError` result
///   inside it converts (`impl From<BoxError> for FetchError`),
///   and every `PageError<FetchError>` the stream yields converts with `?`;
/// - or keep `BoxError` and convert at the `?`: `.map_err(PageError::boxed)?`.
///
/// Downcast a `BoxError` to `PageError<FetchError>` to tell a paging failure from others.
///
/// # Example
///
/// ```
/// use futures_util::TryStreamExt;
/// use keel_paginate::{BoxError, FetchError, Fetched, PageError, PageStream};
///
/// async fn call_api(page: u64) -> Result<Vec<u64>, BoxError> {
///     if page > 2 { Err("the API is down")? } else { Ok(vec![page]) }
/// }
///
/// async fn export() -> Result<Vec<u64>, BoxError> {
///     let mut items = PageStream::page_numbers(1, |page| async move {
///         let items = call_api(page).await?; // BoxError -> FetchError
///         Ok::<_, FetchError>(Fetched::new(items).with_total(Some(3)))
///     })
///     .items();
///     let mut seen = Vec::new();
///     while let Some(item) = items.try_next().await? { // PageError<FetchError> -> BoxError
///         seen.push(item);
///     }
///     Ok(seen)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let error = export().await.unwrap_err();
/// assert_eq!(error.to_string(), "fetching page 3 failed");
/// let page = error.downcast_ref::<PageError<FetchError>>().unwrap();
/// assert_eq!(std::error::Error::source(page).unwrap().to_string(), "the API is down");
/// # }
/// ```
pub struct FetchError(BoxError);

impl FetchError {
    /// Boxes any error (or message) as a fetch error.
    pub fn new(error: impl Into<BoxError>) -> Self {
        FetchError(error.into())
    }

    /// The fetch function's error.
    pub fn into_inner(self) -> BoxError {
        self.0
    }

    /// The fetch function's error, borrowed (to downcast it).
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl From<BoxError> for FetchError {
    fn from(error: BoxError) -> Self {
        FetchError(error)
    }
}

impl std::fmt::Debug for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl<E> PageError<E> {
    /// The same error with the fetch function's error mapped by `f`.
    pub fn map_fetch<E2>(self, f: impl FnOnce(E) -> E2) -> PageError<E2> {
        match self {
            PageError::Fetch { index, source } => PageError::Fetch {
                index,
                source: f(source),
            },
            PageError::Repeated { index } => PageError::Repeated { index },
            PageError::TooManyPages { limit } => PageError::TooManyPages { limit },
        }
    }

    /// The same error with the fetch function's error boxed as a [`FetchError`], which makes
    /// it an [`Error`](std::error::Error) whatever `E` is: `.map_err(PageError::boxed)?`
    /// into a [`BoxError`].
    pub fn boxed(self) -> PageError<FetchError>
    where
        E: Into<BoxError>,
    {
        self.map_fetch(FetchError::new)
    }
}
