//! Jobs mode: the asynchronous details jobs API (submit, poll, results by cursor).
//!
//! `POST /api/v2/analytics/conversations/details/jobs` submits the query and returns a job id;
//! `GET …/jobs/{id}` is polled, waiting longer each time (from `job_poll_initial` doubling to
//! `job_poll_max`, within `job_timeout`), until the job is `FULFILLED`; then
//! `GET …/jobs/{id}/results?cursor=…` is paged by cursor until a page comes without one. Each
//! page's [`JobCheckpoint`] holds the job id and the next cursor, so a run can resume after a
//! page for as long as Genesys keeps the job's results.
//!
//! Polls and result pages are reads, retried like every query. The submission is not a read:
//! each one the server acts on starts a job, and an org may run only a few at once. It is
//! sent again freely only where the server provably did not act on it (a connection that could
//! not be opened, a 429 or 503 answer, a 401 replay). After an ambiguous failure (a timeout,
//! a connection reset or closed after the request went out, a 502 or 504) it is sent once
//! more with a WARN that a job may have been started twice; a second one ends the export.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::TryStreamExt;
//! use keel_genesys::{Checkpoint, Client, ConversationQuery, Credentials, Environment};
//! use secrecy::SecretString;
//!
//! let sim = keel_sim::Simulator::builder().conversations(120).start().await?;
//! let env = Environment::custom(&sim.base_url(), &sim.base_url())?;
//! let creds = Credentials::new("sim-client", SecretString::from("sim-secret"));
//! let client = Client::builder(env, creds).build()?;
//! let query = ConversationQuery::new("2026-01-01T00:00:00Z/2026-01-08T00:00:00Z".parse()?);
//! let pages: Vec<_> = client.conversation_details_job(query).try_collect().await?;
//! assert_eq!(pages.iter().map(|p| p.conversations.len()).sum::<usize>(), 120);
//! let Checkpoint::Job(last) = &pages.last().unwrap().checkpoint else { unreachable!() };
//! assert!(last.cursor.is_none(), "the last page has no next cursor");
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use http::Method;
use keel_paginate::{Fetched, PageStream};
use serde_json::value::RawValue;

use super::task_failed;
use super::{Checkpoint, DetailsPage, JobCheckpoint};
use crate::client::{Client, Spawned};
use crate::error::Error;
use crate::models::{
    ConversationQuery, JobResultsResponse, JobState, JobStatus, JobSubmitResponse,
};

/// The jobs endpoint.
pub(crate) const JOBS_PATH: &str = "/api/v2/analytics/conversations/details/jobs";

pub(crate) fn stream(
    client: Client,
    query: ConversationQuery,
    resume: Option<Checkpoint>,
) -> BoxStream<'static, Result<DetailsPage, Error>> {
    let start = async move { start(client, query, resume).await };
    Box::pin(
        stream::once(start)
            .map(|r| match r {
                Ok(pages) => pages,
                Err(e) => Box::pin(stream::once(async { Err(e) })),
            })
            .flatten(),
    )
}

async fn start(
    client: Client,
    mut query: ConversationQuery,
    resume: Option<Checkpoint>,
) -> Result<BoxStream<'static, Result<DetailsPage, Error>>, Error> {
    query.validate()?;
    let page_size = client.inner.settings.job_page_size;
    let (job_id, from, pages) = match resume {
        Some(Checkpoint::Query(_)) => {
            return Err(Error::config(
                "checkpoint is of a details-query export, not of a jobs-mode export",
            ))
        }
        Some(Checkpoint::Job(cp)) => match cp.cursor {
            // NOTE: the checkpointed page was the last one: nothing is left.
            None => return Ok(Box::pin(stream::empty())),
            Some(cursor) => (cp.job_id, Some(cursor), cp.pages),
        },
        None => {
            query.paging = None;
            let body = serde_json::to_vec(&query)
                .map_err(|e| Error::config(format!("query does not serialize: {e}")))?;
            let bytes = client.submit(JOBS_PATH, body).await?;
            let submitted: JobSubmitResponse = serde_json::from_slice(&bytes)
                .map_err(|e| Error::decode(JOBS_PATH, format!("job submission answer: {e}")))?;
            tracing::info!(job_id = %submitted.job_id, "submitted details job");
            (submitted.job_id, None, 0)
        }
    };
    wait_fulfilled(&client, &job_id).await?;
    Ok(results(client, job_id, page_size, from, pages))
}

/// Polls the job's status until it is fulfilled.
async fn wait_fulfilled(client: &Client, job_id: &str) -> Result<(), Error> {
    let settings = &client.inner.settings;
    let deadline = tokio::time::Instant::now() + settings.job_timeout;
    let mut delay = settings.job_poll_initial;
    let path = format!("{JOBS_PATH}/{}", encode_segment(job_id));
    loop {
        let status: JobStatus = client
            .fetch_decoded(Method::GET, &path, None, |bytes| {
                serde_json::from_slice(bytes)
                    .map_err(|e| Error::decode(JOBS_PATH, format!("job status: {e}")))
            })
            .await?;
        match status.state {
            JobState::Fulfilled => return Ok(()),
            JobState::Failed | JobState::Cancelled | JobState::Expired => {
                return Err(Error::JobFailed {
                    job_id: job_id.to_owned(),
                    reason: status
                        .error_message
                        .or_else(|| Some(format!("job is {:?}", status.state).to_lowercase())),
                })
            }
            JobState::Queued | JobState::Pending | JobState::Unknown => {}
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(Error::JobFailed {
                job_id: job_id.to_owned(),
                reason: Some(format!("not fulfilled within {:?}", settings.job_timeout)),
            });
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
        delay = (delay * 2)
            .min(settings.job_poll_max)
            .max(Duration::from_millis(1));
    }
}

fn results(
    client: Client,
    job_id: String,
    page_size: u32,
    from: Option<String>,
    pages_before: u64,
) -> BoxStream<'static, Result<DetailsPage, Error>> {
    let path = format!("{JOBS_PATH}/{}/results", encode_segment(&job_id));
    let fetch = move |cursor: Option<String>| {
        let client = client.clone();
        let path = path.clone();
        let fetch =
            Spawned::new(async move { fetch_results(&client, &path, page_size, cursor).await });
        async move { fetch.await.map_err(task_failed(JOBS_PATH))? }
    };
    let mut pages = PageStream::cursors(fetch).prefetch(1);
    if from.is_some() {
        pages = pages.resume_from(from);
    }
    let mut n = pages_before;
    Box::pin(pages.map(move |r| match r {
        Ok(page) => {
            n += 1;
            Ok(DetailsPage {
                checkpoint: Checkpoint::Job(JobCheckpoint {
                    job_id: job_id.clone(),
                    cursor: page.next.flatten(),
                    pages: n,
                }),
                conversations: page.items,
                total_hits: None,
            })
        }
        Err(keel_paginate::PageError::Fetch { source, .. }) => Err(source),
        Err(other) => Err(Error::decode(JOBS_PATH, other.to_string())),
    }))
}

async fn fetch_results(
    client: &Client,
    path: &str,
    page_size: u32,
    cursor: Option<String>,
) -> Result<Fetched<Box<RawValue>, String>, Error> {
    let mut params = vec![("pageSize", page_size.to_string())];
    if let Some(c) = cursor {
        params.push(("cursor", c));
    }
    let qs = serde_urlencoded::to_string(&params)
        .map_err(|e| Error::config(format!("results query: {e}")))?;
    let page: JobResultsResponse = client
        .fetch_decoded(Method::GET, &format!("{path}?{qs}"), None, |bytes| {
            serde_json::from_slice(bytes)
                .map_err(|e| Error::decode(JOBS_PATH, format!("job results page: {e}")))
        })
        .await?;
    Ok(Fetched::new(page.conversations.unwrap_or_default()).with_next(page.cursor))
}

/// Percent-encodes a path segment (job ids are UUIDs; this keeps odd ones harmless).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_segment;

    #[test]
    fn job_ids_cannot_escape_their_path_segment() {
        assert_eq!(encode_segment("6a1b-77ff"), "6a1b-77ff");
        assert_eq!(encode_segment("../x?y=1"), "..%2Fx%3Fy%3D1");
    }
}

#[cfg(test)]
mod polling_tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::TryStreamExt;
    use http::{Request, Response};
    use http_body_util::Full;
    use secrecy::SecretString;
    use tokio::time::Instant;
    use tower::util::BoxCloneSyncService;

    use crate::error::BoxError;
    use crate::{Client, ConversationQuery, Credentials, Environment, Error};

    /// A jobs API whose job is QUEUED for the first `queued` status polls.
    fn client(queued: usize, polls: Arc<Mutex<Vec<Instant>>>) -> Client {
        let svc = tower::service_fn(move |req: Request<Full<Bytes>>| {
            let polls = polls.clone();
            async move {
                let path = req.uri().path().to_owned();
                let body = if req.method() == http::Method::POST {
                    r#"{"jobId":"j-1"}"#.to_owned()
                } else if path.ends_with("/results") {
                    match req.uri().query().unwrap_or("") {
                        q if q.contains("cursor=c2") => {
                            r#"{"conversations":[{"conversationId":"b"}]}"#.to_owned()
                        }
                        _ => {
                            r#"{"conversations":[{"conversationId":"a"}],"cursor":"c2"}"#.to_owned()
                        }
                    }
                } else {
                    let mut polls = polls.lock().unwrap();
                    polls.push(Instant::now());
                    let state = if polls.len() <= queued {
                        "QUEUED"
                    } else {
                        "FULFILLED"
                    };
                    format!(r#"{{"state":"{state}"}}"#)
                };
                Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(body))))
            }
        });
        let env = Environment::custom("http://127.0.0.1:9", "http://127.0.0.1:9").unwrap();
        Client::builder(env, Credentials::new("fake", SecretString::from("unused")))
            .job_polling(
                Duration::from_secs(1),
                Duration::from_secs(4),
                Duration::from_secs(20),
            )
            .build_with(BoxCloneSyncService::new(svc))
    }

    fn query() -> ConversationQuery {
        ConversationQuery::new("2026-01-01/2026-01-02".parse().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn status_is_polled_with_doubling_capped_waits_until_fulfilled() {
        let polls = Arc::new(Mutex::new(Vec::new()));
        let pages: Vec<_> = client(4, polls.clone())
            .conversation_details_job(query())
            .try_collect()
            .await
            .unwrap();
        let got: Vec<&str> = pages
            .iter()
            .flat_map(|p| &p.conversations)
            .map(|c| c.get())
            .collect();
        assert_eq!(
            got,
            [r#"{"conversationId":"a"}"#, r#"{"conversationId":"b"}"#]
        );
        let polls = polls.lock().unwrap();
        let waits: Vec<u64> = polls.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_that_never_finishes_fails_after_the_timeout() {
        let polls = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let err = client(usize::MAX, polls.clone())
            .conversation_details_job(query())
            .try_next()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::JobFailed { job_id, .. } if job_id == "j-1"),
            "{err:?}"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(20));
        assert!(err.to_string().contains("not fulfilled"), "{err}");
    }
}
