//! The NDJSON line writer: any page JSON, compact or indented, becomes one valid JSON object
//! per line, and only whitespace between tokens is removed (every other byte kept, in order).
#![no_main]

use genesys_export::Format;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

#[derive(serde::Deserialize)]
struct Page {
    conversations: Vec<Box<RawValue>>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(page) = serde_json::from_slice::<Page>(data) else {
        return;
    };
    let mut buf = Vec::new();
    if Format::Ndjson
        .encode_page(&page.conversations, &mut buf)
        .is_err()
    {
        return;
    }
    let text = std::str::from_utf8(&buf).expect("utf-8 in, utf-8 out");
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<&str> = if page.conversations.is_empty() {
        assert!(buf.is_empty());
        Vec::new()
    } else {
        body.split('\n').collect()
    };
    assert_eq!(lines.len(), page.conversations.len());
    for (line, raw) in lines.iter().zip(&page.conversations) {
        assert!(!line.contains('\r'));
        // NOTE: `RawValue` accepts numbers that `Value` cannot hold (`2.2e2222`, found by this
        // target); such a line must fail the same way as the record it came from.
        let got = serde_json::from_str::<serde_json::Value>(line);
        let want = serde_json::from_str::<serde_json::Value>(raw.get());
        match (got, want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(_), Err(_)) => {}
            (got, want) => panic!("line {got:?}, record {want:?}"),
        }
        // Only whitespace outside strings was dropped: `line` is `raw` minus some of its
        // whitespace bytes, and nothing in `line` was added or reordered.
        let mut rest = line.bytes().peekable();
        for b in raw.get().bytes() {
            if rest.peek() == Some(&b) {
                rest.next();
            } else {
                assert!(matches!(b, b' ' | b'\t' | b'\n' | b'\r'), "dropped {b:#x}");
            }
        }
        assert!(rest.next().is_none());
        // No whitespace is left between tokens: re-compacting changes nothing.
        let mut again = Vec::new();
        genesys_export::compact_json_into(line, &mut again);
        assert_eq!(again, line.as_bytes());
    }
});
