//! Query mode: the synchronous details query, split into parts, pages prefetched.

use futures_util::stream::BoxStream;

use super::{Checkpoint, DetailsPage};
use crate::client::Client;
use crate::error::Error;
use crate::models::ConversationQuery;

pub(crate) fn stream(
    _client: Client,
    _query: ConversationQuery,
    _resume: Option<Checkpoint>,
) -> BoxStream<'static, Result<DetailsPage, Error>> {
    Box::pin(futures_util::stream::once(async {
        Err(Error::config("query mode is not implemented yet"))
    }))
}
