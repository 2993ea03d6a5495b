//! The stream type shared by both export modes.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::BoxStream;
use futures_util::Stream;
use serde_json::value::RawValue;

use super::Checkpoint;
use crate::client::Client;
use crate::error::Error;
use crate::export::Mode;
use crate::models::ConversationQuery;

/// One page of an export: raw conversations and where to resume after them.
///
/// A page of the details query without conversations whose checkpoint has page number 0 is
/// a restart point: its part is read again from its first page (its results shrank), and
/// resuming after it skips every conversation already yielded from the part.
#[derive(Debug)]
pub struct DetailsPage {
    /// Resuming after this checkpoint continues with the next page.
    pub checkpoint: Checkpoint,
    /// The conversations, each exactly the JSON bytes the API sent.
    pub conversations: Vec<Box<RawValue>>,
    /// `totalHits` of the current part (query mode); `None` in jobs mode.
    pub total_hits: Option<u64>,
}

struct Pending {
    client: Client,
    query: ConversationQuery,
    mode: Mode,
    resume: Option<Checkpoint>,
}

enum State {
    Pending(Box<Pending>),
    Running(BoxStream<'static, Result<DetailsPage, Error>>),
}

/// A resumable stream of pages of raw conversations, in order.
///
/// Nothing is sent before the stream is first polled. The stream ends after the last page,
/// or after the first error (pages before it were yielded; the failed page was not).
pub struct DetailsExport {
    state: State,
}

impl fmt::Debug for DetailsExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Pending(_) => "pending",
            State::Running(_) => "running",
        };
        f.debug_struct("DetailsExport")
            .field("state", &state)
            .finish()
    }
}

impl DetailsExport {
    pub(crate) fn query(client: Client, query: ConversationQuery) -> Self {
        Self::pending(client, query, Mode::Query)
    }

    pub(crate) fn job(client: Client, query: ConversationQuery) -> Self {
        Self::pending(client, query, Mode::Jobs)
    }

    fn pending(client: Client, query: ConversationQuery, mode: Mode) -> Self {
        Self {
            state: State::Pending(Box::new(Pending {
                client,
                query,
                mode,
                resume: None,
            })),
        }
    }

    /// Continues after the page `checkpoint` came with (from a previous run of the same
    /// query). A checkpoint of another mode or query interval makes the stream yield
    /// [`Error::Config`] first. Has no effect once the stream was polled.
    pub fn resume_after(mut self, checkpoint: Checkpoint) -> Self {
        if let State::Pending(p) = &mut self.state {
            p.resume = Some(checkpoint);
        }
        self
    }

    fn start(
        client: Client,
        query: ConversationQuery,
        mode: Mode,
        resume: Option<Checkpoint>,
    ) -> BoxStream<'static, Result<DetailsPage, Error>> {
        match mode {
            Mode::Query => super::merge::stream(client, query, resume),
            Mode::Jobs => super::jobs::stream(client, query, resume),
        }
    }
}

impl Stream for DetailsExport {
    type Item = Result<DetailsPage, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let State::Pending(_) = this.state {
            let placeholder = State::Running(Box::pin(futures_util::stream::empty()));
            if let State::Pending(p) = std::mem::replace(&mut this.state, placeholder) {
                let Pending {
                    client,
                    query,
                    mode,
                    resume,
                } = *p;
                this.state = State::Running(Self::start(client, query, mode, resume));
            }
        }
        match &mut this.state {
            State::Running(s) => s.as_mut().poll_next(cx),
            State::Pending(_) => Poll::Ready(None),
        }
    }
}
