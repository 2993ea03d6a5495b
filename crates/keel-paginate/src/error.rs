//! Why a page stream ended early.

use std::error::Error;
use std::fmt;

/// The error a [`PageStream`](crate::PageStream) yields; after it the stream ends.
///
/// `index` counts the pages of this stream from 1 (after a resume too), so the message says
/// how far the export got without showing any cursor or link (they can hold credentials).
///
/// It is an [`Error`] when the fetch function's error is one, or is a [`FetchError`] (see
/// there for `?` with boxed errors).
#[derive(Debug)]
#[non_exhaustive]
pub enum PageError<E> {
    /// The fetch function failed; the pages before this one were all yielded.
    Fetch {
        /// Ordinal of the page that failed, from 1.
        index: u64,
        /// The fetch function's error.
        source: E,
    },
    /// The server sent a cursor or next link it had sent before: following it would loop.
    Repeated {
        /// Ordinal of the page whose next position was a repeat, from 1.
        index: u64,
    },
    /// The stream yielded `limit` pages (see [`max_pages`](crate::PageStream::max_pages)) and
    /// the server still announced more.
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

impl<E> fmt::Display for PageError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageError::Fetch { index, .. } => write!(f, "fetching page {index} failed"),
            PageError::Repeated { index } => write!(
                f,
                "page {index} points back to an earlier page: the server's pagination loops"
            ),
            PageError::TooManyPages { limit } => {
                write!(f, "the server announced more than {limit} pages")
            }
        }
    }
}

impl<E: FetchSource> Error for PageError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            PageError::Fetch { source, .. } => Some(source.as_error()),
            _ => None,
        }
    }
}

/// A fetch function's error as the [`source`](Error::source) of a [`PageError`]: any
/// [`Error`], or a [`FetchError`].
pub trait FetchSource: fmt::Debug + fmt::Display {
    /// The error itself, for the source chain.
    fn as_error(&self) -> &(dyn Error + 'static);
}

impl<E: Error + 'static> FetchSource for E {
    fn as_error(&self) -> &(dyn Error + 'static) {
        self
    }
}

impl FetchSource for FetchError {
    fn as_error(&self) -> &(dyn Error + 'static) {
        &*self.0
    }
}

/// `Box<dyn Error + Send + Sync>`.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Any fetch error, boxed, for a fetch function whose failures are of many types: `?`
/// converts every error into it, and every [`PageError<FetchError>`] converts into a
/// [`BoxError`] with `?`.
///
/// `PageError<E>` is an [`Error`] when `E` is one, so with a typed fetch error `?` already
/// converts it into a `BoxError` (std's blanket `From`). A `BoxError` itself is not an
/// `Error`, so `PageError<BoxError>` is not either, and no impl can make it one: both
/// `impl Error for PageError<BoxError>` and `impl From<PageError<BoxError>> for BoxError`
/// overlap, as far as coherence knows, with std's blanket impls (std may one day implement
/// `Error` for `Box<dyn Error + Send + Sync>`). `FetchError` is the dedicated type for the
/// boxed case. Like `anyhow::Error`, it is deliberately not an `Error` itself, which is what
/// lets it convert from every error (`impl<E: Into<BoxError>> From<E> for FetchError`); a
/// `PageError<FetchError>` is an `Error` all the same, whose source is the fetch's own error.
///
/// Declare the fetch function's error type as `FetchError`, or convert a stream of
/// `PageError<BoxError>` at the `?` with `.map_err(PageError::boxed)?`. Downcast a
/// `BoxError` to `PageError<FetchError>` to tell a paging failure from others.
///
/// # Example
///
/// ```
/// use futures_util::TryStreamExt;
/// use keel_paginate::{BoxError, FetchError, Fetched, PageError, PageStream};
///
/// async fn call_api(page: u64) -> Result<String, BoxError> {
///     if page > 2 { Err("the API is down")? } else { Ok(format!("[{page}]")) }
/// }
///
/// async fn export() -> Result<Vec<u64>, BoxError> {
///     let mut items = PageStream::page_numbers(1, |page| async move {
///         let body = call_api(page).await?; // BoxError -> FetchError
///         let items: Vec<u64> = serde_json_like(&body)?; // any Error -> FetchError
///         Ok::<_, FetchError>(Fetched::new(items).with_total(Some(3)))
///     })
///     .items();
///     let mut seen = Vec::new();
///     while let Some(item) = items.try_next().await? { // PageError<FetchError> -> BoxError
///         seen.push(item);
///     }
///     Ok(seen)
/// }
/// # fn serde_json_like(s: &str) -> Result<Vec<u64>, std::num::ParseIntError> {
/// #     s.trim_matches(['[', ']']).split(',').map(str::parse).collect()
/// # }
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
    /// The fetch function's error.
    pub fn into_inner(self) -> BoxError {
        self.0
    }

    /// The fetch function's error, borrowed (to downcast it).
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl<E: Into<BoxError>> From<E> for FetchError {
    fn from(error: E) -> Self {
        FetchError(error.into())
    }
}

impl fmt::Debug for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
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
    /// it an [`Error`] whatever `E` is: `.map_err(PageError::boxed)?` into a [`BoxError`].
    pub fn boxed(self) -> PageError<FetchError>
    where
        E: Into<BoxError>,
    {
        self.map_fetch(FetchError::from)
    }
}
