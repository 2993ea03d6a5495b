//! Reading back what the output already holds, to restart a part whose results changed.
//!
//! When a part that an earlier run had half written reports a different `totalHits`, the
//! engine cannot restart it exactly on its own: the ids that run wrote are not in the
//! checkpoint. They are in the output, though (the file sink's
//! [`committed_ids`](keel_genesys::sink::PageSink::committed_ids)). Records are written in `conversationStart`
//! order and parts partition the interval, so the part's records are exactly those whose start
//! lies in it; the engine's restart point re-exports the part from its first page, skipping
//! those ids.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::Format;
use keel_genesys::Interval;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdAndStart {
    conversation_id: String,
    #[serde(default)]
    conversation_start: Option<String>,
}

/// Ids of the records in the first `len` bytes of `path` whose start lies in `part`, sorted.
///
/// # Errors
/// I/O errors, or [`io::ErrorKind::InvalidData`] for a record that cannot be read back.
pub(crate) fn ids_in_part(
    path: &Path,
    len: u64,
    format: Format,
    part: &Interval,
) -> io::Result<Vec<String>> {
    let reader = BufReader::with_capacity(1 << 20, File::open(path)?.take(len));
    let mut ids = Vec::new();
    let mut keep = |id: String, start: Option<&str>| {
        let start = start.and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok());
        if start.is_some_and(|t| part.contains(t)) {
            ids.push(id);
        }
    };
    let invalid =
        |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    match format {
        Format::Ndjson => {
            for line in reader.split(b'\n') {
                let line = line?;
                let r: IdAndStart = serde_json::from_slice(&line).map_err(|e| invalid(&e))?;
                keep(r.conversation_id, r.conversation_start.as_deref());
            }
        }
        Format::Csv => {
            for row in csv::Reader::from_reader(reader).records() {
                let row = row.map_err(|e| invalid(&e))?;
                keep(row.get(0).unwrap_or_default().to_owned(), row.get(1));
            }
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part() -> Interval {
        "2026-01-01T12:00:00Z/2026-01-02T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn ndjson_ids_of_the_part_are_read_back_up_to_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.ndjson");
        let text = concat!(
            r#"{"conversationId":"before","conversationStart":"2026-01-01T11:59:59.999Z"}"#,
            "\n",
            r#"{"conversationId":"b","conversationStart":"2026-01-01T12:00:00.000Z","x":[1]}"#,
            "\n",
            r#"{"conversationId":"a","conversationStart":"2026-01-01T13:00:00Z"}"#,
            "\n",
        );
        let torn = "{\"conversationId\":\"torn";
        std::fs::write(&path, format!("{text}{torn}")).unwrap();
        let ids = ids_in_part(&path, text.len() as u64, Format::Ndjson, &part()).unwrap();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn csv_ids_of_the_part_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.csv");
        let text = "id,start,end,duration_ms,direction,media_types\n\
                    x,2026-01-01T01:00:00Z,,,,\n\
                    \"y,1\",2026-01-01T23:59:59.999Z,,,,voice\n";
        std::fs::write(&path, text).unwrap();
        let ids = ids_in_part(&path, text.len() as u64, Format::Csv, &part()).unwrap();
        assert_eq!(ids, ["y,1"]);
    }

    #[test]
    fn an_unreadable_record_is_invalid_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.ndjson");
        std::fs::write(&path, "not json\n").unwrap();
        let e = ids_in_part(&path, 9, Format::Ndjson, &part()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
