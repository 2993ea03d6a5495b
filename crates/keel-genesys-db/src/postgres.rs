//! [`PostgresSink`]: a PostgreSQL server, COPY and one upsert per transaction of one or more pages.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::str::FromStr as _;
use std::sync::Arc;

use keel_genesys::sink::{Commit, PageSink, SinkState};
use keel_genesys::{Checkpoint, Interval};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection as _, Row as _};
use time::OffsetDateTime;

mod copy;
mod writer;

use crate::destination::PgUrl;
use crate::error::DbError;
use crate::flatten::Batch;
use crate::schema::{self, Dialect, CHILD_TABLES, CONVERSATIONS, TABLES, VERSION_TABLE};
use crate::spec::ExportSpec;
use crate::sql;
use tokio::sync::oneshot;
use writer::{Page, PageError, Stored, Writer};

/// The advisory lock key of a keel export destination (`keelgdb1` in ASCII).
const LOCK_KEY: i64 = 0x6b65_656c_6764_6231;

/// The per-connection staging table of a page's conversations.
const STAGE: &str = "keel_stage_conversations";

/// A [`PageSink`] into a PostgreSQL database.
///
/// Each page is written in one transaction (with the pages held with it, see below): its
/// conversations are COPied (binary format) straight into `conversations` when none of them
/// is stored yet, or else into a session-local staging table and upserted from there
/// (`INSERT … SELECT … ON CONFLICT (conversation_id) DO UPDATE`, since COPY itself cannot
/// resolve conflicts); the child rows of each conversation written are COPied (an updated
/// conversation's old ones deleted first), and the resume point stored. Ids repeated inside
/// a page are reduced to their last record first (one statement may not update a row twice).
///
/// # Pipelined commits
///
/// Pages are written by two connections in turn, so that the server works on one page while
/// the next is prepared and sent. [`commit`](PageSink::commit) returns once the page is
/// handed to a free writer or held in the sink to go to a writer later together with the
/// pages accepted after it, as one transaction (up to 1,000 conversations, where `commit`
/// waits; pages sharing a conversation are never merged); it does not wait for the page to
/// be durable. Pages are held while both writers are busy, and while one is: until they hold
/// as many conversations as the transaction in flight (transactions commit in order, so a
/// smaller one would finish first and wait for it, its connection idle; equal ones keep the
/// two writers staggered, each working while the other commits). A source faster than the
/// database thus pays each transaction's fixed cost once per few pages, one slower than it
/// still has every page sent as soon as it is accepted. Held pages go at the next commit,
/// [`flush`](PageSink::flush) or [`close`](PageSink::close): a caller that pauses long
/// between pages (a rate-limit wait) and wants them durable meanwhile calls `flush` first.
/// Pages still become durable strictly in order (a page whose predecessor rolled back rolls
/// back too), so the stored resume point always has every page before it. A failure is
/// returned by the next call ([`commit`](PageSink::commit), [`flush`](PageSink::flush),
/// [`close`](PageSink::close), or any read); it discards the failed page and the pages
/// accepted after it, and the sink goes on from the last durable page. Two pages that share
/// a conversation are never in flight together.
///
/// The connection string's password is optional: without one, `PGPASSWORD` or the `.pgpass`
/// file (`PGPASSFILE`) supplies it, as libpq does; `PGHOST`, `PGPORT`, `PGUSER` and
/// `PGDATABASE` fill what the URL leaves out.
///
/// A conversation stored before whose record comes back unchanged is left as it is (its
/// `written_at` and `run_id` too): nothing of it is written again.
///
/// Needs PostgreSQL 12 or newer (`plan_cache_mode`, set for the sink's sessions).
///
/// One run at a time: the sink takes `pg_try_advisory_lock` on a connection of its own that
/// it holds for the whole run (a lock belongs to its connection; it is never taken on a
/// pooled one), and that also serves the sink's reads. The lock goes at
/// [`close`](PageSink::close), or with that connection when the sink is dropped or the
/// process dies.
pub struct PostgresSink {
    lock: PgConnection,
    writers: Vec<Writer>,
    /// Pages handed to a writer whose outcome is not known yet, oldest first.
    in_flight: VecDeque<InFlight>,
    /// Pages accepted but not handed to a writer yet, merged into one: written in one
    /// transaction once [`ready`](Self::ready) (or when it holds [`COALESCE_UP_TO`]
    /// conversations).
    pending: Option<Box<Page>>,
    /// The signal of the newest page in flight: the next page stores after it.
    last_stored: Option<Stored>,
    next_writer: usize,
    destination: String,
    secret: Option<String>,
    spec: ExportSpec,
    key: Arc<str>,
    run_id: Arc<str>,
    resume_query: Option<serde_json::Value>,
    pending_watermark: Option<OffsetDateTime>,
    hold_lock: bool,
    /// Set while a call runs: still set at the next call means a call was dropped mid-way
    /// and the connection's state is unknown.
    busy: bool,
    /// See [`unconfirmed`](Self::unconfirmed).
    unconfirmed: (u64, u64),
}

/// A page handed to a writer.
struct InFlight {
    /// Its conversations (a page in flight never shares one with another).
    keys: HashSet<[u8; 16]>,
    /// How many of the caller's pages it holds.
    pages: usize,
    /// The API pages and records it holds, as the caller's commits counted them.
    counted: (u64, u64),
    done: oneshot::Receiver<Result<(), PageError>>,
}

/// Pages in flight at once (one per writer connection). Two keep both cores of a small
/// machine busy (the server works on one page while the next is copied in); three, four or
/// six measured no faster there (BENCHMARKS.md), and each is a connection held for the run.
const WRITERS: usize = 2;

/// The most conversations that pages held in the sink gather into one transaction. Each
/// transaction costs a fixed amount on both sides (its statements, their plans, the start of
/// each COPY, the commit); a source faster than the database thus pays it once per few
/// pages, while pages from a slower one still go to a writer one by one, as soon as they are
/// accepted. Bounds the memory too: at most this many conversations wait besides the pages
/// in flight. Smaller bounds (300, 500, 800) measured slower end to end, larger ones gain a
/// few per cent at most and cost memory (BENCHMARKS.md).
const COALESCE_UP_TO: usize = 1000;

impl fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSink")
            .field("destination", &self.destination)
            .field("export", &self.spec.key)
            .field("run_id", &self.spec.run_id)
            .finish_non_exhaustive()
    }
}

impl PostgresSink {
    /// Connects (three times: the run lock's connection, which also serves the sink's reads,
    /// and two page writers), takes the run lock, and creates or checks the schema. Call it
    /// before fetching anything.
    ///
    /// # Errors
    /// [`DbError::Locked`] when another run holds the destination, [`DbError::Schema`]
    /// naming the table when a table has other columns or the schema version is newer,
    /// [`DbError::Database`] (connection, authentication, …), never with the password.
    pub async fn connect(url: &PgUrl, spec: ExportSpec) -> Result<Self, DbError> {
        let destination = url.to_string();
        let secret = url.url_password();
        let err = |action| {
            let (d, s) = (destination.clone(), secret.clone());
            move |e: sqlx::Error| DbError::database(&d, action, &e, s.as_deref())
        };
        let options = PgConnectOptions::from_str(url.secret_url())
            .map_err(err("read the connection URL"))?
            .application_name("keel-genesys-db")
            // NOTE: the page statements are prepared once per connection; a generic plan made
            // while the tables were small keeps scanning them whole as they grow (the child
            // deletes went from 1 ms to 100 ms per page within 20,000 conversations). Custom
            // plans follow the tables' size.
            .options([("plan_cache_mode", "force_custom_plan")]);
        let mut lock = PgConnection::connect_with(&options)
            .await
            .map_err(err("connect"))?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut lock)
            .await
            .map_err(err("take the run lock"))?;
        if !locked {
            return Err(DbError::Locked { destination });
        }
        prepare_schema(&mut lock, &destination)
            .await
            .map_err(|e| e.into_db(&destination, secret.as_deref()))?;
        analyze_if_never(&mut lock)
            .await
            .map_err(err("analyze the tables"))?;
        let mut writers = Vec::with_capacity(WRITERS);
        for _ in 0..WRITERS {
            let mut conn = PgConnection::connect_with(&options)
                .await
                .map_err(err("connect"))?;
            // NOTE: a record (about 2 KB of JSON) is compressed when stored; lz4 costs a
            // fraction of the default pglz's CPU, and every reader decompresses either. A
            // server built without lz4 refuses the setting and keeps pglz.
            let _ = sqlx::query("SET default_toast_compression = 'lz4'")
                .execute(&mut conn)
                .await;
            sqlx::query(&stage_ddl())
                .execute(&mut conn)
                .await
                .map_err(err("create the staging table"))?;
            writers.push(Writer::spawn(conn));
        }
        Ok(PostgresSink {
            lock,
            writers,
            in_flight: VecDeque::with_capacity(WRITERS),
            pending: None,
            last_stored: None,
            next_writer: 0,
            destination,
            secret,
            key: Arc::from(spec.key.as_str()),
            run_id: Arc::from(spec.run_id.as_str()),
            spec,
            resume_query: None,
            pending_watermark: None,
            hold_lock: false,
            busy: false,
            unconfirmed: (0, 0),
        })
    }

    /// The API pages and records (as [`Commit`] counts them) that the sink had accepted but
    /// that the last failure it reported leaves unconfirmed: not stored, or, when the
    /// connection was lost while one was committing, not known to be. A caller that counted
    /// pages as they were accepted subtracts these after a failure to report what the
    /// database holds. `(0, 0)` before any failure.
    pub fn unconfirmed(&self) -> (u64, u64) {
        self.unconfirmed
    }

    /// The query stored with the resume point that [`open`](PageSink::open) reported: a
    /// resumed run continues this query, not a newly resolved one.
    pub fn resume_query(&self) -> Option<&serde_json::Value> {
        self.resume_query.as_ref()
    }

    /// The export definition's watermark: where its last completed run ended.
    ///
    /// # Errors
    /// [`DbError::Database`], or the failure of a page still in flight.
    pub async fn watermark(&mut self) -> Result<Option<OffsetDateTime>, DbError> {
        self.settle_all().await?;
        self.enter()?;
        let row: Option<Option<OffsetDateTime>> = sqlx::query_scalar(sql::LOAD_WATERMARK)
            .bind(&self.spec.key)
            .fetch_optional(&mut self.lock)
            .await
            .map_err(|e| self.db_err("read the watermark", &e))?;
        self.busy = false;
        Ok(row.flatten())
    }

    /// Moves the watermark to `at` when [`close`](PageSink::close) completes the export, in
    /// the same transaction (never before every page of the run is committed).
    pub fn watermark_on_close(&mut self, at: OffsetDateTime) {
        self.pending_watermark = Some(at);
    }

    /// Makes [`close`](PageSink::close) complete the export but keep the run lock, so that
    /// the program can run another export of the same definition on this sink (see
    /// [`next_export`](Self::next_export)) without another run slipping in between; the
    /// lock then goes with [`release`](Self::release) or when the sink is dropped.
    pub fn hold_lock_on_close(&mut self, hold: bool) {
        self.hold_lock = hold;
    }

    /// Starts another export of this definition on the sink, after
    /// [`close`](PageSink::close) completed the previous one: `query` is what the following
    /// commits store with their resume points (what [`resume_query`](Self::resume_query)
    /// returns if that export is interrupted).
    pub fn next_export(&mut self, query: serde_json::Value) {
        self.spec.query = query;
        self.resume_query = None;
    }

    /// Releases the run lock (what [`close`](PageSink::close) does unless
    /// [`hold_lock_on_close`](Self::hold_lock_on_close)).
    ///
    /// # Errors
    /// [`DbError::Database`], or the failure of a page still in flight.
    pub async fn release(&mut self) -> Result<(), DbError> {
        self.settle_all().await?;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut self.lock)
            .await
            .map_err(|e| self.db_err("release the run lock", &e))
            .map(drop)
    }

    /// Conversations this export definition stored without an end, with their start, earliest
    /// first: a later run fetches them again (by id) until they have ended.
    ///
    /// # Errors
    /// [`DbError::Database`], or the failure of a page still in flight.
    pub async fn in_progress(&mut self) -> Result<Vec<(String, OffsetDateTime)>, DbError> {
        self.settle_all().await?;
        self.enter()?;
        let ids = sqlx::query_as(sql::LOAD_IN_PROGRESS)
            .bind(&self.spec.key)
            .fetch_all(&mut self.lock)
            .await
            .map_err(|e| self.db_err("read conversations in progress", &e))?;
        self.busy = false;
        Ok(ids)
    }

    /// Stops fetching the conversations `ids` again: this export definition's conversations
    /// in progress that the API no longer returns (their rows stay as last stored).
    ///
    /// # Errors
    /// [`DbError::Database`], or the failure of a page still in flight.
    pub async fn forget_in_progress(&mut self, ids: &[String]) -> Result<(), DbError> {
        self.settle_all().await?;
        self.enter()?;
        sqlx::query(
            "DELETE FROM keel_in_progress WHERE export_key = $1 \
             AND conversation_id::text = ANY($2::text[])",
        )
        .bind(&self.spec.key)
        .bind(ids)
        .execute(&mut self.lock)
        .await
        .map_err(|e| self.db_err("forget conversations in progress", &e))?;
        self.busy = false;
        Ok(())
    }

    fn enter(&mut self) -> Result<(), DbError> {
        if self.busy {
            return Err(DbError::Interrupted {
                destination: self.destination.clone(),
            });
        }
        self.busy = true;
        Ok(())
    }

    fn db_err(&self, action: &'static str, e: &sqlx::Error) -> DbError {
        DbError::database(&self.destination, action, e, self.secret.as_deref())
    }

    fn state_error(&self, message: String) -> DbError {
        DbError::State {
            destination: self.destination.clone(),
            key: self.spec.key.clone(),
            message,
        }
    }

    /// Waits for the oldest page in flight. On its failure, waits for the others too (each
    /// rolls back after it, or was stored only if the failure came after its commit), drops
    /// the pages not handed to a writer yet, and reports the failure: the sink then goes on
    /// from the last durable page.
    async fn settle_oldest(&mut self) -> Result<(), DbError> {
        let Some(oldest) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let out = oldest.done.await.unwrap_or(Err(PageError::WriterGone));
        self.settled(out, oldest.counted).await
    }

    /// Settles the pages at the front that are done, without waiting for any.
    async fn reap(&mut self) -> Result<(), DbError> {
        while let Some(front) = self.in_flight.front_mut() {
            let out = match front.done.try_recv() {
                Ok(out) => out,
                Err(oneshot::error::TryRecvError::Empty) => return Ok(()),
                Err(oneshot::error::TryRecvError::Closed) => Err(PageError::WriterGone),
            };
            let counted = front.counted;
            self.in_flight.pop_front();
            self.settled(out, counted).await?;
        }
        Ok(())
    }

    /// Takes the outcome of the page just taken off the front of `in_flight`, which held
    /// `counted` API pages and records.
    async fn settled(
        &mut self,
        out: Result<(), PageError>,
        counted: (u64, u64),
    ) -> Result<(), DbError> {
        if self.in_flight.is_empty() && out.is_ok() {
            self.last_stored = None;
        }
        let Err(e) = out else { return Ok(()) };
        let mut unconfirmed = counted;
        let mut add = |c: (u64, u64)| {
            unconfirmed = (unconfirmed.0 + c.0, unconfirmed.1 + c.1);
        };
        let mut discarded = 0;
        if let Some(p) = self.pending.take() {
            discarded += p.pages_held;
            add(p.counted());
        }
        for rest in std::mem::take(&mut self.in_flight) {
            discarded += rest.pages;
            add(rest.counted);
            let _ = rest.done.await;
        }
        self.unconfirmed = unconfirmed;
        self.last_stored = None;
        let mut e = match e {
            PageError::Database(e) => self.db_err("commit a page", &e),
            PageError::Predecessor => DbError::Database {
                destination: self.destination.clone(),
                action: "commit a page",
                message: String::from("the page before it was not stored"),
            },
            PageError::WriterGone => DbError::Database {
                destination: self.destination.clone(),
                action: "commit a page",
                message: String::from("the page writer's connection is gone"),
            },
        };
        if let (DbError::Database { message, .. }, 1..) = (&mut e, discarded) {
            message.push_str(&format!(
                " ({discarded} page(s) accepted after it were not stored either)"
            ));
        }
        Err(e)
    }

    /// Hands the pending pages to a writer, once one is free and no page in flight shares a
    /// conversation with them.
    async fn submit_pending(&mut self) -> Result<(), DbError> {
        self.make_room(&[]).await?;
        self.submit_now();
        Ok(())
    }

    /// Waits until a writer is free and no page in flight shares a conversation with the
    /// pending pages or with `more`. A failure meanwhile drops the pending pages with the
    /// ones in flight.
    async fn make_room(&mut self, more: &[[u8; 16]]) -> Result<(), DbError> {
        let mut keys: HashSet<[u8; 16]> = more.iter().copied().collect();
        if let Some(p) = &self.pending {
            keys.extend(p.keys.iter().copied());
        }
        while self.in_flight.len() >= self.writers.len()
            || self.in_flight.iter().any(|f| !f.keys.is_disjoint(&keys))
        {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    /// Whether `gathered` held conversations go to a free writer now: at once when no
    /// transaction is in flight, else once they are as many as the newest one in flight holds
    /// (or [`COALESCE_UP_TO`]). Transactions commit in order: one smaller than its
    /// predecessor would finish first and then wait for it, its connection idle, and the two
    /// writers would settle into one doing the large transactions and the other small ones
    /// behind it (measured: one server process busy twice as long as the other). Equal sizes
    /// keep them staggered, each working while the other commits.
    fn ready(&self, gathered: usize) -> bool {
        if self.in_flight.len() >= self.writers.len() {
            return false;
        }
        let newest = self.in_flight.back().map_or(0, |f| f.keys.len());
        gathered >= newest.min(COALESCE_UP_TO)
    }

    /// Hands the pending pages to the next writer (free: see [`make_room`](Self::make_room)).
    fn submit_now(&mut self) {
        let Some(page) = self.pending.take() else {
            return;
        };
        let keys = page.keys.iter().copied().collect();
        let pages = page.pages_held;
        let counted = page.counted();
        let writer = &self.writers[self.next_writer % self.writers.len()];
        self.next_writer = self.next_writer.wrapping_add(1);
        let (stored, done) = writer.submit(*page, self.last_stored.take());
        self.last_stored = Some(stored);
        self.in_flight.push_back(InFlight {
            keys,
            pages,
            counted,
            done,
        });
    }

    /// Waits until every page accepted is durable.
    async fn settle_all(&mut self) -> Result<(), DbError> {
        self.submit_pending().await?;
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(())
    }
}

fn copy_statement(table: &str, columns: &[&str]) -> String {
    format!(
        "COPY {table} ({}) FROM STDIN (FORMAT binary)",
        columns.join(", ")
    )
}

/// The staged columns: the conversation's own, without `written_at` and `run_id`.
fn stage_columns() -> Vec<&'static str> {
    let mut cols = CONVERSATIONS.column_names();
    cols.retain(|c| !matches!(*c, "written_at" | "run_id"));
    cols
}

fn stage_ddl() -> String {
    let cols: Vec<String> = CONVERSATIONS
        .columns
        .iter()
        .filter(|c| stage_columns().contains(&c.name))
        .map(|c| format!("{} {}", c.name, c.ty.sql(Dialect::Postgres)))
        .collect();
    // NOTE: created once per connection; its rows go at every commit or rollback, so each
    // page's transaction sees only its own conversations, without creating a table per page.
    format!(
        "CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} ({}) ON COMMIT DELETE ROWS",
        cols.join(", ")
    )
}

/// `$1` ids, `$2` export key: child rows and in-progress marks of the page's conversations.
///
/// NOTE: a join with the unnested ids rather than `conversation_id = ANY($1)`: before the
/// first ANALYZE the planner takes `= ANY` of 100 ids to match half of a table and scans it
/// whole (the deletes grew to 30 ms per page within 20,000 conversations); the join probes the
/// primary key once per id.
fn delete_children() -> String {
    let mut ctes: Vec<String> = CHILD_TABLES
        .iter()
        .map(|t| {
            format!(
                "d_{0} AS (DELETE FROM {0} t USING unnest($1::text[]) AS d(id) \
                 WHERE t.conversation_id = d.id::uuid)",
                t.name
            )
        })
        .collect();
    ctes.push(String::from(
        "d_in_progress AS (DELETE FROM keel_in_progress t USING unnest($1::text[]) AS d(id) \
         WHERE t.export_key = $2 AND t.conversation_id = d.id::uuid)",
    ));
    format!("WITH {} SELECT 1", ctes.join(", "))
}

/// Runs ANALYZE on the tables that hold rows but were never analyzed: a run that re-writes
/// conversations of an earlier run started before autovacuum analyzed the tables would
/// otherwise get plans that scan the child tables whole for every page.
async fn analyze_if_never(conn: &mut PgConnection) -> sqlx::Result<()> {
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables WHERE schemaname = current_schema() \
         AND last_analyze IS NULL AND last_autoanalyze IS NULL AND n_live_tup > 0",
    )
    .fetch_all(&mut *conn)
    .await?;
    for t in TABLES.iter().filter(|t| stale.iter().any(|s| s == t.name)) {
        sqlx::query(&format!("ANALYZE {}", t.name))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A schema problem found while connecting, before it is given the destination's name.
enum Prepare {
    Db(&'static str, sqlx::Error),
    Schema(&'static str, String),
}

impl Prepare {
    fn into_db(self, destination: &str, secret: Option<&str>) -> DbError {
        match self {
            Prepare::Db(action, e) => DbError::database(destination, action, &e, secret),
            Prepare::Schema(table, problem) => DbError::Schema {
                destination: destination.to_owned(),
                table: table.to_owned(),
                problem,
            },
        }
    }
}

async fn prepare_schema(conn: &mut PgConnection, _destination: &str) -> Result<(), Prepare> {
    let db = |e| Prepare::Db("create or check the schema", e);
    let mut tx = conn.begin().await.map_err(db)?;
    async fn columns(tx: &mut PgConnection, table: &str) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(tx)
        .await
    }
    let version_cols = columns(&mut tx, VERSION_TABLE).await.map_err(db)?;
    if version_cols.is_empty() {
        sqlx::query(&format!(
            "CREATE TABLE {VERSION_TABLE} (version BIGINT NOT NULL)"
        ))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    } else if version_cols != ["version"] {
        return Err(Prepare::Schema(
            VERSION_TABLE,
            format!("exists with other columns ({})", version_cols.join(", ")),
        ));
    }
    let version: Option<i64> =
        sqlx::query(&format!("SELECT MAX(version)::bigint FROM {VERSION_TABLE}"))
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(db)?;
    if let Some(v) = version.filter(|v| *v > schema::SCHEMA_VERSION) {
        return Err(Prepare::Schema(VERSION_TABLE, schema::newer_version(v)));
    }
    if let Some(v) = version.filter(|v| *v < schema::SCHEMA_VERSION) {
        for (table, stmt) in schema::upgrade(v, Dialect::Postgres) {
            sqlx::query(&stmt)
                .execute(&mut *tx)
                .await
                .map_err(|e| Prepare::Schema(table, schema::upgrade_failed(v, &e.to_string())))?;
        }
        sqlx::query(&format!("UPDATE {VERSION_TABLE} SET version = $1"))
            .bind(schema::SCHEMA_VERSION)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    for t in TABLES {
        let found = columns(&mut tx, t.name).await.map_err(db)?;
        if found.is_empty() {
            for stmt in t.ddl(Dialect::Postgres) {
                sqlx::query(&stmt).execute(&mut *tx).await.map_err(db)?;
            }
        } else {
            t.check_columns(&found)
                .map_err(|p| Prepare::Schema(t.name, p))?;
        }
    }
    if version.is_none() {
        sqlx::query(&format!(
            "INSERT INTO {VERSION_TABLE} (version) VALUES ($1)"
        ))
        .bind(schema::SCHEMA_VERSION)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

impl PageSink for PostgresSink {
    type Error = DbError;

    async fn open(&mut self) -> Result<SinkState, DbError> {
        self.settle_all().await?;
        self.enter()?;
        let row = sqlx::query(sql::LOAD_STATE)
            .bind(&self.spec.key)
            .fetch_optional(&mut self.lock)
            .await
            .map_err(|e| self.db_err("read the resume point", &e))?;
        self.busy = false;
        let Some(row) = row else {
            self.resume_query = None;
            return Ok(SinkState::default());
        };
        let read =
            |row: &sqlx::postgres::PgRow| -> sqlx::Result<(String, Option<String>, i64, i64)> {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ))
            };
        let (query, resume, pages, conversations) =
            read(&row).map_err(|e| self.db_err("read the resume point", &e))?;
        let Some(resume) = resume else {
            self.resume_query = None;
            return Ok(SinkState::default());
        };
        let resume: Checkpoint = serde_json::from_str(&resume)
            .map_err(|e| self.state_error(format!("resume point: {e}")))?;
        let query: serde_json::Value =
            serde_json::from_str(&query).map_err(|e| self.state_error(format!("query: {e}")))?;
        self.resume_query = Some(query);
        Ok(SinkState {
            resume: Some(resume),
            pages: u64::try_from(pages).unwrap_or(0),
            conversations: u64::try_from(conversations).unwrap_or(0),
        })
    }

    async fn commit(&mut self, page: Commit<'_>) -> Result<(), DbError> {
        let mut batch = Batch::from_records(page.records).map_err(|b| DbError::Record {
            destination: self.destination.clone(),
            id: b.id,
            message: b.message,
        })?;
        let resume = serde_json::to_string(page.resume)
            .map_err(|e| self.state_error(format!("resume point: {e}")))?;
        for c in &mut batch.conversations {
            if let Some(stored) = nul_escapes_as_text(&c.raw) {
                tracing::warn!(
                    conversation = %c.id,
                    "the record holds U+0000, which jsonb cannot store: stored with the text \\u0000 in its place"
                );
                c.raw = stored;
            }
        }
        let keys = batch
            .conversations
            .iter()
            .map(|c| uuid_key(&c.id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|id| DbError::Record {
                destination: self.destination.clone(),
                id,
                message: String::from(
                    "the conversation id is not a UUID in lowercase hyphenated form \
                     (PostgreSQL stores conversation ids as uuid)",
                ),
            })?;
        // NOTE: a failure of a page in flight is reported before this page is accepted.
        self.reap().await?;
        let query = self
            .resume_query
            .as_ref()
            .unwrap_or(&self.spec.query)
            .to_string();
        let page = Page {
            batch,
            keys,
            key: Arc::clone(&self.key),
            run_id: Arc::clone(&self.run_id),
            query,
            resume,
            pages: i64::try_from(page.pages).unwrap_or(i64::MAX),
            conversations: i64::try_from(page.records.len()).unwrap_or(i64::MAX),
            pages_held: 1,
        };
        // NOTE: pages merged into one transaction must not share a conversation (one
        // statement may not write a row twice); the pending ones then go first, alone.
        if let Some(pending) = &self.pending {
            let held: HashSet<&[u8; 16]> = pending.keys.iter().collect();
            if page.keys.iter().any(|k| held.contains(k)) {
                self.submit_pending().await?;
            }
        }
        let gathered = self.pending.as_ref().map_or(0, |p| p.keys.len()) + page.keys.len();
        let now = gathered >= COALESCE_UP_TO || self.ready(gathered);
        if now {
            // NOTE: waits before this page joins the pending ones: a failure meanwhile
            // drops those, and this page is not accepted.
            self.make_room(&page.keys).await?;
        }
        match &mut self.pending {
            Some(pending) => pending.absorb(page),
            None => self.pending = Some(Box::new(page)),
        }
        if now {
            self.submit_now();
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), DbError> {
        self.settle_all().await
    }

    async fn committed_ids(&mut self, part: Interval) -> Result<HashSet<String>, DbError> {
        self.settle_all().await?;
        self.enter()?;
        let ids: Vec<String> = sqlx::query_scalar(sql::IDS_IN_PART)
            .bind(part.start())
            .bind(part.end())
            .fetch_all(&mut self.lock)
            .await
            .map_err(|e| self.db_err("read committed ids", &e))?;
        self.busy = false;
        Ok(ids.into_iter().collect())
    }

    async fn close(&mut self) -> Result<(), DbError> {
        self.settle_all().await?;
        self.enter()?;
        let query = self
            .resume_query
            .as_ref()
            .unwrap_or(&self.spec.query)
            .to_string();
        sqlx::query(sql::COMPLETE)
            .bind(&self.spec.key)
            .bind(&query)
            .bind(self.pending_watermark)
            .bind(&self.spec.run_id)
            .bind(OffsetDateTime::now_utc())
            .execute(&mut self.lock)
            .await
            .map_err(|e| self.db_err("complete the export", &e))?;
        self.busy = false;
        self.resume_query = None;
        self.pending_watermark = None;
        if self.hold_lock {
            return Ok(());
        }
        // NOTE: released here rather than left to the connection's end, which the server
        // notices only some time after the sink is dropped: the next run can start at once.
        self.release().await
    }
}

/// The record with every `\u0000` escape (U+0000, which `jsonb` cannot hold) turned into an
/// escaped backslash followed by `u0000`, so that the stored string reads `\u0000` where the
/// API's held the character; `None` when the record has none (the usual case: one scan).
fn nul_escapes_as_text(raw: &str) -> Option<String> {
    const NUL: &[u8] = b"\\u0000";
    if !raw.contains("\\u0000") {
        return None;
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len() + 8);
    let (mut at, mut from, mut changed) = (0, 0, false);
    while at < bytes.len() {
        if bytes[at] != b'\\' {
            at += 1;
            continue;
        }
        // NOTE: outside strings valid JSON has no backslash, and inside one a backslash always
        // starts an escape: `\\` is skipped whole, so a `\u0000` found here is a real one.
        if bytes[at..].starts_with(NUL) {
            out.push_str(&raw[from..at]);
            out.push_str("\\\\u0000");
            at += NUL.len();
            from = at;
            changed = true;
        } else {
            at += 2;
        }
    }
    out.push_str(&raw[from..]);
    changed.then_some(out)
}

/// The 16 bytes of a conversation id, which must be a UUID written as PostgreSQL writes one
/// back (lowercase, hyphenated): ids read back from the database then equal the API's.
fn uuid_key(id: &str) -> Result<[u8; 16], String> {
    let parsed = uuid::Uuid::try_parse(id).map_err(|_| id.to_owned())?;
    let mut canonical = uuid::Uuid::encode_buffer();
    if parsed.hyphenated().encode_lower(&mut canonical) != id {
        return Err(id.to_owned());
    }
    Ok(*parsed.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_table_has_the_conversation_columns_without_run_fields() {
        let ddl = stage_ddl();
        assert!(ddl.contains("conversation_start TIMESTAMPTZ"), "{ddl}");
        assert!(ddl.contains("record JSONB"), "{ddl}");
        assert!(
            !ddl.contains("NOT NULL") && !ddl.contains("run_id"),
            "{ddl}"
        );
    }

    #[test]
    fn child_deletes_cover_every_child_table_and_in_progress() {
        let sql = delete_children();
        for t in CHILD_TABLES {
            assert!(sql.contains(&format!("DELETE FROM {} t ", t.name)), "{sql}");
        }
        assert!(sql.contains("keel_in_progress"));
    }

    #[test]
    fn nul_escapes_become_text_and_nothing_else_changes() {
        assert_eq!(nul_escapes_as_text(r#"{"a":"x"}"#), None);
        assert_eq!(
            nul_escapes_as_text(r#"{"a":"x\u0000y","\u0000":1}"#).as_deref(),
            Some(r#"{"a":"x\\u0000y","\\u0000":1}"#)
        );
        // An escaped backslash followed by the text u0000 is no NUL.
        assert_eq!(nul_escapes_as_text(r#"{"a":"\\u0000"}"#), None);
        let both = r#"{"a":"\\\u0000"}"#;
        assert_eq!(
            nul_escapes_as_text(both).as_deref(),
            Some(r#"{"a":"\\\\u0000"}"#)
        );
    }

    #[test]
    fn conversation_ids_are_canonical_uuids() {
        let id = "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3";
        let key = uuid_key(id).unwrap();
        assert_eq!(key[0], 0x0a);
        assert_eq!(key[15], 0xd3);
        for bad in [
            "0A1B2C3D-4E5F-4A6B-8C7D-8E9FA0B1C2D3",
            "0a1b2c3d4e5f4a6b8c7d8e9fa0b1c2d3",
            "{0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3}",
            "conv-0001",
            "",
        ] {
            assert_eq!(uuid_key(bad), Err(bad.to_owned()));
        }
    }

    #[test]
    fn the_lock_key_spells_its_name() {
        assert_eq!(&LOCK_KEY.to_be_bytes(), b"keelgdb1");
    }
}
