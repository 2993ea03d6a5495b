//! A page of records turned into the rows of every table.
//!
//! Only the fields the flattened tables hold are read; every other field is ignored here and
//! kept in the record column, which stores the JSON as sent. A record may lack any optional
//! part (participants, sessions, segments, metrics, an end); a field of the wrong type is an
//! error for the page rather than a silently missing row.

use std::borrow::Cow;
use std::collections::HashMap;

use keel_genesys::Record;
use serde::Deserialize;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

const ISO_MS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
const DAY: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// `2024-01-01T00:00:00.000Z`: UTC, milliseconds, so text order is time order (SQLite) and
/// PostgreSQL reads it as `timestamptz`.
pub(crate) fn iso_ms(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(ISO_MS)
        .unwrap_or_else(|_| String::from("invalid"))
}

/// Reads a timestamp written by [`iso_ms`] (or any RFC 3339 text).
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

// NOTE: texts are borrowed from the record where they hold no escape: those of the child
// rows are copied into the batch's one text buffer, times are only parsed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conv<'a> {
    #[serde(default, borrow)]
    conversation_end: Option<Cow<'a, str>>,
    #[serde(default)]
    originating_direction: Option<String>,
    #[serde(default)]
    division_ids: Vec<String>,
    #[serde(default, borrow)]
    participants: Vec<Part<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(default, borrow)]
    participant_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    purpose: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    participant_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    sessions: Vec<Sess<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sess<'a> {
    #[serde(default, borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    media_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    direction: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    segments: Vec<Seg<'a>>,
    #[serde(default, borrow)]
    metrics: Vec<Metric<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Seg<'a> {
    #[serde(default, borrow)]
    segment_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    segment_start: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    segment_end: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    queue_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    disconnect_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metric<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    value: Option<serde_json::Number>,
    #[serde(default, borrow)]
    emit_date: Option<Cow<'a, str>>,
}

/// A row of `conversations` (without `written_at` and `run_id`, which the sink adds).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConvRow {
    pub(crate) id: String,
    pub(crate) start: OffsetDateTime,
    pub(crate) end: Option<OffsetDateTime>,
    pub(crate) start_day: String,
    pub(crate) start_hour: i32,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) direction: Option<String>,
    pub(crate) media_types: String,
    pub(crate) division_ids: String,
    pub(crate) raw: String,
}

/// A text of a child row, kept in its batch's [`Batch::texts`]: one buffer for the texts of
/// all the rows instead of an allocation (and a free) for each of them. Read it with
/// [`Batch::text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Text {
    start: usize,
    len: usize,
}

/// A row of `participants`; `conv` indexes [`Batch::conversations`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParticipantRow {
    pub(crate) conv: usize,
    pub(crate) index: i32,
    pub(crate) participant_id: Option<Text>,
    pub(crate) purpose: Option<Text>,
    pub(crate) name: Option<Text>,
    pub(crate) user_id: Option<Text>,
}

/// A row of `sessions`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionRow {
    pub(crate) conv: usize,
    pub(crate) participant: i32,
    pub(crate) index: i32,
    pub(crate) session_id: Option<Text>,
    pub(crate) media_type: Option<Text>,
    pub(crate) direction: Option<Text>,
    /// The first queue among the session's segments.
    pub(crate) queue_id: Option<Text>,
}

/// A row of `segments`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SegmentRow {
    pub(crate) conv: usize,
    pub(crate) participant: i32,
    pub(crate) session: i32,
    pub(crate) index: i32,
    pub(crate) segment_type: Option<Text>,
    pub(crate) start: Option<OffsetDateTime>,
    pub(crate) end: Option<OffsetDateTime>,
    pub(crate) queue_id: Option<Text>,
    pub(crate) disconnect_type: Option<Text>,
}

/// A row of `session_metrics`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricRow {
    pub(crate) conv: usize,
    pub(crate) participant: i32,
    pub(crate) session: i32,
    pub(crate) index: i32,
    pub(crate) name: Text,
    pub(crate) value: Option<i64>,
    pub(crate) emit_date: Option<OffsetDateTime>,
}

/// A child row that moves into a batch whose conversations and texts come first.
trait Rebase {
    /// Adds `conv` to its conversation index and `text` to the start of each of its texts.
    fn rebase(&mut self, conv: usize, text: usize);
}

fn shift(texts: &mut [&mut Option<Text>], by: usize) {
    for t in texts.iter_mut().filter_map(|t| t.as_mut()) {
        t.start += by;
    }
}

/// Appends `rows` to `to`, rebased (see [`Rebase`]).
fn moved<R: Rebase>(to: &mut Vec<R>, rows: Vec<R>, conv: usize, text: usize) {
    to.extend(rows.into_iter().map(|mut r| {
        r.rebase(conv, text);
        r
    }));
}

impl Rebase for ParticipantRow {
    fn rebase(&mut self, conv: usize, text: usize) {
        self.conv += conv;
        let r = self;
        shift(
            &mut [
                &mut r.participant_id,
                &mut r.purpose,
                &mut r.name,
                &mut r.user_id,
            ],
            text,
        );
    }
}

impl Rebase for SessionRow {
    fn rebase(&mut self, conv: usize, text: usize) {
        self.conv += conv;
        let r = self;
        shift(
            &mut [
                &mut r.session_id,
                &mut r.media_type,
                &mut r.direction,
                &mut r.queue_id,
            ],
            text,
        );
    }
}

impl Rebase for SegmentRow {
    fn rebase(&mut self, conv: usize, text: usize) {
        self.conv += conv;
        let r = self;
        shift(
            &mut [&mut r.segment_type, &mut r.queue_id, &mut r.disconnect_type],
            text,
        );
    }
}

impl Rebase for MetricRow {
    fn rebase(&mut self, conv: usize, text: usize) {
        self.conv += conv;
        self.name.start += text;
    }
}

/// The rows of one page, each conversation once (the last of duplicate ids wins).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) conversations: Vec<ConvRow>,
    pub(crate) participants: Vec<ParticipantRow>,
    pub(crate) sessions: Vec<SessionRow>,
    pub(crate) segments: Vec<SegmentRow>,
    pub(crate) metrics: Vec<MetricRow>,
    /// The texts of the child rows ([`Text`]), one after the other.
    pub(crate) texts: String,
}

/// A record that cannot be flattened: its id and why.
#[derive(Debug)]
pub(crate) struct BadRecord {
    pub(crate) id: String,
    pub(crate) message: String,
}

fn time_field(field: &str, v: Option<&str>) -> Result<Option<OffsetDateTime>, String> {
    v.map(|s| parse_time(s).ok_or_else(|| format!("`{field}` is not an RFC 3339 time: {s:?}")))
        .transpose()
        .map(|t| t.map(truncate_ms))
}

fn truncate_ms(t: OffsetDateTime) -> OffsetDateTime {
    let ns = t.nanosecond();
    t.replace_nanosecond(ns - ns % 1_000_000).unwrap_or(t)
}

fn index(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

impl Batch {
    /// Flattens a page; an id that occurs more than once keeps its last record only (one
    /// upsert statement may not touch a row twice).
    pub(crate) fn from_records(records: &[Record]) -> Result<Batch, BadRecord> {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            last.insert(r.id.as_str(), i);
        }
        let mut b = Batch::default();
        for (i, r) in records.iter().enumerate() {
            if last.get(r.id.as_str()) == Some(&i) {
                b.push(r).map_err(|message| BadRecord {
                    id: r.id.clone(),
                    message,
                })?;
            }
        }
        Ok(b)
    }

    /// Appends the rows of `other`, a batch sharing no conversation with this one.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn append(&mut self, other: Batch) {
        let conv = self.conversations.len();
        let text = self.texts.len();
        self.texts.push_str(&other.texts);
        self.conversations.extend(other.conversations);
        moved(&mut self.participants, other.participants, conv, text);
        moved(&mut self.sessions, other.sessions, conv, text);
        moved(&mut self.segments, other.segments, conv, text);
        moved(&mut self.metrics, other.metrics, conv, text);
    }

    /// The text `t` of one of this batch's rows.
    pub(crate) fn text(&self, t: Text) -> &str {
        self.texts.get(t.start..t.start + t.len).unwrap_or_default()
    }

    /// [`text`](Self::text) of an optional text.
    pub(crate) fn opt(&self, t: Option<Text>) -> Option<&str> {
        t.map(|t| self.text(t))
    }

    fn keep(&mut self, s: &str) -> Text {
        let start = self.texts.len();
        self.texts.push_str(s);
        Text {
            start,
            len: s.len(),
        }
    }

    fn keep_opt(&mut self, s: Option<Cow<'_, str>>) -> Option<Text> {
        s.map(|s| self.keep(&s))
    }

    /// The ids of the conversations, in page order.
    #[cfg(test)]
    pub(crate) fn ids(&self) -> Vec<String> {
        self.conversations.iter().map(|c| c.id.clone()).collect()
    }

    fn push(&mut self, r: &Record) -> Result<(), String> {
        let c: Conv<'_> = serde_json::from_str(r.raw.get()).map_err(|e| e.to_string())?;
        let conv = self.conversations.len();
        let start = truncate_ms(r.start.to_offset(UtcOffset::UTC));
        let end = time_field("conversationEnd", c.conversation_end.as_deref())?;
        let duration_ms = end
            .map(|e| (e - start).whole_milliseconds())
            .filter(|d| *d >= 0)
            .and_then(|d| i64::try_from(d).ok());
        let mut media: Vec<&str> = Vec::new();
        for s in c.participants.iter().flat_map(|p| &p.sessions) {
            if let Some(m) = s.media_type.as_deref() {
                if !media.contains(&m) {
                    media.push(m);
                }
            }
        }
        let media_types = media.join(",");
        for (pi, p) in c.participants.into_iter().enumerate() {
            for (si, s) in p.sessions.into_iter().enumerate() {
                let mut queue_id = None;
                for (gi, g) in s.segments.into_iter().enumerate() {
                    let row = SegmentRow {
                        conv,
                        participant: index(pi),
                        session: index(si),
                        index: index(gi),
                        segment_type: self.keep_opt(g.segment_type),
                        start: time_field("segmentStart", g.segment_start.as_deref())?,
                        end: time_field("segmentEnd", g.segment_end.as_deref())?,
                        queue_id: self.keep_opt(g.queue_id),
                        disconnect_type: self.keep_opt(g.disconnect_type),
                    };
                    queue_id = queue_id.or(row.queue_id);
                    self.segments.push(row);
                }
                for (mi, m) in s.metrics.into_iter().enumerate() {
                    let value = m
                        .value
                        .as_ref()
                        .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)));
                    let emit_date = time_field("emitDate", m.emit_date.as_deref())?;
                    let name = self.keep(&m.name);
                    self.metrics.push(MetricRow {
                        conv,
                        participant: index(pi),
                        session: index(si),
                        index: index(mi),
                        name,
                        value,
                        emit_date,
                    });
                }
                let row = SessionRow {
                    conv,
                    participant: index(pi),
                    index: index(si),
                    session_id: self.keep_opt(s.session_id),
                    media_type: self.keep_opt(s.media_type),
                    direction: self.keep_opt(s.direction),
                    queue_id,
                };
                self.sessions.push(row);
            }
            let row = ParticipantRow {
                conv,
                index: index(pi),
                participant_id: self.keep_opt(p.participant_id),
                purpose: self.keep_opt(p.purpose),
                name: self.keep_opt(p.participant_name),
                user_id: self.keep_opt(p.user_id),
            };
            self.participants.push(row);
        }
        self.conversations.push(ConvRow {
            id: r.id.clone(),
            start,
            end,
            start_day: start.format(DAY).unwrap_or_default(),
            start_hour: i32::from(start.hour()),
            duration_ms,
            direction: c.originating_direction,
            media_types,
            division_ids: c.division_ids.join(","),
            raw: r.raw.get().to_owned(),
        });
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::value::RawValue;
    use time::macros::datetime;

    pub(crate) fn record(json: &str) -> Record {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let start = parse_time(v["conversationStart"].as_str().unwrap()).unwrap();
        Record {
            id: v["conversationId"].as_str().unwrap().to_owned(),
            start,
            raw: RawValue::from_string(json.to_owned()).unwrap(),
        }
    }

    const FULL: &str = r#"{"conversationId":"c1","conversationStart":"2024-03-01T10:15:00.250Z",
        "conversationEnd":"2024-03-01T10:20:00.750Z","originatingDirection":"inbound",
        "divisionIds":["d1","d2"],"unknownTop":{"x":[1,2]},
        "participants":[
          {"participantId":"p0","purpose":"customer","participantName":"Zoë","extra":1,
           "sessions":[{"mediaType":"voice","sessionId":"s0","direction":"inbound",
             "segments":[{"segmentType":"interact","segmentStart":"2024-03-01T10:15:00.250Z",
                          "segmentEnd":"2024-03-01T10:20:00.750Z","disconnectType":"peer"}],
             "metrics":[{"name":"nConnected","value":1,"emitDate":"2024-03-01T10:20:00.750Z"}]}]},
          {"participantId":"p1","purpose":"agent","userId":"u1",
           "sessions":[{"mediaType":"callback","segments":[
              {"segmentType":"alert","queueId":"q1"},{"segmentType":"interact","queueId":"q2"}],
             "metrics":[{"name":"tTalk","value":1000.4},{"name":"tAcw","value":500}]}]}
        ]}"#;

    #[test]
    fn every_level_is_flattened_and_unknown_fields_ignored() {
        let b = Batch::from_records(&[record(FULL)]).unwrap();
        let c = &b.conversations[0];
        assert_eq!(c.start, datetime!(2024-03-01 10:15:00.250 UTC));
        assert_eq!(c.duration_ms, Some(300_500));
        assert_eq!((c.start_day.as_str(), c.start_hour), ("2024-03-01", 10));
        assert_eq!(c.media_types, "voice,callback");
        assert_eq!(c.division_ids, "d1,d2");
        assert!(c.raw.contains("unknownTop"));
        assert_eq!(b.participants.len(), 2);
        assert_eq!(b.opt(b.participants[1].user_id), Some("u1"));
        assert_eq!(b.opt(b.participants[0].name), Some("Zoë"));
        assert_eq!(b.sessions.len(), 2);
        assert_eq!(b.opt(b.sessions[1].queue_id), Some("q1"));
        assert_eq!(b.opt(b.segments[2].queue_id), Some("q2"));
        assert_eq!(b.segments.len(), 3);
        assert_eq!(b.segments[2].index, 1);
        assert_eq!(b.metrics.len(), 3);
        assert_eq!(b.metrics[1].value, Some(1000));
        assert_eq!(b.text(b.metrics[2].name), "tAcw");
        assert_eq!(b.metrics[1].participant, 1);
    }

    #[test]
    fn an_appended_batch_keeps_its_rows_texts_and_conversations() {
        let mut a = Batch::from_records(&[record(FULL)]).unwrap();
        let other = FULL
            .replace("\"c1\"", "\"c2\"")
            .replace("Zoë", "Ann")
            .replace("q1", "queue-9")
            .replace("tAcw", "tHeld");
        let b = Batch::from_records(&[record(&other)]).unwrap();
        a.append(b);
        assert_eq!(a.ids(), ["c1", "c2"]);
        let texts = |a: &Batch, conv: usize| {
            let p: Vec<_> = a.participants.iter().filter(|r| r.conv == conv).collect();
            let s: Vec<_> = a.sessions.iter().filter(|r| r.conv == conv).collect();
            let g: Vec<_> = a.segments.iter().filter(|r| r.conv == conv).collect();
            let m: Vec<_> = a.metrics.iter().filter(|r| r.conv == conv).collect();
            (
                a.opt(p[0].name).map(str::to_owned),
                a.opt(s[1].queue_id).map(str::to_owned),
                a.opt(g[1].queue_id).map(str::to_owned),
                a.opt(p[1].purpose).map(str::to_owned),
                a.text(m[2].name).to_owned(),
            )
        };
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            texts(&a, 0),
            (s("Zoë"), s("q1"), s("q1"), s("agent"), "tAcw".to_owned())
        );
        assert_eq!(
            texts(&a, 1),
            (
                s("Ann"),
                s("queue-9"),
                s("queue-9"),
                s("agent"),
                "tHeld".to_owned()
            )
        );
    }

    #[test]
    fn an_escaped_text_is_kept_unescaped() {
        let b = Batch::from_records(&[record(
            r#"{"conversationId":"c","conversationStart":"2024-01-01T00:00:00Z",
                "participants":[{"participantName":"A \"B\" \u00e9"}]}"#,
        )])
        .unwrap();
        assert_eq!(b.opt(b.participants[0].name), Some("A \"B\" é"));
    }

    #[test]
    fn a_record_with_only_id_and_start_is_fine() {
        let b = Batch::from_records(&[record(
            r#"{"conversationId":"c","conversationStart":"2024-01-01T00:00:00Z"}"#,
        )])
        .unwrap();
        let c = &b.conversations[0];
        assert_eq!((c.end, c.duration_ms), (None, None));
        assert_eq!(c.media_types, "");
        assert!(b.participants.is_empty());
    }

    #[test]
    fn duplicate_ids_keep_the_last_record_in_first_place_order() {
        let a1 = r#"{"conversationId":"a","conversationStart":"2024-01-01T00:00:00Z","originatingDirection":"inbound"}"#;
        let b1 = r#"{"conversationId":"b","conversationStart":"2024-01-01T00:00:00Z"}"#;
        let a2 = r#"{"conversationId":"a","conversationStart":"2024-01-01T00:00:00Z","originatingDirection":"outbound"}"#;
        let b = Batch::from_records(&[record(a1), record(b1), record(a2)]).unwrap();
        assert_eq!(b.ids(), ["b", "a"]);
        assert_eq!(b.conversations[1].direction.as_deref(), Some("outbound"));
    }

    #[test]
    fn a_field_of_the_wrong_type_names_the_record() {
        let e = Batch::from_records(&[record(
            r#"{"conversationId":"bad","conversationStart":"2024-01-01T00:00:00Z","participants":"no"}"#,
        )])
        .unwrap_err();
        assert_eq!(e.id, "bad");
        let e = Batch::from_records(&[record(
            r#"{"conversationId":"t","conversationStart":"2024-01-01T00:00:00Z","conversationEnd":"yesterday"}"#,
        )])
        .unwrap_err();
        assert!(e.message.contains("conversationEnd"), "{}", e.message);
    }

    #[test]
    fn iso_ms_sorts_like_time() {
        let a = iso_ms(datetime!(2024-01-01 09:00:00.5 UTC));
        let b = iso_ms(datetime!(2024-01-01 10:00:00 +01:00));
        assert_eq!(a, "2024-01-01T09:00:00.500Z");
        assert_eq!(b, "2024-01-01T09:00:00.000Z");
        assert!(b < a);
        assert_eq!(parse_time(&a), Some(datetime!(2024-01-01 09:00:00.5 UTC)));
    }
}
