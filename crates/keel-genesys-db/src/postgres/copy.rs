//! Rows in COPY's binary format: typed fields, no text to escape on this side or to parse on
//! the server's.
//!
//! A COPY stream is a header, one tuple per row (a 16-bit field count, then each field as a
//! 32-bit length, -1 for NULL, and the value in the type's binary send format), and a trailer.
//! The formats used here: `uuid` is its 16 bytes, `text` its UTF-8 bytes, `integer` and `bigint` big-endian, a
//! `timestamptz` the microseconds since 2000-01-01 UTC as a big-endian `bigint`, and `jsonb`
//! a version byte (1) followed by the JSON text (the server parses it as `jsonb` input).

use time::OffsetDateTime;

use crate::flatten::{Batch, ConvRow};

/// `PGCOPY\n\xff\r\n\0`, then 32-bit flags (0) and header-extension length (0).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// PostgreSQL's epoch: 2000-01-01T00:00:00Z, in Unix seconds.
const PG_EPOCH_UNIX: i64 = 946_684_800;

/// A reusable buffer of one binary COPY stream (it keeps its capacity from page to page).
#[derive(Debug, Default)]
pub(super) struct CopyBinary {
    buf: Vec<u8>,
    rows: usize,
}

impl CopyBinary {
    /// The whole stream, trailer included; call after a writer.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    fn start(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(HEADER);
        self.rows = 0;
    }

    fn finish(&mut self) -> bool {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.rows > 0
    }

    fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
        self.rows += 1;
    }

    fn field(&mut self, value: &[u8]) {
        // NOTE: a field is at most a record (megabytes); the server refuses anything over
        // 1 GB anyway, so a length past i32 cannot reach a valid stream.
        let len = i32::try_from(value.len()).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(value);
    }

    fn text(&mut self, s: &str) {
        // NOTE: PostgreSQL text cannot hold U+0000: a flattened field drops it (the record
        // column keeps it, as the text `\u0000`; see `nul_escapes_as_text`).
        if s.contains('\0') {
            let kept: String = s.chars().filter(|c| *c != '\0').collect();
            self.field(kept.as_bytes());
        } else {
            self.field(s.as_bytes());
        }
    }

    fn uuid(&mut self, key: &[u8; 16]) {
        self.field(key);
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    fn int4(&mut self, v: i32) {
        self.field(&v.to_be_bytes());
    }

    fn opt_int8(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.field(&v.to_be_bytes()),
            None => self.null(),
        }
    }

    fn time(&mut self, t: Option<OffsetDateTime>) {
        match t {
            Some(t) => self.field(&pg_micros(t).to_be_bytes()),
            None => self.null(),
        }
    }

    fn jsonb(&mut self, json: &str) {
        let len = i32::try_from(json.len() + 1).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.push(1);
        self.buf.extend_from_slice(json.as_bytes());
    }

    /// The rows of `rows`: the staged columns in order, followed, when `written` is given, by
    /// `written_at` and `run_id` (all the columns of `conversations`).
    /// `keys` are the conversations' ids as UUIDs, in the order of `rows`.
    pub(super) fn conversations(
        &mut self,
        rows: &[ConvRow],
        keys: &[[u8; 16]],
        written: Option<(OffsetDateTime, &str)>,
    ) {
        self.start();
        for (c, key) in rows.iter().zip(keys) {
            self.row(if written.is_some() { 12 } else { 10 });
            self.uuid(key);
            self.time(Some(c.start));
            self.time(c.end);
            self.text(&c.start_day);
            self.int4(c.start_hour);
            self.opt_int8(c.duration_ms);
            self.opt(c.direction.as_deref());
            self.text(&c.media_types);
            self.text(&c.division_ids);
            self.jsonb(&c.raw);
            if let Some((at, run_id)) = written {
                self.time(Some(at));
                self.text(run_id);
            }
        }
        self.finish();
    }

    /// The rows of child table `table` (all its columns, in order) of the conversations
    /// `keep` marks (all when `None`); `false` when there are none. `keys` as for
    /// [`conversations`](Self::conversations).
    pub(super) fn children(
        &mut self,
        table: &str,
        b: &Batch,
        keys: &[[u8; 16]],
        keep: Option<&[bool]>,
    ) -> bool {
        self.start();
        let kept = |conv: usize| keep.is_none_or(|k| k[conv]);
        let id = |conv: usize| &keys[conv];
        match table {
            "participants" => {
                for p in b.participants.iter().filter(|r| kept(r.conv)) {
                    self.row(6);
                    self.uuid(id(p.conv));
                    self.int4(p.index);
                    self.opt(b.opt(p.participant_id));
                    self.opt(b.opt(p.purpose));
                    self.opt(b.opt(p.name));
                    self.opt(b.opt(p.user_id));
                }
            }
            "sessions" => {
                for s in b.sessions.iter().filter(|r| kept(r.conv)) {
                    self.row(7);
                    self.uuid(id(s.conv));
                    self.int4(s.participant);
                    self.int4(s.index);
                    self.opt(b.opt(s.session_id));
                    self.opt(b.opt(s.media_type));
                    self.opt(b.opt(s.direction));
                    self.opt(b.opt(s.queue_id));
                }
            }
            "segments" => {
                for g in b.segments.iter().filter(|r| kept(r.conv)) {
                    self.row(9);
                    self.uuid(id(g.conv));
                    self.int4(g.participant);
                    self.int4(g.session);
                    self.int4(g.index);
                    self.opt(b.opt(g.segment_type));
                    self.time(g.start);
                    self.time(g.end);
                    self.opt(b.opt(g.queue_id));
                    self.opt(b.opt(g.disconnect_type));
                }
            }
            "session_metrics" => {
                for m in b.metrics.iter().filter(|r| kept(r.conv)) {
                    self.row(7);
                    self.uuid(id(m.conv));
                    self.int4(m.participant);
                    self.int4(m.session);
                    self.int4(m.index);
                    self.text(b.text(m.name));
                    self.opt_int8(m.value);
                    self.time(m.emit_date);
                }
            }
            _ => {}
        }
        self.finish()
    }
}

/// Microseconds since PostgreSQL's epoch (the binary `timestamptz`).
fn pg_micros(t: OffsetDateTime) -> i64 {
    let secs = t.unix_timestamp() - PG_EPOCH_UNIX;
    secs * 1_000_000 + i64::from(t.microsecond())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// Splits a stream back into rows of fields (`None` for NULL).
    fn parse(bytes: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
        assert_eq!(&bytes[..HEADER.len()], HEADER);
        let mut at = HEADER.len();
        let mut rows = Vec::new();
        loop {
            let n = i16::from_be_bytes([bytes[at], bytes[at + 1]]);
            at += 2;
            if n == -1 {
                assert_eq!(at, bytes.len(), "trailer ends the stream");
                return rows;
            }
            let mut row = Vec::new();
            for _ in 0..n {
                let len = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
                at += 4;
                if len < 0 {
                    row.push(None);
                } else {
                    let len = len as usize;
                    row.push(Some(bytes[at..at + len].to_vec()));
                    at += len;
                }
            }
            rows.push(row);
        }
    }

    #[test]
    fn a_nul_in_a_flattened_field_is_dropped() {
        let mut c = CopyBinary::default();
        c.start();
        c.row(1);
        c.text("Zo\0ë");
        c.finish();
        assert_eq!(parse(c.bytes()), [vec![Some("Zoë".as_bytes().to_vec())]]);
    }

    #[test]
    fn times_count_microseconds_from_2000() {
        assert_eq!(pg_micros(datetime!(2000-01-01 00:00 UTC)), 0);
        assert_eq!(pg_micros(datetime!(1999-12-31 23:59:59.5 UTC)), -500_000);
        assert_eq!(
            pg_micros(datetime!(2024-03-01 10:15:00.25 +01:00)),
            (1_709_284_500 - PG_EPOCH_UNIX) * 1_000_000 + 250_000
        );
    }

    #[test]
    fn fields_are_typed_and_null_is_minus_one() {
        let mut c = CopyBinary::default();
        c.start();
        c.row(4);
        c.text("a\tb\\c\nd");
        c.null();
        c.int4(-7);
        c.jsonb("{}");
        assert!(c.finish());
        let rows = parse(c.bytes());
        assert_eq!(
            rows,
            [vec![
                Some(b"a\tb\\c\nd".to_vec()),
                None,
                Some((-7i32).to_be_bytes().to_vec()),
                Some(b"\x01{}".to_vec()),
            ]]
        );
    }

    #[test]
    fn every_child_table_has_a_writer_with_its_column_count() {
        use crate::flatten::tests::record;
        let b = Batch::from_records(&[record(
            r#"{"conversationId":"c","conversationStart":"2024-01-01T00:00:00Z","participants":[
              {"sessions":[{"segments":[{}],"metrics":[{"name":"n"}]}]}]}"#,
        )])
        .unwrap();
        let keys = [[7u8; 16]];
        let mut c = CopyBinary::default();
        for t in crate::schema::CHILD_TABLES {
            assert!(c.children(t.name, &b, &keys, None), "{}", t.name);
            let rows = parse(c.bytes());
            assert_eq!(rows.len(), 1, "{}", t.name);
            assert_eq!(rows[0].len(), t.columns.len(), "{}", t.name);
            assert_eq!(rows[0][0].as_deref(), Some(&[7u8; 16][..]), "{}", t.name);
            assert!(!c.children(t.name, &b, &keys, Some(&[false])), "{}", t.name);
            assert!(parse(c.bytes()).is_empty());
        }
        c.conversations(&b.conversations, &keys, None);
        assert_eq!(parse(c.bytes())[0].len(), 10);
        c.conversations(
            &b.conversations,
            &keys,
            Some((datetime!(2024-01-01 00:00 UTC), "run")),
        );
        assert_eq!(
            parse(c.bytes())[0].len(),
            crate::schema::CONVERSATIONS.columns.len()
        );
    }
}
