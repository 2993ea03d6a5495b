//! Statements shared by both databases, rendered from the schema's constants only.
//!
//! Placeholders are PostgreSQL's `$N`; [`numbered_for_sqlite`] turns them into SQLite's `?N`.

use crate::schema::{Table, CONVERSATIONS};

/// `$1` → `?1` (the statements are constants: no `$` occurs elsewhere).
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn numbered_for_sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

/// `INSERT INTO t (all columns) VALUES ($1, …)`.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn insert(t: &Table) -> String {
    let cols = t.column_names();
    let params: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        t.name,
        cols.join(", "),
        params.join(", ")
    )
}

/// `ON CONFLICT (conversation_id) DO UPDATE SET` every other column from `excluded`.
pub(crate) fn conversation_conflict() -> String {
    let set: Vec<String> = CONVERSATIONS
        .column_names()
        .into_iter()
        .skip(1)
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        " ON CONFLICT (conversation_id) DO UPDATE SET {}",
        set.join(", ")
    )
}

/// Stores a page's resume point and adds its counts: `$1` key, `$2` query, `$3` resume,
/// `$4` pages, `$5` conversations, `$6` run id, `$7` now.
pub(crate) const STORE_RESUME: &str = "INSERT INTO keel_exports \
     (export_key, query, resume, pages, conversations, watermark, run_id, updated_at, completed_at) \
     VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, NULL) \
     ON CONFLICT (export_key) DO UPDATE SET query = excluded.query, resume = excluded.resume, \
     pages = keel_exports.pages + excluded.pages, \
     conversations = keel_exports.conversations + excluded.conversations, \
     run_id = excluded.run_id, updated_at = excluded.updated_at, completed_at = NULL";

/// Marks an export complete: resume point and counts cleared, watermark moved when given.
/// `$1` key, `$2` query, `$3` watermark (or NULL), `$4` run id, `$5` now.
pub(crate) const COMPLETE: &str = "INSERT INTO keel_exports \
     (export_key, query, resume, pages, conversations, watermark, run_id, updated_at, completed_at) \
     VALUES ($1, $2, NULL, 0, 0, $3, $4, $5, $5) \
     ON CONFLICT (export_key) DO UPDATE SET resume = NULL, pages = 0, conversations = 0, \
     watermark = COALESCE(excluded.watermark, keel_exports.watermark), \
     run_id = excluded.run_id, updated_at = excluded.updated_at, \
     completed_at = excluded.completed_at";

/// `$1` key → query, resume, pages, conversations.
pub(crate) const LOAD_STATE: &str =
    "SELECT query, resume, pages, conversations FROM keel_exports WHERE export_key = $1";

/// `$1` key → watermark.
pub(crate) const LOAD_WATERMARK: &str = "SELECT watermark FROM keel_exports WHERE export_key = $1";

/// `$1` key → ids stored without an end, with their start, earliest first.
pub(crate) const LOAD_IN_PROGRESS: &str = "SELECT CAST(p.conversation_id AS TEXT), \
     c.conversation_start FROM keel_in_progress p \
     JOIN conversations c ON c.conversation_id = p.conversation_id \
     WHERE p.export_key = $1 ORDER BY c.conversation_start, p.conversation_id";

/// `$1` start (inclusive), `$2` end (exclusive) → ids.
pub(crate) const IDS_IN_PART: &str = "SELECT CAST(conversation_id AS TEXT) FROM conversations \
     WHERE conversation_start >= $1 AND conversation_start < $2";
