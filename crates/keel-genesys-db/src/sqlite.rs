//! [`SqliteSink`]: an embedded SQLite file, one transaction per page.

use std::collections::HashSet;
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use keel_genesys::sink::{Commit, PageSink, SinkState};
use keel_genesys::{Checkpoint, Interval};
use rusqlite::{params, Connection, OptionalExtension as _, TransactionBehavior};
use time::OffsetDateTime;

use crate::error::DbError;
use crate::flatten::{iso_ms, parse_time, Batch};
use crate::schema::{self, Dialect, CHILD_TABLES, CONVERSATIONS, TABLES, VERSION_TABLE};
use crate::spec::ExportSpec;
use crate::sql;

/// A [`PageSink`] into an SQLite file (created when missing).
///
/// The file is in WAL mode with `synchronous = FULL`: when [`commit`](PageSink::commit)
/// returns, the page and its resume point are durable. SQLite work runs on tokio's blocking
/// pool, so the sink does not stall the runtime. One run at a time: the sink holds an
/// exclusive lock on `PATH.lock` until [`close`](PageSink::close) or drop (the OS releases it
/// when the process dies, so a killed run never leaves a stale lock).
pub struct SqliteSink {
    conn: Option<Connection>,
    destination: String,
    spec: ExportSpec,
    resume_query: Option<serde_json::Value>,
    pending_watermark: Option<OffsetDateTime>,
    hold_lock: bool,
    lock: File,
}

impl fmt::Debug for SqliteSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSink")
            .field("destination", &self.destination)
            .field("export", &self.spec.key)
            .field("run_id", &self.spec.run_id)
            .finish_non_exhaustive()
    }
}

fn db_err<'a>(
    destination: &'a str,
    action: &'static str,
) -> impl Fn(rusqlite::Error) -> DbError + 'a {
    move |e| DbError::database(destination, action, &e, None)
}

impl SqliteSink {
    /// Opens (or creates) the database at `path`, takes the run lock, and creates or checks
    /// the schema. Call it before fetching anything.
    ///
    /// # Errors
    /// [`DbError::Locked`] when another run holds the file, [`DbError::Schema`] naming the
    /// table when a table has other columns or the schema version is newer,
    /// [`DbError::Database`] when SQLite fails.
    pub async fn connect(path: impl AsRef<Path>, spec: ExportSpec) -> Result<Self, DbError> {
        let path = path.as_ref().to_path_buf();
        let destination = format!("sqlite:{}", path.display());
        let lock = lock_file(&path, &destination)?;
        let dest = destination.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, DbError> {
            let mut conn = Connection::open(&path).map_err(db_err(&dest, "open"))?;
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(db_err(&dest, "open"))?;
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
                .map_err(db_err(&dest, "open"))?;
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(db_err(&dest, "open"))?;
            prepare_schema(&mut conn, &dest)?;
            Ok(conn)
        })
        .await
        .map_err(|e| DbError::database(&destination, "open", &e, None))??;
        Ok(SqliteSink {
            conn: Some(conn),
            destination,
            spec,
            resume_query: None,
            pending_watermark: None,
            hold_lock: false,
            lock,
        })
    }

    /// The query stored with the resume point that [`open`](PageSink::open) reported: a
    /// resumed run continues this query, not a newly resolved one.
    pub fn resume_query(&self) -> Option<&serde_json::Value> {
        self.resume_query.as_ref()
    }

    /// The export definition's watermark: where its last completed run ended.
    ///
    /// # Errors
    /// [`DbError::Database`], or [`DbError::State`] for an unreadable stored value.
    pub async fn watermark(&mut self) -> Result<Option<OffsetDateTime>, DbError> {
        let key = self.spec.key.clone();
        let text: Option<String> = self
            .run("read the watermark", move |c| {
                let sql = sql::numbered_for_sqlite(sql::LOAD_WATERMARK);
                c.query_row(&sql, params![key], |r| r.get::<_, Option<String>>(0))
                    .optional()
                    .map(Option::flatten)
            })
            .await?;
        text.map(|t| parse_time(&t).ok_or_else(|| self.state_error(format!("watermark {t:?}"))))
            .transpose()
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
    /// [`DbError::Database`].
    pub async fn release(&mut self) -> Result<(), DbError> {
        self.lock
            .unlock()
            .map_err(|e| DbError::database(&self.destination, "release the run lock", &e, None))
    }

    /// Conversations this export definition stored without an end, with their start, earliest
    /// first: a later run fetches them again (by id) until they have ended.
    ///
    /// # Errors
    /// [`DbError::Database`], or [`DbError::State`] for a start that is not a time.
    pub async fn in_progress(&mut self) -> Result<Vec<(String, OffsetDateTime)>, DbError> {
        let key = self.spec.key.clone();
        let rows: Vec<(String, String)> = self
            .run("read conversations in progress", move |c| {
                let sql = sql::numbered_for_sqlite(sql::LOAD_IN_PROGRESS);
                let mut st = c.prepare(&sql)?;
                let rows = st.query_map(params![key], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(id, start)| match parse_time(&start) {
                Some(t) => Ok((id, t)),
                None => Err(self.state_error(format!(
                    "conversation {id} has a start that is not a time: {start:?}"
                ))),
            })
            .collect()
    }

    /// Stops fetching the conversations `ids` again: this export definition's conversations
    /// in progress that the API no longer returns (their rows stay as last stored).
    ///
    /// # Errors
    /// [`DbError::Database`].
    pub async fn forget_in_progress(&mut self, ids: &[String]) -> Result<(), DbError> {
        let key = self.spec.key.clone();
        let ids = ids.to_vec();
        self.run("forget conversations in progress", move |c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare(
                    "DELETE FROM keel_in_progress WHERE export_key = ?1 AND conversation_id = ?2",
                )?;
                for id in &ids {
                    st.execute(params![key, id])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// Always `(0, 0)`: a page is stored when [`commit`](PageSink::commit) returns (see
    /// [`PostgresSink::unconfirmed`](crate::PostgresSink::unconfirmed)).
    pub fn unconfirmed(&self) -> (u64, u64) {
        (0, 0)
    }

    fn state_error(&self, message: String) -> DbError {
        DbError::State {
            destination: self.destination.clone(),
            key: self.spec.key.clone(),
            message,
        }
    }

    /// Runs `f` on the blocking pool with the connection. If the returned future is dropped
    /// before `f` ends, the connection is gone and later calls fail with
    /// [`DbError::Interrupted`] (an open transaction is rolled back when it is dropped).
    async fn run<T, F>(&mut self, action: &'static str, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let mut conn = self.conn.take().ok_or_else(|| DbError::Interrupted {
            destination: self.destination.clone(),
        })?;
        let joined = tokio::task::spawn_blocking(move || {
            let out = f(&mut conn);
            (conn, out)
        })
        .await;
        let (conn, out) =
            joined.map_err(|e| DbError::database(&self.destination, action, &e, None))?;
        self.conn = Some(conn);
        out.map_err(|e| DbError::database(&self.destination, action, &e, None))
    }
}

fn lock_file(path: &Path, destination: &str) -> Result<File, DbError> {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    let lock_path: PathBuf = path.with_file_name(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| DbError::database(destination, "open the lock file", &e, None))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(DbError::Locked {
            destination: destination.to_owned(),
        }),
        Err(TryLockError::Error(e)) => Err(DbError::database(
            destination,
            "lock the lock file",
            &e,
            None,
        )),
    }
}

fn prepare_schema(conn: &mut Connection, dest: &str) -> Result<(), DbError> {
    let err = db_err(dest, "create or check the schema");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&err)?;
    let columns = |table: &str| -> rusqlite::Result<Vec<String>> {
        let mut st = tx.prepare("SELECT name FROM pragma_table_info(?1)")?;
        let rows = st.query_map(params![table], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    let schema_err = |table: &str, problem: String| DbError::Schema {
        destination: dest.to_owned(),
        table: table.to_owned(),
        problem,
    };
    let version_cols = columns(VERSION_TABLE).map_err(&err)?;
    if version_cols.is_empty() {
        tx.execute(
            &format!("CREATE TABLE {VERSION_TABLE} (version BIGINT NOT NULL)"),
            [],
        )
        .map_err(&err)?;
    } else if version_cols != ["version"] {
        return Err(schema_err(
            VERSION_TABLE,
            format!("exists with other columns ({})", version_cols.join(", ")),
        ));
    }
    let version: Option<i64> = tx
        .query_row(
            &format!("SELECT MAX(version) FROM {VERSION_TABLE}"),
            [],
            |r| r.get(0),
        )
        .map_err(&err)?;
    if let Some(v) = version.filter(|v| *v > schema::SCHEMA_VERSION) {
        return Err(schema_err(VERSION_TABLE, schema::newer_version(v)));
    }
    if let Some(v) = version.filter(|v| *v < schema::SCHEMA_VERSION) {
        for (table, stmt) in schema::upgrade(v, Dialect::Sqlite) {
            tx.execute(&stmt, [])
                .map_err(|e| schema_err(table, schema::upgrade_failed(v, &e.to_string())))?;
        }
        tx.execute(
            &format!("UPDATE {VERSION_TABLE} SET version = ?1"),
            params![schema::SCHEMA_VERSION],
        )
        .map_err(&err)?;
    }
    for t in TABLES {
        let found = columns(t.name).map_err(&err)?;
        if found.is_empty() {
            for stmt in t.ddl(Dialect::Sqlite) {
                tx.execute(&stmt, []).map_err(&err)?;
            }
        } else {
            t.check_columns(&found).map_err(|p| schema_err(t.name, p))?;
        }
    }
    if version.is_none() {
        tx.execute(
            &format!("INSERT INTO {VERSION_TABLE} (version) VALUES (?1)"),
            params![schema::SCHEMA_VERSION],
        )
        .map_err(&err)?;
    }
    tx.commit().map_err(&err)
}

/// Everything one page's transaction writes, owned (it moves to the blocking pool).
struct PageWrite {
    batch: Batch,
    key: String,
    query: String,
    resume: String,
    pages: i64,
    conversations: i64,
    run_id: String,
}

fn write_page(conn: &mut Connection, w: &PageWrite) -> rusqlite::Result<()> {
    let now = iso_ms(OffsetDateTime::now_utc());
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let upsert = sql::numbered_for_sqlite(
            &(sql::insert(&CONVERSATIONS) + &sql::conversation_conflict()),
        );
        let mut conv = tx.prepare_cached(&upsert)?;
        let mut deletes = CHILD_TABLES
            .iter()
            .map(|t| {
                tx.prepare_cached(&format!(
                    "DELETE FROM {} WHERE conversation_id = ?1",
                    t.name
                ))
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut open = tx.prepare_cached(
            "INSERT INTO keel_in_progress (export_key, conversation_id) VALUES (?1, ?2) \
             ON CONFLICT DO NOTHING",
        )?;
        let mut ended = tx.prepare_cached(
            "DELETE FROM keel_in_progress WHERE export_key = ?1 AND conversation_id = ?2",
        )?;
        for c in &w.batch.conversations {
            conv.execute(params![
                c.id,
                iso_ms(c.start),
                c.end.map(iso_ms),
                c.start_day,
                c.start_hour,
                c.duration_ms,
                c.direction,
                c.media_types,
                c.division_ids,
                c.raw,
                now,
                w.run_id,
            ])?;
            for d in &mut deletes {
                d.execute(params![c.id])?;
            }
            if c.end.is_some() {
                ended.execute(params![w.key, c.id])?;
            } else {
                open.execute(params![w.key, c.id])?;
            }
        }
    }
    let convs = &w.batch.conversations;
    {
        let mut st = tx.prepare_cached(&sql::numbered_for_sqlite(&sql::insert(
            &schema::PARTICIPANTS,
        )))?;
        for p in &w.batch.participants {
            st.execute(params![
                convs[p.conv].id,
                p.index,
                w.batch.opt(p.participant_id),
                w.batch.opt(p.purpose),
                w.batch.opt(p.name),
                w.batch.opt(p.user_id)
            ])?;
        }
        let mut st =
            tx.prepare_cached(&sql::numbered_for_sqlite(&sql::insert(&schema::SESSIONS)))?;
        for s in &w.batch.sessions {
            st.execute(params![
                convs[s.conv].id,
                s.participant,
                s.index,
                w.batch.opt(s.session_id),
                w.batch.opt(s.media_type),
                w.batch.opt(s.direction),
                w.batch.opt(s.queue_id)
            ])?;
        }
        let mut st =
            tx.prepare_cached(&sql::numbered_for_sqlite(&sql::insert(&schema::SEGMENTS)))?;
        for g in &w.batch.segments {
            st.execute(params![
                convs[g.conv].id,
                g.participant,
                g.session,
                g.index,
                w.batch.opt(g.segment_type),
                g.start.map(iso_ms),
                g.end.map(iso_ms),
                w.batch.opt(g.queue_id),
                w.batch.opt(g.disconnect_type)
            ])?;
        }
        let mut st = tx.prepare_cached(&sql::numbered_for_sqlite(&sql::insert(
            &schema::SESSION_METRICS,
        )))?;
        for m in &w.batch.metrics {
            st.execute(params![
                convs[m.conv].id,
                m.participant,
                m.session,
                m.index,
                w.batch.text(m.name),
                m.value,
                m.emit_date.map(iso_ms)
            ])?;
        }
    }
    tx.execute(
        &sql::numbered_for_sqlite(sql::STORE_RESUME),
        params![
            w.key,
            w.query,
            w.resume,
            w.pages,
            w.conversations,
            w.run_id,
            now
        ],
    )?;
    tx.commit()
}

impl PageSink for SqliteSink {
    type Error = DbError;

    async fn open(&mut self) -> Result<SinkState, DbError> {
        let key = self.spec.key.clone();
        let row = self
            .run("read the resume point", move |c| {
                c.query_row(
                    &sql::numbered_for_sqlite(sql::LOAD_STATE),
                    params![key],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Option<String>>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    },
                )
                .optional()
            })
            .await?;
        let Some((query, Some(resume), pages, conversations)) = row else {
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
        let batch = Batch::from_records(page.records).map_err(|b| DbError::Record {
            destination: self.destination.clone(),
            id: b.id,
            message: b.message,
        })?;
        let resume = serde_json::to_string(page.resume)
            .map_err(|e| self.state_error(format!("resume point: {e}")))?;
        let query = self
            .resume_query
            .as_ref()
            .unwrap_or(&self.spec.query)
            .to_string();
        let w = PageWrite {
            batch,
            key: self.spec.key.clone(),
            query,
            resume,
            pages: i64::try_from(page.pages).unwrap_or(i64::MAX),
            conversations: i64::try_from(page.records.len()).unwrap_or(i64::MAX),
            run_id: self.spec.run_id.clone(),
        };
        self.run("commit a page", move |c| write_page(c, &w)).await
    }

    async fn committed_ids(&mut self, part: Interval) -> Result<HashSet<String>, DbError> {
        let (from, to) = (iso_ms(part.start()), iso_ms(part.end()));
        self.run("read committed ids", move |c| {
            let mut st = c.prepare_cached(&sql::numbered_for_sqlite(sql::IDS_IN_PART))?;
            let rows = st.query_map(params![from, to], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .await
    }

    async fn close(&mut self) -> Result<(), DbError> {
        let key = self.spec.key.clone();
        let query = self
            .resume_query
            .as_ref()
            .unwrap_or(&self.spec.query)
            .to_string();
        let watermark = self.pending_watermark.map(iso_ms);
        let run_id = self.spec.run_id.clone();
        self.run("complete the export", move |c| {
            let now = iso_ms(OffsetDateTime::now_utc());
            c.execute(
                &sql::numbered_for_sqlite(sql::COMPLETE),
                params![key, query, watermark, run_id, now],
            )
            .map(drop)
        })
        .await?;
        self.resume_query = None;
        self.pending_watermark = None;
        if self.hold_lock {
            return Ok(());
        }
        self.release().await
    }
}
