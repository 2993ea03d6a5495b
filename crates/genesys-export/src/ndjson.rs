//! One JSON record per line: insignificant whitespace removed, everything else kept byte for byte.
//!
//! NDJSON needs each record on one line, but the API (or a proxy in front of it that
//! pretty-prints) may send a conversation indented over many lines. Re-serialising through
//! `serde_json::Value` would lose what an export must keep: key order, number spelling
//! (`1.50e+03`), string escapes (`\u00e9`). So the record's raw text is scanned once and only
//! the whitespace between tokens is dropped; inside strings nothing changes. A raw JSON value
//! cannot hold a raw newline, tab or carriage return inside a string (they must be escaped),
//! so the result is always one line.
//!
//! # Example
//!
//! ```
//! let pretty = "{\r\n\t\"a\" : [ 1.50e+03, \"x y\\\"\" ]\n}";
//! let mut line = Vec::new();
//! genesys_export::compact_json_into(pretty, &mut line);
//! assert_eq!(line, br#"{"a":[1.50e+03,"x y\""]}"#);
//! ```

/// Appends `json` (valid JSON text, such as a `RawValue`) to `out` without the whitespace
/// outside its strings.
///
/// Already-compact text (the API's usual form) is copied in one piece.
pub fn compact_json_into(json: &str, out: &mut Vec<u8>) {
    let bytes = json.as_bytes();
    // NOTE: `bytes[copied..]` is what is still to be copied; it starts outside any string and
    // outside any whitespace, so each scan starts outside a string too.
    let mut copied = 0;
    while let Some(ws) = next_insignificant(bytes, copied) {
        out.extend_from_slice(&bytes[copied..ws]);
        copied = ws;
        while copied < bytes.len() && is_ws(bytes[copied]) {
            copied += 1;
        }
    }
    out.extend_from_slice(&bytes[copied..]);
}

/// The index of the next whitespace byte outside a string, scanning from `from` (which is
/// outside a string). Strings are skipped from quote to quote, escapes two bytes at a time.
fn next_insignificant(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                loop {
                    let k = bytes[i.min(bytes.len())..]
                        .iter()
                        .position(|&b| b == b'"' || b == b'\\')?;
                    let at = i + k;
                    if bytes[at] == b'"' {
                        i = at + 1;
                        break;
                    }
                    // NOTE: an escape is a backslash and one ASCII byte (`\u` then 4 hex digits,
                    // which the scan passes over as plain string bytes).
                    i = at + 2;
                }
            }
            b if is_ws(b) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// JSON's insignificant whitespace (RFC 8259 §2).
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(s: &str) -> String {
        let mut out = Vec::new();
        compact_json_into(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn indented_crlf_and_tab_records_become_one_line() {
        let pretty = "{\r\n\t\"conversationId\" :\t\"a\",\r\n  \"n\": [\n    1,\n    2\n  ]\n}";
        assert_eq!(compact(pretty), r#"{"conversationId":"a","n":[1,2]}"#);
        assert_eq!(compact(" \n[ ] \n"), "[]");
    }

    #[test]
    fn strings_keep_their_whitespace_escaped_quotes_and_unicode_escapes() {
        let s = "{ \"k e y\" : \"a  b\\t\\\" } { \\\\\" , \"u\" : \"\\u00e9 é \\ud83d\\ude00\" }";
        assert_eq!(
            compact(s),
            "{\"k e y\":\"a  b\\t\\\" } { \\\\\",\"u\":\"\\u00e9 é \\ud83d\\ude00\"}"
        );
    }

    #[test]
    fn numbers_and_key_order_are_kept_byte_for_byte() {
        // NOTE: `2.2e2222` is beyond f64 (a `serde_json::Value` refuses it; the fuzz target
        // found it): kept as written all the same.
        let s = "{ \"z\" : 1.50e+03 , \"a\" : -0.0 , \"m\" : 10000000000000000000001 , \"e\" : 2.2e2222 }";
        assert_eq!(
            compact(s),
            r#"{"z":1.50e+03,"a":-0.0,"m":10000000000000000000001,"e":2.2e2222}"#
        );
    }

    #[test]
    fn compact_records_are_copied_unchanged() {
        let s = r#"{"a":"x y","b":[1,{"c":null}]}"#;
        assert_eq!(compact(s), s);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::value::RawValue;
    use serde_json::Value;

    use crate::Format;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[ \t\r\n\"\\\\a-zé\u{1F600}\u{0}-\u{1f}]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[ a-z\"\\t]{0,6}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// `v` serialised with `indent` per level and `newline` between lines.
    fn indented(v: &Value, indent: &[u8], newline: &str) -> String {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(indent);
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        serde::Serialize::serialize(v, &mut ser).unwrap();
        String::from_utf8(out).unwrap().replace('\n', newline)
    }

    proptest! {
        #[test]
        fn any_indented_page_is_written_one_compact_record_per_line(
            records in prop::collection::vec(prop::collection::vec(("[a-z]{1,4}", value()), 0..5), 1..4),
            indent in prop_oneof![Just(&b"  "[..]), Just(&b"\t"[..]), Just(&b" \t "[..])],
            newline in prop_oneof![Just("\n"), Just("\r\n")],
        ) {
            let records: Vec<Value> = records
                .into_iter()
                .map(|kv| Value::Object(kv.into_iter().collect()))
                .collect();
            let page = indented(&serde_json::json!({ "conversations": records }), indent, newline);
            #[derive(serde::Deserialize)]
            struct Page { conversations: Vec<Box<RawValue>> }
            let page: Page = serde_json::from_str(&page).unwrap();
            let mut buf = Vec::new();
            Format::Ndjson.encode_page(&page.conversations, &mut buf).unwrap();
            let text = String::from_utf8(buf).unwrap();
            let lines: Vec<&str> = text.strip_suffix('\n').unwrap().split('\n').collect();
            prop_assert_eq!(lines.len(), records.len());
            for (line, want) in lines.iter().zip(&records) {
                // The compact serialisation of the same value, same key order, same numbers.
                prop_assert_eq!(*line, serde_json::to_string(want).unwrap());
            }
        }
    }
}
