//! Jobs mode: the asynchronous details jobs API (submit, poll, results by cursor).

use futures_util::stream::BoxStream;

use crate::client::Client;
use crate::details::{Checkpoint, DetailsPage};
use crate::error::Error;
use crate::models::ConversationQuery;

pub(crate) fn stream(
    _client: Client,
    _query: ConversationQuery,
    _resume: Option<Checkpoint>,
) -> BoxStream<'static, Result<DetailsPage, Error>> {
    Box::pin(futures_util::stream::once(async {
        Err(Error::config("jobs mode is not implemented yet"))
    }))
}
