//! [`PostgresSink`]: a PostgreSQL server, COPY into a staging table and one upsert per page.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr as _;

use keel_genesys::sink::{Commit, PageSink, SinkState};
use keel_genesys::{Checkpoint, Interval};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection as _, Row as _};
use time::OffsetDateTime;

mod copy;

use crate::destination::PgUrl;
use crate::error::DbError;
use crate::flatten::{iso_ms, Batch};
use crate::schema::{self, Dialect, CHILD_TABLES, CONVERSATIONS, TABLES, VERSION_TABLE};
use crate::spec::ExportSpec;
use crate::sql;
use copy::CopyText;

/// The advisory lock key of a keel export destination (`keelgdb1` in ASCII).
const LOCK_KEY: i64 = 0x6b65_656c_6764_6231;

/// The per-connection staging table of a page's conversations.
const STAGE: &str = "keel_stage_conversations";

/// A [`PageSink`] into a PostgreSQL database.
///
/// Each page is one transaction: its conversations are COPied into a session-local staging
/// table and upserted from there (`INSERT … SELECT … ON CONFLICT (conversation_id) DO UPDATE`,
/// since COPY itself cannot resolve conflicts), their child rows deleted and COPied afresh,
/// and the resume point stored. Ids repeated inside a page are reduced to their last record
/// first (one statement may not update a row twice).
///
/// The connection string's password is optional: without one, `PGPASSWORD` or the `.pgpass`
/// file (`PGPASSFILE`) supplies it, as libpq does; `PGHOST`, `PGPORT`, `PGUSER` and
/// `PGDATABASE` fill what the URL leaves out.
///
/// A conversation stored before whose record comes back unchanged is left as it is (its
/// `written_at` and `run_id` too): nothing of it is written again.
///
/// Needs PostgreSQL 12 or newer (`plan_cache_mode`, set for the sink's session).
///
/// One run at a time: the sink takes `pg_try_advisory_lock` on a connection of its own that
/// it holds, idle, for the whole run (a lock belongs to its connection; it is never taken on
/// a pooled one). The lock goes at [`close`](PageSink::close), or with that connection when
/// the sink is dropped or the process dies.
pub struct PostgresSink {
    conn: PgConnection,
    lock: PgConnection,
    destination: String,
    secret: Option<String>,
    spec: ExportSpec,
    resume_query: Option<serde_json::Value>,
    pending_watermark: Option<OffsetDateTime>,
    hold_lock: bool,
    /// Set while a call runs: still set at the next call means a call was dropped mid-way
    /// and the connection's state is unknown.
    busy: bool,
    buf: CopyText,
}

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
    /// Connects (twice: the run lock's connection and the data connection), takes the run
    /// lock, and creates or checks the schema. Call it before fetching anything.
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
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(err("connect"))?;
        prepare_schema(&mut conn, &destination)
            .await
            .map_err(|e| e.into_db(&destination, secret.as_deref()))?;
        analyze_if_never(&mut conn)
            .await
            .map_err(err("analyze the tables"))?;
        // NOTE: a record (about 2 KB of JSON) is compressed when stored; lz4 costs a fraction
        // of the default pglz's CPU, and every reader decompresses either. A server built
        // without lz4 refuses the setting and keeps pglz.
        let _ = sqlx::query("SET default_toast_compression = 'lz4'")
            .execute(&mut conn)
            .await;
        sqlx::query(&stage_ddl())
            .execute(&mut conn)
            .await
            .map_err(err("create the staging table"))?;
        Ok(PostgresSink {
            conn,
            lock,
            destination,
            secret,
            spec,
            resume_query: None,
            pending_watermark: None,
            hold_lock: false,
            busy: false,
            buf: CopyText::default(),
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
    /// [`DbError::Database`].
    pub async fn watermark(&mut self) -> Result<Option<OffsetDateTime>, DbError> {
        self.enter()?;
        let row: Option<Option<OffsetDateTime>> = sqlx::query_scalar(sql::LOAD_WATERMARK)
            .bind(&self.spec.key)
            .fetch_optional(&mut self.conn)
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
    /// [`DbError::Database`].
    pub async fn release(&mut self) -> Result<(), DbError> {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut self.lock)
            .await
            .map_err(|e| self.db_err("release the run lock", &e))
            .map(drop)
    }

    /// Conversations this export definition stored without an end: a later run fetches them
    /// again (by id) until they have ended.
    ///
    /// # Errors
    /// [`DbError::Database`].
    pub async fn in_progress_ids(&mut self) -> Result<Vec<String>, DbError> {
        self.enter()?;
        let ids = sqlx::query_scalar(sql::LOAD_IN_PROGRESS)
            .bind(&self.spec.key)
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| self.db_err("read conversations in progress", &e))?;
        self.busy = false;
        Ok(ids)
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

    async fn write_page(
        &mut self,
        batch: &Batch,
        resume: &str,
        pages: i64,
        n: i64,
    ) -> sqlx::Result<()> {
        let query = self
            .resume_query
            .as_ref()
            .unwrap_or(&self.spec.query)
            .to_string();
        let mut tx = self.conn.begin().await?;
        let ids: Vec<&str> = batch.conversations.iter().map(|c| c.id.as_str()).collect();
        // NOTE: the run lock keeps other keel runs out between this check and the COPY; a
        // page of conversations none of which is stored yet (a first export) is COPied
        // straight into `conversations`, without the staging table and upsert.
        let any_stored: bool = if ids.is_empty() {
            false
        } else {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM conversations c \
                 JOIN unnest($1::text[]) AS d(id) ON c.conversation_id = d.id)",
            )
            .bind(&ids)
            .fetch_one(&mut *tx)
            .await?
        };
        if !ids.is_empty() && !any_stored {
            let now = iso_ms(OffsetDateTime::now_utc());
            self.buf
                .conversations(&batch.conversations, Some((&now, &self.spec.run_id)));
            let all = CONVERSATIONS.column_names();
            copy_in(
                &mut tx,
                &copy_statement(CONVERSATIONS.name, &all),
                &self.buf,
            )
            .await?;
        }
        // Which of the page's conversations get child rows (`None`: all of them).
        let mut keep: Option<Vec<bool>> = None;
        if any_stored {
            self.buf.conversations(&batch.conversations, None);
            copy_in(&mut tx, &copy_statement(STAGE, &stage_columns()), &self.buf).await?;
            let cols = CONVERSATIONS.column_names().join(", ");
            let staged = stage_columns().join(", ");
            // NOTE: `xmax <> 0` on a row returned by an upsert means it was updated, not
            // inserted; only conversations stored before have child rows to replace. A stored
            // conversation whose record is unchanged is left as it is (no new row version, its
            // child rows kept): an incremental run's overlap fetches mostly those.
            let upsert = format!(
                "INSERT INTO conversations ({cols}) SELECT {staged}, now(), $1 \
                 FROM {STAGE}{} WHERE conversations.record IS DISTINCT FROM excluded.record \
                 RETURNING conversation_id, xmax <> 0 AS updated",
                sql::conversation_conflict()
            );
            let rows: Vec<(String, bool)> = sqlx::query_as(&upsert)
                .bind(&self.spec.run_id)
                .fetch_all(&mut *tx)
                .await?;
            let updated: Vec<&str> = rows.iter().filter(|r| r.1).map(|r| r.0.as_str()).collect();
            if !updated.is_empty() {
                sqlx::query(&delete_children())
                    .bind(&updated)
                    .bind(&self.spec.key)
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
                     SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
                )
                .bind(&self.spec.key)
                .bind(&open)
                .execute(&mut *tx)
                .await?;
            }
            for t in CHILD_TABLES {
                if self.buf.children(t.name, batch, keep.as_deref()) {
                    copy_in(
                        &mut tx,
                        &copy_statement(t.name, &t.column_names()),
                        &self.buf,
                    )
                    .await?;
                }
            }
        }
        sqlx::query(sql::STORE_RESUME)
            .bind(&self.spec.key)
            .bind(&query)
            .bind(resume)
            .bind(pages)
            .bind(n)
            .bind(&self.spec.run_id)
            .bind(OffsetDateTime::now_utc())
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}

async fn copy_in(conn: &mut PgConnection, statement: &str, data: &CopyText) -> sqlx::Result<()> {
    let mut copy = conn.copy_in_raw(statement).await?;
    if let Err(e) = copy.send(data.bytes()).await {
        let _ = copy.abort("keel: send failed").await;
        return Err(e);
    }
    copy.finish().await.map(drop)
}

fn copy_statement(table: &str, columns: &[&str]) -> String {
    format!("COPY {table} ({}) FROM STDIN", columns.join(", "))
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
                 WHERE t.conversation_id = d.id)",
                t.name
            )
        })
        .collect();
    ctes.push(String::from(
        "d_in_progress AS (DELETE FROM keel_in_progress t USING unnest($1::text[]) AS d(id) \
         WHERE t.export_key = $2 AND t.conversation_id = d.id)",
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
        self.enter()?;
        let row = sqlx::query(sql::LOAD_STATE)
            .bind(&self.spec.key)
            .fetch_optional(&mut self.conn)
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
        let batch = Batch::from_records(page.records).map_err(|b| DbError::Record {
            destination: self.destination.clone(),
            id: b.id,
            message: b.message,
        })?;
        let resume = serde_json::to_string(page.resume)
            .map_err(|e| self.state_error(format!("resume point: {e}")))?;
        self.enter()?;
        let pages = i64::try_from(page.pages).unwrap_or(i64::MAX);
        let n = i64::try_from(page.records.len()).unwrap_or(i64::MAX);
        let out = self.write_page(&batch, &resume, pages, n).await;
        self.busy = false;
        out.map_err(|e| self.db_err("commit a page", &e))
    }

    async fn committed_ids(&mut self, part: Interval) -> Result<HashSet<String>, DbError> {
        self.enter()?;
        let ids: Vec<String> = sqlx::query_scalar(sql::IDS_IN_PART)
            .bind(part.start())
            .bind(part.end())
            .fetch_all(&mut self.conn)
            .await
            .map_err(|e| self.db_err("read committed ids", &e))?;
        self.busy = false;
        Ok(ids.into_iter().collect())
    }

    async fn close(&mut self) -> Result<(), DbError> {
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
            .execute(&mut self.conn)
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
    fn the_lock_key_spells_its_name() {
        assert_eq!(&LOCK_KEY.to_be_bytes(), b"keelgdb1");
    }
}
