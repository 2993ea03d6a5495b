//! The page writers: tasks that each own a connection and write one page per transaction,
//! so that the server works on pages while the sink prepares the next ones.
//!
//! Pages may be written concurrently on different connections but must become durable in
//! order: a page stored without the one before it would be a gap behind a resume point. Each
//! page's transaction writes its rows first and its resume point last; a page with a
//! predecessor still in flight waits until the predecessor has stored its resume point (the
//! predecessor then holds that row's lock until it commits or rolls back), and stores its own
//! only if the row it finds is the predecessor's version (`xmin`, the writing transaction).
//! The upsert waits for the predecessor's transaction to end; if that rolled back, the row
//! is older (or absent) and the page rolls back too. Pages in flight together never share a
//! conversation (the sink waits first), so they wait on each other only for the resume row,
//! always in page order: no deadlock.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::postgres::PgConnection;
use sqlx::Connection as _;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::copy::CopyBinary;
use super::{copy_statement, delete_children, stage_columns, STAGE};
use crate::flatten::Batch;
use crate::schema::{CHILD_TABLES, CONVERSATIONS};
use crate::sql;

/// Stores a page's resume point and adds its counts, like [`sql::STORE_RESUME`] (`$1`–`$7`),
/// over the version of the row that transaction `$8` wrote, when `$8` is given; returns the
/// new version's `xmin` and whether the row was updated rather than inserted.
const STORE_RESUME_AFTER: &str = "INSERT INTO keel_exports \
     (export_key, query, resume, pages, conversations, watermark, run_id, updated_at, completed_at) \
     VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, NULL) \
     ON CONFLICT (export_key) DO UPDATE SET query = excluded.query, resume = excluded.resume, \
     pages = keel_exports.pages + excluded.pages, \
     conversations = keel_exports.conversations + excluded.conversations, \
     run_id = excluded.run_id, updated_at = excluded.updated_at, completed_at = NULL \
     WHERE $8::text IS NULL OR keel_exports.xmin::text = $8 \
     RETURNING xmin::text, xmax <> 0";

/// One page, owned: it moves to its writer and outlives the sink's `commit` call.
#[derive(Debug)]
pub(super) struct Page {
    pub(super) batch: Batch,
    /// The conversations' ids as UUIDs, in the order of `batch.conversations`.
    pub(super) keys: Vec<[u8; 16]>,
    pub(super) key: Arc<str>,
    pub(super) run_id: Arc<str>,
    pub(super) query: String,
    pub(super) resume: String,
    pub(super) pages: i64,
    pub(super) conversations: i64,
    /// How many of the caller's pages this one holds (several when merged).
    pub(super) pages_held: usize,
}

impl Page {
    /// The API pages and records it holds, as the caller's commits counted them.
    pub(super) fn counted(&self) -> (u64, u64) {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        (n(self.pages), n(self.conversations))
    }

    /// Appends `next`, a later page sharing no conversation with this one: one transaction
    /// then writes both, with the later page's resume point.
    pub(super) fn absorb(&mut self, next: Page) {
        self.batch.append(next.batch);
        self.keys.extend(next.keys);
        self.query = next.query;
        self.resume = next.resume;
        self.pages = self.pages.saturating_add(next.pages);
        self.conversations = self.conversations.saturating_add(next.conversations);
        self.pages_held += next.pages_held;
    }
}

/// Why a page was not stored.
#[derive(Debug)]
pub(super) enum PageError {
    /// The database refused it (or the connection failed).
    Database(sqlx::Error),
    /// The page before it was not stored, so it was not either.
    Predecessor,
    /// The writer is gone (its task ended).
    WriterGone,
}

/// Sent by a page once its resume point is written (not yet committed): the row version's
/// `xmin`, which the next page expects to find.
pub(super) type Stored = oneshot::Receiver<String>;

struct Job {
    page: Page,
    after: Option<Stored>,
    stored: oneshot::Sender<String>,
    done: oneshot::Sender<Result<(), PageError>>,
}

/// A writer task's handle; dropping it ends the task after its queued pages.
#[derive(Debug)]
pub(super) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts a writer on `conn` (set up: session settings, staging table).
    pub(super) fn spawn(conn: PgConnection) -> Writer {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(conn, rx));
        Writer { jobs }
    }

    /// Queues `page`, stored only after the page that sends `after` (if any) stored its
    /// resume point; returns its own signal for the next page and its outcome.
    pub(super) fn submit(
        &self,
        page: Page,
        after: Option<Stored>,
    ) -> (Stored, oneshot::Receiver<Result<(), PageError>>) {
        let (stored, stored_rx) = oneshot::channel();
        let (done, done_rx) = oneshot::channel();
        let job = Job {
            page,
            after,
            stored,
            done,
        };
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(job) {
            let _ = job.done.send(Err(PageError::WriterGone));
        }
        (stored_rx, done_rx)
    }
}

async fn run(mut conn: PgConnection, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut buf = CopyBinary::default();
    while let Some(job) = jobs.recv().await {
        let out = write(&mut conn, &mut buf, &job.page, job.after, job.stored).await;
        if out.is_err() {
            // NOTE: a failed transaction's rollback is only queued on the connection (sqlx
            // sends it at the next use), and until the server has it the transaction keeps
            // its locks: the next page, on the other writer, may be waiting for them.
            let _ = conn.ping().await;
        }
        let _ = job.done.send(out);
    }
    let _ = conn.close().await;
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        PageError::Database(e)
    }
}

async fn write(
    conn: &mut PgConnection,
    buf: &mut CopyBinary,
    page: &Page,
    after: Option<Stored>,
    stored: oneshot::Sender<String>,
) -> Result<(), PageError> {
    let batch = &page.batch;
    let mut tx = conn.begin().await?;
    let ids: Vec<&str> = batch.conversations.iter().map(|c| c.id.as_str()).collect();
    // NOTE: the run lock keeps other keel runs out, and pages in flight together share no
    // conversation; a page none of whose conversations is stored yet (a first export) is
    // COPied straight into `conversations`, without the staging table and upsert.
    let any_stored: bool = if ids.is_empty() {
        false
    } else {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM conversations c \
             JOIN unnest($1::text[]) AS d(id) ON c.conversation_id = d.id::uuid)",
        )
        .bind(&ids)
        .fetch_one(&mut *tx)
        .await?
    };
    if !ids.is_empty() && !any_stored {
        buf.conversations(
            &batch.conversations,
            &page.keys,
            Some((OffsetDateTime::now_utc(), &page.run_id)),
        );
        let all = CONVERSATIONS.column_names();
        copy_in(&mut tx, &copy_statement(CONVERSATIONS.name, &all), buf).await?;
    }
    // Which of the page's conversations get child rows (`None`: all of them).
    let mut keep: Option<Vec<bool>> = None;
    if any_stored {
        buf.conversations(&batch.conversations, &page.keys, None);
        copy_in(&mut tx, &copy_statement(STAGE, &stage_columns()), buf).await?;
        let cols = CONVERSATIONS.column_names().join(", ");
        let staged = stage_columns().join(", ");
        // NOTE: `xmax <> 0` on a row returned by an upsert means it was updated, not
        // inserted; only conversations stored before have child rows to replace. A stored
        // conversation whose record is unchanged is left as it is (no new row version, its
        // child rows kept): an incremental run's overlap fetches mostly those.
        let upsert = format!(
            "INSERT INTO conversations ({cols}) SELECT {staged}, now(), $1 \
             FROM {STAGE}{} WHERE conversations.record IS DISTINCT FROM excluded.record \
             RETURNING conversation_id::text, xmax <> 0 AS updated",
            sql::conversation_conflict()
        );
        let rows: Vec<(String, bool)> = sqlx::query_as(&upsert)
            .bind(&*page.run_id)
            .fetch_all(&mut *tx)
            .await?;
        let updated: Vec<&str> = rows.iter().filter(|r| r.1).map(|r| r.0.as_str()).collect();
        if !updated.is_empty() {
            sqlx::query(&delete_children())
                .bind(&updated)
                .bind(&*page.key)
                .execute(&mut *tx)
                .await?;
        }
        let written: HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        keep = Some(
            batch
                .conversations
                .iter()
                .map(|c| written.contains(c.id.as_str()))
                .collect(),
        );
    }
    if !ids.is_empty() {
        let open: Vec<&str> = batch
            .conversations
            .iter()
            .filter(|c| c.end.is_none())
            .map(|c| c.id.as_str())
            .collect();
        if !open.is_empty() {
            sqlx::query(
                "INSERT INTO keel_in_progress (export_key, conversation_id) \
                 SELECT $1, unnest($2::text[])::uuid ON CONFLICT DO NOTHING",
            )
            .bind(&*page.key)
            .bind(&open)
            .execute(&mut *tx)
            .await?;
        }
        for t in CHILD_TABLES {
            if buf.children(t.name, batch, &page.keys, keep.as_deref()) {
                copy_in(&mut tx, &copy_statement(t.name, &t.column_names()), buf).await?;
            }
        }
    }
    // NOTE: the predecessor has written its resume point and holds the row until it ends;
    // the upsert below waits for that, then finds the predecessor's version only if it
    // committed. A predecessor that failed before writing it dropped its signal.
    let expected = match after {
        Some(signal) => Some(signal.await.map_err(|_| PageError::Predecessor)?),
        None => None,
    };
    let row: Option<(String, bool)> = sqlx::query_as(STORE_RESUME_AFTER)
        .bind(&*page.key)
        .bind(&page.query)
        .bind(&page.resume)
        .bind(page.pages)
        .bind(page.conversations)
        .bind(&*page.run_id)
        .bind(OffsetDateTime::now_utc())
        .bind(expected.as_deref())
        .fetch_optional(&mut *tx)
        .await?;
    match (row, &expected) {
        // NOTE: with a predecessor, the row must have been there (an update): inserting it
        // means the predecessor's first write of it rolled back.
        (Some((version, updated)), _) if updated || expected.is_none() => {
            let _ = stored.send(version);
        }
        _ => return Err(PageError::Predecessor),
    }
    tx.commit().await?;
    Ok(())
}

async fn copy_in(conn: &mut PgConnection, statement: &str, data: &CopyBinary) -> sqlx::Result<()> {
    let mut copy = conn.copy_in_raw(statement).await?;
    if let Err(e) = copy.send(data.bytes()).await {
        let _ = copy.abort("keel: send failed").await;
        return Err(e);
    }
    copy.finish().await.map(drop)
}
