//! Pumping the page stream into the writer, and what a library error means for the run.

use futures_util::StreamExt;

use super::cli::{Args, Mode};
use super::error::ExportError;
use super::progress::Progress;
use super::recover;
use super::sink::PageWriter;
use crate::details::Checkpoint;
use crate::error::{Error, ErrorKind};
use crate::models::ConversationQuery;
use crate::Client;

/// How often a run continues by itself after the API's result set changed mid-part (the
/// library's error carries an exact resume point).
const MAX_RESULT_SET_RESTARTS: u32 = 3;

/// Pages and conversations written, and the error that stopped the run if one did.
pub(crate) type Outcome = Result<(u64, u64), (u64, u64, ExportError)>;

/// Streams the export of `query` (after `resume_from`) into `writer`, page by page.
pub(crate) async fn stream_pages(
    args: &Args,
    client: &Client,
    query: ConversationQuery,
    mut resume_from: Option<Checkpoint>,
    mut writer: PageWriter<Option<Checkpoint>>,
    progress: &mut Progress,
    client_id: &str,
) -> Outcome {
    let mut restarts = 0;
    let mut part_totals = std::collections::BTreeMap::new();
    loop {
        let export = match args.mode {
            Mode::Query => client.conversation_details(query.clone()),
            Mode::Jobs => client.conversation_details_job(query.clone()),
        };
        let export = match resume_from.take() {
            Some(cp) => export.resume_after(cp),
            None => export,
        };
        let mut export = std::pin::pin!(export);
        let failure = loop {
            match export.next().await {
                None => break None,
                Some(Ok(page)) => {
                    let total = match (&page.checkpoint, page.total_hits) {
                        (Checkpoint::Query(q), Some(t)) => {
                            part_totals.insert(q.part_index, t);
                            Some(part_totals.values().sum())
                        }
                        _ => None,
                    };
                    if let Err(e) = writer.write_page(&page.conversations, Some(page.checkpoint)) {
                        return Err((writer.pages(), writer.conversations(), e));
                    }
                    progress.page(writer.pages(), writer.conversations(), total);
                }
                Some(Err(e)) => break Some(e),
            }
        };
        match failure {
            None => {
                let (p, c) = (writer.pages(), writer.conversations());
                return writer.finish().map(|()| (p, c)).map_err(|e| (p, c, e));
            }
            Some(e) => {
                let restart = match &e {
                    Error::ResultSetChanged {
                        resume: Some(cp), ..
                    } => Some(Ok((**cp).clone())),
                    // NOTE: the ids an earlier run wrote of this part are in the output.
                    Error::ResultSetChanged {
                        resume: None,
                        interval,
                        ..
                    } if args.mode == Mode::Query => writer.written_ids_in(interval).map(|ids| {
                        ids.map(|ids| {
                            recover::restart_part(query.interval, *interval, args.page_size, ids)
                        })
                    }),
                    _ => None,
                };
                let resume = match restart {
                    Some(Ok(cp)) => cp,
                    Some(Err(io)) => return Err((writer.pages(), writer.conversations(), io)),
                    None => {
                        let context = stopped_context(args, &writer);
                        return Err((
                            writer.pages(),
                            writer.conversations(),
                            map_error(e, client_id, &context),
                        ));
                    }
                };
                // NOTE: the restart point supersedes the last page's checkpoint: resuming after
                // the last page of a part whose results moved could skip or repeat records.
                if let Err(io) = writer.record_position(Some(resume.clone())) {
                    return Err((writer.pages(), writer.conversations(), io));
                }
                if restarts >= MAX_RESULT_SET_RESTARTS {
                    let context = stopped_context(args, &writer);
                    return Err((
                        writer.pages(),
                        writer.conversations(),
                        map_error(e, client_id, &context),
                    ));
                }
                restarts += 1;
                progress.note(&format!(
                    "genesys-export: {e}; re-exporting that part, skipping the records already written"
                ));
                resume_from = Some(resume);
            }
        }
    }
}

fn stopped_context<P: serde::Serialize>(args: &Args, writer: &PageWriter<P>) -> String {
    format!(
        "export stopped after {} pages ({} conversations written{})",
        writer.pages(),
        writer.conversations(),
        if args.resume {
            "; run again with --resume to continue"
        } else {
            ""
        }
    )
}

/// Sorts a library error into the export's exit classes.
pub(crate) fn map_error(e: Error, client_id: &str, context: &str) -> ExportError {
    match e.kind() {
        ErrorKind::Usage => ExportError::Usage(e.to_string()),
        ErrorKind::Credentials => ExportError::CredentialsRejected {
            client_id: client_id.to_owned(),
            source: Box::new(e),
        },
        _ => ExportError::Api {
            context: context.to_owned(),
            source: Box::new(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiErrorBody;

    #[test]
    fn rejected_credentials_exit_3_naming_the_client_id() {
        let e = Error::Credentials {
            client_id: "cid-1".into(),
            source: None,
        };
        let mapped = map_error(e, "cid-1", "ctx");
        assert_eq!(mapped.exit_code(), 3);
        assert!(mapped.to_string().contains("cid-1"));
    }

    #[test]
    fn api_errors_exit_4_with_their_context_and_cause() {
        let e = Error::Api {
            status: http::StatusCode::BAD_REQUEST,
            endpoint: "/api/v2/analytics/conversations/details/query".into(),
            body: ApiErrorBody {
                message: Some("Pagination may not exceed 100000 results.".into()),
                ..Default::default()
            },
        };
        let mapped = map_error(e, "cid", "export stopped after 3 pages");
        assert_eq!(mapped.exit_code(), 4);
        let report = mapped.report().to_string();
        assert!(
            report.starts_with("error: export stopped after 3 pages\n  caused by: api error 400"),
            "{report}"
        );
        assert!(report.contains("Pagination may not exceed"), "{report}");
    }

    #[test]
    fn configuration_errors_exit_2() {
        assert_eq!(
            map_error(Error::Config("bad".into()), "cid", "ctx").exit_code(),
            2
        );
    }
}
