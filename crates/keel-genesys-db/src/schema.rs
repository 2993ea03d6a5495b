//! The versioned schema, described once and rendered for each database.
//!
//! Every table is created on first use and checked on every open: a table that exists with
//! other columns, or a schema version newer than [`SCHEMA_VERSION`], is an error naming the
//! table, raised before the export fetches anything. A database at an older version is
//! upgraded in the same transaction ([`upgrade`]).
//!
//! Version 2 (from 1), for PostgreSQL's write speed: conversation ids are `uuid` (16 bytes
//! compared as such, where text ids cost a collation-aware comparison at every B-tree level),
//! the child tables are found by a hash index on `conversation_id` instead of a composite
//! primary key (the API's ids are random, so every B-tree insert lands on a random page; a
//! hash index inserts without descending a tree), and the low-selectivity indexes on
//! `sessions.queue_id` and `session_metrics.name` are gone (the analyst queries aggregate over
//! whole days and scan). SQLite keeps text ids and the composite keys; only its two indexes go.

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: i64 = 2;

/// The table holding the schema version (one row).
pub(crate) const VERSION_TABLE: &str = "keel_schema_version";

/// A column's type in each database.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Text,
    /// A conversation id: `uuid` in PostgreSQL, text in SQLite.
    Id,
    /// An instant: `timestamptz` in PostgreSQL, ISO-8601 UTC text with milliseconds in SQLite
    /// (`2024-01-01T00:00:00.000Z`, which sorts in time order).
    Time,
    Int,
    BigInt,
    /// `jsonb` in PostgreSQL, JSON text in SQLite.
    Json,
}

#[derive(Debug)]
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
    pub(crate) not_null: bool,
}

#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) columns: &'static [Column],
    pub(crate) primary_key: &'static [&'static str],
    /// Whether the table holds rows of a conversation (its child rows): PostgreSQL finds them
    /// by a hash index on `conversation_id` and gives the table no primary key (the sink
    /// replaces a conversation's rows whole, under the conversation row's lock, so they stay
    /// unique); SQLite keeps `primary_key`.
    pub(crate) conversation_rows: bool,
    /// `(index name, columns)`.
    pub(crate) indexes: &'static [(&'static str, &'static [&'static str])],
}

const fn col(name: &'static str, ty: Ty, not_null: bool) -> Column {
    Column { name, ty, not_null }
}

use Ty::*;

/// The conversations, one row each, with the record as sent.
pub(crate) const CONVERSATIONS: Table = Table {
    name: "conversations",
    columns: &[
        col("conversation_id", Id, true),
        col("conversation_start", Time, true),
        col("conversation_end", Time, false),
        col("start_day", Text, true),
        col("start_hour", Int, true),
        col("duration_ms", BigInt, false),
        col("originating_direction", Text, false),
        col("media_types", Text, true),
        col("division_ids", Text, true),
        col("record", Json, true),
        col("written_at", Time, true),
        col("run_id", Text, true),
    ],
    primary_key: &["conversation_id"],
    conversation_rows: false,
    indexes: &[("conversations_start_idx", &["conversation_start"])],
};

pub(crate) const PARTICIPANTS: Table = Table {
    name: "participants",
    columns: &[
        col("conversation_id", Id, true),
        col("participant_index", Int, true),
        col("participant_id", Text, false),
        col("purpose", Text, false),
        col("participant_name", Text, false),
        col("user_id", Text, false),
    ],
    primary_key: &["conversation_id", "participant_index"],
    conversation_rows: true,
    indexes: &[],
};

pub(crate) const SESSIONS: Table = Table {
    name: "sessions",
    columns: &[
        col("conversation_id", Id, true),
        col("participant_index", Int, true),
        col("session_index", Int, true),
        col("session_id", Text, false),
        col("media_type", Text, false),
        col("direction", Text, false),
        col("queue_id", Text, false),
    ],
    primary_key: &["conversation_id", "participant_index", "session_index"],
    conversation_rows: true,
    indexes: &[],
};

pub(crate) const SEGMENTS: Table = Table {
    name: "segments",
    columns: &[
        col("conversation_id", Id, true),
        col("participant_index", Int, true),
        col("session_index", Int, true),
        col("segment_index", Int, true),
        col("segment_type", Text, false),
        col("segment_start", Time, false),
        col("segment_end", Time, false),
        col("queue_id", Text, false),
        col("disconnect_type", Text, false),
    ],
    primary_key: &[
        "conversation_id",
        "participant_index",
        "session_index",
        "segment_index",
    ],
    conversation_rows: true,
    indexes: &[],
};

pub(crate) const SESSION_METRICS: Table = Table {
    name: "session_metrics",
    columns: &[
        col("conversation_id", Id, true),
        col("participant_index", Int, true),
        col("session_index", Int, true),
        col("metric_index", Int, true),
        col("name", Text, true),
        col("value", BigInt, false),
        col("emit_date", Time, false),
    ],
    primary_key: &[
        "conversation_id",
        "participant_index",
        "session_index",
        "metric_index",
    ],
    conversation_rows: true,
    indexes: &[],
};

/// One row per export definition: its resume point, counters, watermark.
pub(crate) const EXPORTS: Table = Table {
    name: "keel_exports",
    columns: &[
        col("export_key", Text, true),
        col("query", Text, true),
        col("resume", Text, false),
        col("pages", BigInt, true),
        col("conversations", BigInt, true),
        col("watermark", Time, false),
        col("run_id", Text, true),
        col("updated_at", Time, true),
        col("completed_at", Time, false),
    ],
    primary_key: &["export_key"],
    conversation_rows: false,
    indexes: &[],
};

/// Conversations stored without an end, per export definition, to fetch again until they end.
pub(crate) const IN_PROGRESS: Table = Table {
    name: "keel_in_progress",
    columns: &[
        col("export_key", Text, true),
        col("conversation_id", Id, true),
    ],
    primary_key: &["export_key", "conversation_id"],
    conversation_rows: false,
    indexes: &[],
};

/// The child tables of a conversation, replaced whole when it is written again.
pub(crate) const CHILD_TABLES: [&Table; 4] =
    [&PARTICIPANTS, &SESSIONS, &SEGMENTS, &SESSION_METRICS];

/// Every table but the version table, in creation order.
pub(crate) const TABLES: [&Table; 7] = [
    &CONVERSATIONS,
    &PARTICIPANTS,
    &SESSIONS,
    &SEGMENTS,
    &SESSION_METRICS,
    &EXPORTS,
    &IN_PROGRESS,
];

/// The database a statement is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
}

impl Ty {
    pub(crate) fn sql(self, d: Dialect) -> &'static str {
        match (self, d) {
            (Text, _) | (Id, Dialect::Sqlite) => "TEXT",
            (Id, Dialect::Postgres) => "UUID",
            (Time, Dialect::Postgres) => "TIMESTAMPTZ",
            (Time, Dialect::Sqlite) => "TEXT",
            (Int, _) => "INTEGER",
            (BigInt, _) => "BIGINT",
            (Json, Dialect::Postgres) => "JSONB",
            (Json, Dialect::Sqlite) => "TEXT",
        }
    }
}

impl Table {
    /// `CREATE TABLE` and its indexes, from the constants above (no input text).
    pub(crate) fn ddl(&self, d: Dialect) -> Vec<String> {
        let mut cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let null = if c.not_null { " NOT NULL" } else { "" };
                format!("{} {}{null}", c.name, c.ty.sql(d))
            })
            .collect();
        let by_hash = self.conversation_rows && d == Dialect::Postgres;
        if !by_hash {
            cols.push(format!("PRIMARY KEY ({})", self.primary_key.join(", ")));
        }
        let mut out = vec![format!(
            "CREATE TABLE {} (\n  {}\n)",
            self.name,
            cols.join(",\n  ")
        )];
        if by_hash {
            out.push(self.conversation_index());
        }
        for (name, on) in self.indexes {
            out.push(format!(
                "CREATE INDEX {name} ON {} ({})",
                self.name,
                on.join(", ")
            ));
        }
        out
    }

    /// PostgreSQL's index of a child table's rows by conversation.
    fn conversation_index(&self) -> String {
        format!(
            "CREATE INDEX {0}_conversation_idx ON {0} USING hash (conversation_id)",
            self.name
        )
    }

    /// The column names, in order.
    pub(crate) fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.name).collect()
    }

    /// Compares the columns found in the database with the expected ones.
    pub(crate) fn check_columns(&self, found: &[String]) -> Result<(), String> {
        let expected = self.column_names();
        let same =
            found.len() == expected.len() && expected.iter().all(|e| found.iter().any(|f| f == e));
        if same {
            Ok(())
        } else {
            Err(format!(
                "exists with other columns ({}) than this schema (version {SCHEMA_VERSION}: {}); \
                 use another database or rename the table",
                found.join(", "),
                expected.join(", ")
            ))
        }
    }
}

/// The statements that bring a database at schema version `from` to [`SCHEMA_VERSION`], each
/// with the table it changes (for the error that names it); the version row is the caller's.
pub(crate) fn upgrade(from: i64, d: Dialect) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if from < 2 {
        out.push((
            "sessions",
            String::from("DROP INDEX IF EXISTS sessions_queue_idx"),
        ));
        out.push((
            "session_metrics",
            String::from("DROP INDEX IF EXISTS session_metrics_name_idx"),
        ));
        if d == Dialect::Postgres {
            for t in TABLES
                .iter()
                .filter(|t| t.columns.iter().any(|c| matches!(c.ty, Id)))
            {
                if t.conversation_rows {
                    out.push((
                        t.name,
                        format!("ALTER TABLE {0} DROP CONSTRAINT IF EXISTS {0}_pkey", t.name),
                    ));
                }
                out.push((
                    t.name,
                    format!(
                        "ALTER TABLE {} ALTER COLUMN conversation_id TYPE uuid \
                         USING conversation_id::uuid",
                        t.name
                    ),
                ));
                if t.conversation_rows {
                    out.push((t.name, t.conversation_index()));
                }
            }
        }
    }
    out
}

/// The problem text for a table whose upgrade from version `from` failed.
pub(crate) fn upgrade_failed(from: i64, cause: &str) -> String {
    format!(
        "could not be upgraded from schema version {from} to {SCHEMA_VERSION}: {cause}; \
         nothing was changed"
    )
}

/// The problem text for a version table that holds a newer version.
pub(crate) fn newer_version(found: i64) -> String {
    format!(
        "holds schema version {found}, newer than version {SCHEMA_VERSION} that this program \
         knows; use a newer keel"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_names_every_column_and_the_key() {
        let pg = CONVERSATIONS.ddl(Dialect::Postgres);
        assert!(pg[0].contains("record JSONB NOT NULL"));
        assert!(pg[0].contains("PRIMARY KEY (conversation_id)"));
        assert!(pg[1].contains("(conversation_start)"));
        let lite = CONVERSATIONS.ddl(Dialect::Sqlite);
        assert!(lite[0].contains("conversation_start TEXT NOT NULL"));
    }

    #[test]
    fn child_rows_are_found_by_a_hash_index_in_postgres_and_by_the_key_in_sqlite() {
        let pg = SEGMENTS.ddl(Dialect::Postgres);
        assert!(pg[0].contains("conversation_id UUID NOT NULL"), "{}", pg[0]);
        assert!(!pg[0].contains("PRIMARY KEY"), "{}", pg[0]);
        assert_eq!(
            pg[1],
            "CREATE INDEX segments_conversation_idx ON segments USING hash (conversation_id)"
        );
        let lite = SEGMENTS.ddl(Dialect::Sqlite);
        assert!(
            lite[0].contains("conversation_id TEXT NOT NULL"),
            "{}",
            lite[0]
        );
        assert!(lite[0].contains("PRIMARY KEY (conversation_id, participant_index"));
        assert_eq!(lite.len(), 1);
    }

    #[test]
    fn version_1_is_upgraded_table_by_table() {
        let pg: Vec<String> = upgrade(1, Dialect::Postgres)
            .into_iter()
            .map(|(t, sql)| format!("{t}: {sql}"))
            .collect();
        for t in [
            "conversations",
            "participants",
            "session_metrics",
            "keel_in_progress",
        ] {
            assert!(
                pg.iter().any(|s| s.starts_with(&format!(
                    "{t}: ALTER TABLE {t} ALTER COLUMN conversation_id TYPE uuid"
                ))),
                "{t}: {pg:#?}"
            );
        }
        assert!(pg.contains(&String::from(
            "participants: ALTER TABLE participants DROP CONSTRAINT IF EXISTS participants_pkey"
        )));
        assert!(!pg.iter().any(|s| s.contains("conversations_pkey")));
        let lite = upgrade(1, Dialect::Sqlite);
        assert_eq!(lite.len(), 2, "{lite:?}");
        assert!(upgrade(SCHEMA_VERSION, Dialect::Postgres).is_empty());
    }

    #[test]
    fn other_columns_are_reported() {
        let found: Vec<String> = ["conversation_id", "x"].map(String::from).to_vec();
        let e = CONVERSATIONS.check_columns(&found).unwrap_err();
        assert!(e.contains("conversation_id, x"), "{e}");
        let same: Vec<String> = CONVERSATIONS
            .column_names()
            .into_iter()
            .rev()
            .map(String::from)
            .collect();
        CONVERSATIONS.check_columns(&same).unwrap();
    }
}
