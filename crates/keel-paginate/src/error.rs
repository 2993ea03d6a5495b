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
