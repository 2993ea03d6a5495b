//! Turning the API's conversations into output bytes: NDJSON (lossless) or CSV (a summary row).
//!
//! A page is encoded into one buffer before any of it reaches the output, so a page is
//! either written whole or (after a crash) cut off by the checkpoint's recorded length.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::Format;

/// The CSV header row.
pub const CSV_HEADER: &[u8] = b"id,start,end,duration_ms,direction,media_types\n";

/// A conversation that cannot be turned into a CSV row.
#[derive(Debug, thiserror::Error)]
#[error("conversation cannot be written as csv")]
pub struct EncodeError(#[source] serde_json::Error);

impl Format {
    /// Bytes a new output file starts with.
    pub fn header(self) -> &'static [u8] {
        match self {
            Format::Ndjson => b"",
            Format::Csv => CSV_HEADER,
        }
    }

    /// Appends one output record per conversation to `buf`.
    ///
    /// NDJSON writes each conversation on one line followed by `\n`: the bytes the API sent,
    /// with only the whitespace between JSON tokens removed (an indented record becomes one
    /// line; values, key order, number spelling and escapes are kept, see
    /// [`compact_json_into`](crate::compact_json_into)). CSV writes
    /// `id,start,end,duration_ms,direction,media_types`, quoted where needed.
    ///
    /// # Errors
    /// CSV only: a conversation that is not an object with a string `conversationId`.
    pub fn encode_page<T: AsRef<RawValue>>(
        self,
        conversations: &[T],
        buf: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        match self {
            Format::Ndjson => {
                for c in conversations {
                    crate::ndjson::compact_json_into(c.as_ref().get(), buf);
                    buf.push(b'\n');
                }
                Ok(())
            }
            Format::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_writer(std::mem::take(buf));
                for c in conversations {
                    let row = CsvRow::from_raw(c.as_ref())?;
                    // NOTE: writing into a Vec cannot fail.
                    w.write_record(row.fields()).expect("csv into a Vec");
                }
                *buf = w.into_inner().expect("csv into a Vec");
                Ok(())
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conversation<'a> {
    #[serde(borrow)]
    conversation_id: Cow<'a, str>,
    #[serde(borrow, default)]
    conversation_start: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    conversation_end: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    originating_direction: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    participants: Vec<Participant<'a>>,
}

#[derive(Deserialize)]
struct Participant<'a> {
    #[serde(borrow, default)]
    sessions: Vec<Session<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Session<'a> {
    #[serde(borrow, default)]
    media_type: Option<Cow<'a, str>>,
}

/// One CSV row.
#[derive(Debug, PartialEq, Eq)]
struct CsvRow {
    id: String,
    start: String,
    end: String,
    duration_ms: String,
    direction: String,
    media_types: String,
}

impl CsvRow {
    fn from_raw(raw: &RawValue) -> Result<Self, EncodeError> {
        let c: Conversation<'_> = serde_json::from_str(raw.get()).map_err(EncodeError)?;
        let parse = |s: &Option<Cow<'_, str>>| {
            s.as_deref()
                .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
        };
        let duration_ms = match (parse(&c.conversation_start), parse(&c.conversation_end)) {
            (Some(start), Some(end)) => ((end - start).whole_milliseconds()).to_string(),
            _ => String::new(),
        };
        let mut media: Vec<&str> = Vec::new();
        for m in c
            .participants
            .iter()
            .flat_map(|p| &p.sessions)
            .filter_map(|s| s.media_type.as_deref())
        {
            if !media.contains(&m) {
                media.push(m);
            }
        }
        Ok(CsvRow {
            id: c.conversation_id.into_owned(),
            start: c.conversation_start.unwrap_or_default().into_owned(),
            end: c.conversation_end.unwrap_or_default().into_owned(),
            duration_ms,
            direction: c.originating_direction.unwrap_or_default().into_owned(),
            media_types: media.join(";"),
        })
    }

    fn fields(&self) -> [&str; 6] {
        [
            &self.id,
            &self.start,
            &self.end,
            &self.duration_ms,
            &self.direction,
            &self.media_types,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn ndjson_writes_the_api_bytes_one_per_line_without_whitespace_between_tokens() {
        let a = r#"{"conversationId":"a", "zzUnknown" : [1,2.50,{"x":"é\u00e9"}]}"#;
        let b = r#"{"conversationId":"b","name":"日本語 \"q\""}"#;
        let mut buf = Vec::new();
        Format::Ndjson
            .encode_page(&[raw(a), raw(b)], &mut buf)
            .unwrap();
        let a_line = r#"{"conversationId":"a","zzUnknown":[1,2.50,{"x":"é\u00e9"}]}"#;
        assert_eq!(buf, format!("{a_line}\n{b}\n").into_bytes());
        assert!(Format::Ndjson.header().is_empty());
    }

    #[test]
    fn csv_row_has_duration_direction_and_distinct_media_types() {
        let c = r#"{"conversationId":"c1","conversationStart":"2026-11-24T10:00:00.000Z",
            "conversationEnd":"2026-11-24T10:01:02.500Z","originatingDirection":"inbound",
            "participants":[{"sessions":[{"mediaType":"voice"},{"mediaType":"callback"}]},
                            {"sessions":[{"mediaType":"voice"}]}],"extra":{"k":1}}"#;
        let mut buf = Vec::new();
        Format::Csv.encode_page(&[raw(c)], &mut buf).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "c1,2026-11-24T10:00:00.000Z,2026-11-24T10:01:02.500Z,62500,inbound,voice;callback\n"
        );
    }

    #[test]
    fn csv_quotes_fields_with_commas_quotes_and_newlines() {
        let c = r#"{"conversationId":"a,\"b\"\nc","originatingDirection":"in"}"#;
        let mut buf = Vec::new();
        Format::Csv.encode_page(&[raw(c)], &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text, "\"a,\"\"b\"\"\nc\",,,,in,\n");
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        let rec = rd.records().next().unwrap().unwrap();
        assert_eq!(&rec[0], "a,\"b\"\nc");
    }

    #[test]
    fn csv_without_end_has_empty_duration() {
        let c = r#"{"conversationId":"x","conversationStart":"2026-11-24T10:00:00Z"}"#;
        let mut buf = Vec::new();
        Format::Csv.encode_page(&[raw(c)], &mut buf).unwrap();
        assert_eq!(buf, b"x,2026-11-24T10:00:00Z,,,,\n");
    }

    #[test]
    fn csv_of_a_conversation_without_id_is_an_error() {
        let mut buf = Vec::new();
        assert!(Format::Csv
            .encode_page(&[raw(r#"{"other":1}"#)], &mut buf)
            .is_err());
        assert!(Format::Csv.encode_page(&[raw("[1]")], &mut buf).is_err());
    }

    #[test]
    fn csv_header_names_the_columns() {
        assert_eq!(
            Format::Csv.header(),
            b"id,start,end,duration_ms,direction,media_types\n"
        );
    }
}
