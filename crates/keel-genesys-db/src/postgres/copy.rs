//! Rows in COPY's text format: tab-separated, `\N` for NULL, backslash escapes.

use time::OffsetDateTime;

use crate::flatten::{iso_ms, Batch, ConvRow};

/// A reusable buffer of COPY text rows (it keeps its capacity from page to page).
#[derive(Debug, Default)]
pub(super) struct CopyText {
    buf: Vec<u8>,
    first: bool,
}

impl CopyText {
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.first = true;
    }

    fn sep(&mut self) {
        if !self.first {
            self.buf.push(b'\t');
        }
        self.first = false;
    }

    fn end_row(&mut self) {
        self.buf.push(b'\n');
        self.first = true;
    }

    fn text(&mut self, s: &str) {
        self.sep();
        let bytes = s.as_bytes();
        let mut from = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let esc: &[u8] = match b {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                _ => continue,
            };
            self.buf.extend_from_slice(&bytes[from..i]);
            self.buf.extend_from_slice(esc);
            from = i + 1;
        }
        self.buf.extend_from_slice(&bytes[from..]);
    }

    fn null(&mut self) {
        self.sep();
        self.buf.extend_from_slice(b"\\N");
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    fn int(&mut self, v: i64) {
        self.sep();
        self.buf.extend_from_slice(v.to_string().as_bytes());
    }

    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    fn time(&mut self, t: Option<OffsetDateTime>) {
        match t {
            Some(t) => self.text(&iso_ms(t)),
            None => self.null(),
        }
    }

    /// The rows of `rows`: the columns of `stage_columns` in order, followed, when `written`
    /// is given, by `written_at` and `run_id` (all the columns of `conversations`).
    pub(super) fn conversations(&mut self, rows: &[ConvRow], written: Option<(&str, &str)>) {
        self.clear();
        for c in rows {
            self.text(&c.id);
            self.time(Some(c.start));
            self.time(c.end);
            self.text(&c.start_day);
            self.int(i64::from(c.start_hour));
            self.opt_int(c.duration_ms);
            self.opt(c.direction.as_deref());
            self.text(&c.media_types);
            self.text(&c.division_ids);
            self.text(&c.raw);
            if let Some((at, run_id)) = written {
                self.text(at);
                self.text(run_id);
            }
            self.end_row();
        }
    }

    /// The rows of child table `table` (all its columns, in order) of the conversations
    /// `keep` marks (all when `None`); `false` when there are none.
    pub(super) fn children(&mut self, table: &str, b: &Batch, keep: Option<&[bool]>) -> bool {
        self.clear();
        let kept = |conv: usize| keep.is_none_or(|k| k[conv]);
        let id = |conv: usize| b.conversations[conv].id.as_str();
        match table {
            "participants" => {
                for p in b.participants.iter().filter(|r| kept(r.conv)) {
                    self.text(id(p.conv));
                    self.int(i64::from(p.index));
                    self.opt(p.participant_id.as_deref());
                    self.opt(p.purpose.as_deref());
                    self.opt(p.name.as_deref());
                    self.opt(p.user_id.as_deref());
                    self.end_row();
                }
            }
            "sessions" => {
                for s in b.sessions.iter().filter(|r| kept(r.conv)) {
                    self.text(id(s.conv));
                    self.int(i64::from(s.participant));
                    self.int(i64::from(s.index));
                    self.opt(s.session_id.as_deref());
                    self.opt(s.media_type.as_deref());
                    self.opt(s.direction.as_deref());
                    self.opt(s.queue_id.as_deref());
                    self.end_row();
                }
            }
            "segments" => {
                for g in b.segments.iter().filter(|r| kept(r.conv)) {
                    self.text(id(g.conv));
                    self.int(i64::from(g.participant));
                    self.int(i64::from(g.session));
                    self.int(i64::from(g.index));
                    self.opt(g.segment_type.as_deref());
                    self.time(g.start);
                    self.time(g.end);
                    self.opt(g.queue_id.as_deref());
                    self.opt(g.disconnect_type.as_deref());
                    self.end_row();
                }
            }
            "session_metrics" => {
                for m in b.metrics.iter().filter(|r| kept(r.conv)) {
                    self.text(id(m.conv));
                    self.int(i64::from(m.participant));
                    self.int(i64::from(m.session));
                    self.int(i64::from(m.index));
                    self.text(&m.name);
                    self.opt_int(m.value);
                    self.time(m.emit_date);
                    self.end_row();
                }
            }
            _ => {}
        }
        !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specials_are_escaped_and_null_is_marked() {
        let mut c = CopyText::default();
        c.clear();
        c.text("a\tb\\c\nd\re");
        c.null();
        c.int(-7);
        c.end_row();
        assert_eq!(c.bytes(), b"a\\tb\\\\c\\nd\\re\t\\N\t-7\n");
    }

    #[test]
    fn every_child_table_has_a_writer() {
        use crate::flatten::tests::record;
        let b = Batch::from_records(&[record(
            r#"{"conversationId":"c","conversationStart":"2024-01-01T00:00:00Z","participants":[
              {"sessions":[{"segments":[{}],"metrics":[{"name":"n"}]}]}]}"#,
        )])
        .unwrap();
        let mut c = CopyText::default();
        for t in crate::schema::CHILD_TABLES {
            assert!(c.children(t.name, &b, None), "{}", t.name);
            let cols = t.columns.len();
            let fields = c.bytes().split(|b| *b == b'\t').count();
            assert_eq!(fields, cols, "{}", t.name);
            assert!(!c.children(t.name, &b, Some(&[false])), "{}", t.name);
        }
    }
}
