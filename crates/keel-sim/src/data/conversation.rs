//! Canonical JSON for one `AnalyticsConversation`.
//!
//! Canonical means: compact, object keys sorted by bytes at every level, strings escaped
//! exactly as `serde_json` escapes them, numbers as `serde_json` prints them. So parsing a
//! record into `serde_json::Value` and serialising it again gives back the same bytes.

use std::io::Write as _;

use super::facts::{Facts, Media, Purpose, SessionFacts};
use super::hash::{h3, push_uuid, unique_tail, uuid_string};
use super::{iso, Dataset};

const SALT_ID: u64 = 10;
const SALT_DIVISION: u64 = 11;
const SALT_QUEUE: u64 = 12;
const SALT_PARTICIPANT: u64 = 13;
const SALT_SESSION: u64 = 14;
const SALT_TEXT: u64 = 15;

/// Customer and user names: several scripts, diacritics and an emoji, so lossless export of
/// non-ASCII text is exercised.
pub(crate) const NAMES: &[&str] = &[
    "Zoë Ångström",
    "José Núñez",
    "Søren Kierkegaard",
    "李雷",
    "Amélie Poulain",
    "Björk Guðmundsdóttir",
    "Ada Lovelace",
    "Customer 😀",
    "Łukasz Żółw",
    "Ngozi Okonjo",
    "Иван Петров",
    "Grace Hopper",
    "Ómar Þórsson",
    "Françoise Hardy",
    "محمد علي",
    "Alan Turing",
];

const NOTES: &[&str] = &[
    "callback requested ☎️",
    "said \"thanks\" twice",
    "multi\nline note",
    "tab\tseparated",
    "résumé attached 📎",
    "plain note",
    "控制 \u{1} char",
    "emoji 🎧🚀",
];

const LOCALES: &[&str] = &["en-US", "sv-SE", "de-DE", "ja-JP", "fr-FR"];

fn push_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    let _ = write!(out, "{v}");
}

fn push_key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn push_quoted_uuid(out: &mut Vec<u8>, high: u64, tail: u64) {
    out.push(b'"');
    push_uuid(out, high, tail);
    out.push(b'"');
}

/// The id of division `d`.
pub(super) fn division_id(seed: u64, d: u64) -> String {
    uuid_string(
        h3(seed, d, SALT_DIVISION),
        unique_tail(seed, SALT_DIVISION, d),
    )
}

/// The id of queue `q`.
pub(super) fn queue_id(seed: u64, q: u64) -> String {
    uuid_string(h3(seed, q, SALT_QUEUE), unique_tail(seed, SALT_QUEUE, q))
}

impl Dataset {
    /// The `conversationId` of conversation `i` (unique by construction).
    pub(crate) fn conversation_id(&self, i: u64) -> String {
        let mut out = Vec::with_capacity(36);
        self.push_conversation_id(&mut out, i);
        String::from_utf8(out).expect("ascii")
    }

    /// The index whose `conversationId` this is (its last 12 hex digits encode the index).
    pub(crate) fn index_of(&self, id: &str) -> Option<u64> {
        let tail = u64::from_str_radix(id.get(id.len().checked_sub(12)?..)?, 16).ok()?;
        let i = unique_tail(self.seed, SALT_ID, tail) & 0xFFFF_FFFF_FFFF;
        (self.conversation_id(i) == id).then_some(i)
    }

    fn push_conversation_id(&self, out: &mut Vec<u8>, i: u64) {
        push_uuid(
            out,
            h3(self.seed, i, SALT_ID),
            unique_tail(self.seed, SALT_ID, i),
        );
    }

    /// Appends the canonical JSON of conversation `i` in its final state.
    #[cfg(test)]
    pub(crate) fn write_conversation(&self, i: u64, out: &mut Vec<u8>) {
        self.write_facts(&self.facts(i), None, out);
    }

    /// Appends the canonical JSON of the conversation `f` describes, as it stands at `as_of`
    /// (Unix ms; `None`: its final state).
    ///
    /// NOTE: before its end a conversation has no `conversationEnd` and no MOS; a participant
    /// appears once its first segment has started; a segment still running has no
    /// `segmentEnd` (nor `disconnectType`); a metric appears once emitted. At or after the end
    /// the record is exactly the final one.
    pub(crate) fn write_facts(&self, f: &Facts, as_of: Option<i64>, out: &mut Vec<u8>) {
        let now = as_of.filter(|&t| t < f.end_ms());
        let t = h3(self.seed, f.index, SALT_TEXT);
        out.push(b'{');
        if now.is_none() {
            out.extend_from_slice(b"\"conversationEnd\":");
            iso::push_quoted(out, f.end_ms());
            out.push(b',');
        }
        out.extend_from_slice(b"\"conversationId\":\"");
        self.push_conversation_id(out, f.index);
        out.extend_from_slice(b"\",\"conversationStart\":");
        iso::push_quoted(out, f.start_ms);
        out.extend_from_slice(b",\"divisionIds\":[");
        for k in 0..usize::from(f.division_count) {
            if k > 0 {
                out.push(b',');
            }
            push_str(out, self.division_id(f.divisions[k]));
        }
        out.push(b']');
        if t % 10 < 3 {
            out.extend_from_slice(b",\"externalTag\":");
            push_str(out, &format!("ext-{:x}", t >> 40));
        }
        if f.media == Media::Voice && now.is_none() {
            out.extend_from_slice(b",\"mediaStatsMinConversationMos\":");
            // NOTE: multiples of 1/64 are exact in binary, so even serde_json's default
            // (not correctly rounded) float parser reads them back to the same text.
            let mos = 3.0 + ((t >> 8) % 128) as f64 / 64.0;
            serde_json::to_writer(&mut *out, &mos).expect("finite");
        }
        out.extend_from_slice(b",\"originatingDirection\":\"");
        out.extend_from_slice(f.originating.as_str().as_bytes());
        out.extend_from_slice(b"\",\"participants\":[");
        let mut first = true;
        for (k, s) in f.sessions().enumerate() {
            let plan = self.plan(f, k as u64, s);
            if now.is_some_and(|now| plan.segments[0].from > now) {
                // NOTE: participants join in order, so the rest have not joined either.
                break;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            self.write_participant(f, k as u64, s, &plan, now, out);
        }
        out.extend_from_slice(b"],\"simExtension\":{\"flags\":[");
        let flags = (t >> 16) % 4;
        for k in 0..flags {
            if k > 0 {
                out.push(b',');
            }
            push_str(out, ["vip", "recorded", "survey", "escalated"][k as usize]);
        }
        out.extend_from_slice(b"],\"locale\":");
        push_str(out, LOCALES[((t >> 20) % LOCALES.len() as u64) as usize]);
        out.extend_from_slice(b",\"note\":");
        push_str(out, NOTES[((t >> 24) % NOTES.len() as u64) as usize]);
        out.extend_from_slice(b"}}");
    }

    fn write_participant(
        &self,
        f: &Facts,
        k: u64,
        s: SessionFacts,
        plan: &SessionPlan,
        now: Option<i64>,
        out: &mut Vec<u8>,
    ) {
        let ph = h3(self.seed, f.index * 8 + k, SALT_PARTICIPANT);
        let user = (ph >> 4) % self.users;
        out.push(b'{');
        if s.purpose == Purpose::Customer && ph.is_multiple_of(2) {
            out.extend_from_slice(b"\"attributes\":{\"crm.caseId\":");
            push_str(out, &format!("CASE-{}", (ph >> 8) % 1_000_000));
            out.extend_from_slice(b",\"lang\":");
            push_str(out, LOCALES[((ph >> 30) % LOCALES.len() as u64) as usize]);
            out.extend_from_slice(b"},");
        }
        push_key(out, "participantId");
        push_quoted_uuid(out, ph, ph >> 16);
        match s.purpose {
            Purpose::Customer => {
                out.extend_from_slice(b",\"participantName\":");
                push_str(out, NAMES[((ph >> 40) % NAMES.len() as u64) as usize]);
            }
            Purpose::Agent => {
                out.extend_from_slice(b",\"participantName\":");
                push_str(out, self.user_name(user));
            }
            Purpose::Acd => {}
        }
        out.extend_from_slice(b",\"purpose\":\"");
        out.extend_from_slice(s.purpose.as_str().as_bytes());
        out.extend_from_slice(b"\",\"sessions\":[");
        self.write_session(f, s, plan, now, out);
        out.push(b']');
        if s.purpose == Purpose::Agent {
            out.extend_from_slice(b",\"userId\":");
            self.push_user_id(out, user);
        }
        out.push(b'}');
    }

    /// The metrics and segments of participant `k`'s session, with their times.
    fn plan(&self, f: &Facts, k: u64, s: SessionFacts) -> SessionPlan {
        let sh = h3(self.seed, f.index * 8 + k, SALT_SESSION);
        let (start, end) = (f.start_ms, f.end_ms());
        let acd = (((f.h2 >> 20) % 60_000 + 1_000) as i64).min(f.duration_ms / 4);
        let alert = ((f.h2 >> 36) % 8_000 + 500) as i64;
        let rest = end - (start + acd + alert);
        let wrap = ((sh >> 8) % 30_000).min(rest as u64 / 3) as i64;
        let seg = |queued: bool, from, to, kind, disconnect| Seg {
            queued,
            from,
            to,
            kind,
            disconnect,
        };
        let none = Metric(0, "", 0);
        let none_seg = seg(false, 0, 0, "", None);
        match s.purpose {
            Purpose::Customer => SessionPlan {
                sh,
                metrics: ([Metric(end, "nConnected", 1), none, none], 1),
                segments: [
                    seg(false, start, end, "interact", Some("peer")),
                    none_seg,
                    none_seg,
                ],
                segment_count: 1,
            },
            Purpose::Acd => SessionPlan {
                sh,
                metrics: (
                    [
                        Metric(start + acd, "nOffered", 1),
                        Metric(start + acd, "tAcd", acd),
                        none,
                    ],
                    2,
                ),
                segments: [
                    seg(true, start, start + acd, "interact", None),
                    none_seg,
                    none_seg,
                ],
                segment_count: 1,
            },
            Purpose::Agent => {
                let from = if k >= 3 {
                    start + acd + alert + rest / 2
                } else {
                    start + acd
                };
                let talk_end = (end - wrap).max(from + alert);
                SessionPlan {
                    sh,
                    metrics: (
                        [
                            Metric(from + alert, "tAlert", alert),
                            Metric(talk_end, "tTalk", talk_end - from - alert),
                            Metric(end, "tAcw", wrap),
                        ],
                        3,
                    ),
                    segments: [
                        seg(true, from, from + alert, "alert", None),
                        seg(true, from + alert, talk_end, "interact", Some("client")),
                        seg(true, talk_end, end, "wrapup", None),
                    ],
                    segment_count: 3,
                }
            }
        }
    }

    fn write_session(
        &self,
        f: &Facts,
        s: SessionFacts,
        plan: &SessionPlan,
        now: Option<i64>,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(b"{\"ani\":\"");
        match s.media {
            Media::Email => {
                let _ = write!(out, "customer{}@example.com\",\"", (f.h >> 32) % 10_000);
            }
            Media::Chat => {
                let _ = write!(out, "chat:{:x}\",\"", f.h >> 40);
            }
            _ => {
                let _ = write!(out, "tel:+1555{:07}\",\"", (f.h >> 32) % 10_000_000);
            }
        }
        out.extend_from_slice(b"direction\":\"");
        out.extend_from_slice(s.direction.as_str().as_bytes());
        out.extend_from_slice(b"\",\"dnis\":\"");
        match s.media {
            Media::Email => out.extend_from_slice(b"support@example.com"),
            Media::Chat => out.extend_from_slice(b"webchat"),
            _ => {
                let _ = write!(out, "tel:+1800{:07}", (f.h2 >> 8) % 10_000_000);
            }
        }
        out.extend_from_slice(b"\",\"mediaType\":\"");
        out.extend_from_slice(s.media.as_str().as_bytes());
        out.push(b'"');
        let queue = s.queue.map(|q| self.queue_id(q));
        let (metrics, count) = &plan.metrics;
        let mut emitted = metrics[..*count]
            .iter()
            .filter(|m| now.is_none_or(|now| m.0 <= now))
            .peekable();
        if emitted.peek().is_some() {
            out.extend_from_slice(b",\"metrics\":[");
            for (n, m) in emitted.enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                metric(out, m.0, m.1, m.2);
            }
            out.push(b']');
        }
        out.extend_from_slice(b",\"provider\":\"Edge\",\"segments\":[");
        for (n, sg) in plan.segments[..plan.segment_count].iter().enumerate() {
            if now.is_some_and(|now| sg.from > now) {
                break;
            }
            if n > 0 {
                out.push(b',');
            }
            let open = now.is_some_and(|now| sg.to > now);
            segment(
                out,
                if sg.queued { queue } else { None },
                sg.from,
                (!open).then_some(sg.to),
                sg.kind,
                sg.disconnect.filter(|_| !open),
            );
        }
        out.extend_from_slice(b"],\"sessionId\":");
        push_quoted_uuid(out, plan.sh, plan.sh >> 12);
        out.push(b'}');
    }
}

/// A metric: emit time, name, value.
#[derive(Debug, Clone, Copy)]
struct Metric(i64, &'static str, i64);

/// A segment of a session.
#[derive(Debug, Clone, Copy)]
struct Seg {
    queued: bool,
    from: i64,
    to: i64,
    kind: &'static str,
    disconnect: Option<&'static str>,
}

/// Everything time-dependent of one session, in emission order (segments are contiguous and
/// in time order, so a prefix of them has started at any moment).
#[derive(Debug, Clone, Copy)]
struct SessionPlan {
    sh: u64,
    metrics: ([Metric; 3], usize),
    segments: [Seg; 3],
    segment_count: usize,
}

fn metric(out: &mut Vec<u8>, emit_ms: i64, name: &str, value: i64) {
    out.extend_from_slice(b"{\"emitDate\":");
    iso::push_quoted(out, emit_ms);
    out.extend_from_slice(b",\"name\":\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\",\"value\":");
    push_int(out, value);
    out.push(b'}');
}

fn segment(
    out: &mut Vec<u8>,
    queue: Option<&str>,
    from: i64,
    to: Option<i64>,
    kind: &str,
    disconnect: Option<&str>,
) {
    out.push(b'{');
    if let Some(d) = disconnect {
        out.extend_from_slice(b"\"disconnectType\":\"");
        out.extend_from_slice(d.as_bytes());
        out.extend_from_slice(b"\",");
    }
    if let Some(q) = queue {
        out.extend_from_slice(b"\"queueId\":\"");
        out.extend_from_slice(q.as_bytes());
        out.extend_from_slice(b"\",");
    }
    if let Some(to) = to {
        out.extend_from_slice(b"\"segmentEnd\":");
        iso::push_quoted(out, to);
        out.push(b',');
    }
    out.extend_from_slice(b"\"segmentStart\":");
    iso::push_quoted(out, from);
    out.extend_from_slice(b",\"segmentType\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\"}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset() -> Dataset {
        Dataset::new(42, 1_767_225_600_000, 7 * 86_400_000, 2_000, 50)
    }

    #[test]
    fn json_is_canonical_serde_json_round_trip() {
        let d = dataset();
        for i in 0..2_000 {
            let mut out = Vec::new();
            d.write_conversation(i, &mut out);
            let value: serde_json::Value = serde_json::from_slice(&out)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
            let again = serde_json::to_vec(&value).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&again),
                String::from_utf8_lossy(&out),
                "conversation {i} is not canonical"
            );
        }
    }

    #[test]
    fn records_as_of_a_moment_are_canonical_prefixes_and_final_from_their_end() {
        let d = dataset();
        let mut open = 0;
        for i in (0..2_000).step_by(7) {
            let f = d.facts(i);
            let mut final_ = Vec::new();
            d.write_conversation(i, &mut final_);
            for now in [f.start_ms, f.start_ms + f.duration_ms / 3, f.end_ms() - 1] {
                let mut out = Vec::new();
                d.write_facts(&f, Some(now), &mut out);
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                assert_eq!(serde_json::to_vec(&v).unwrap(), out, "canonical");
                assert!(v.get("conversationEnd").is_none());
                assert!(out.len() < final_.len());
                let open_segments = out.windows(13).filter(|w| w == b"segmentStart\"").count()
                    - out.windows(11).filter(|w| w == b"segmentEnd\"").count();
                assert!(open_segments >= 1, "something is still running at {now}");
                open += open_segments;
            }
            for now in [f.end_ms(), f.end_ms() + 1] {
                let mut out = Vec::new();
                d.write_facts(&f, Some(now), &mut out);
                assert_eq!(out, final_);
            }
        }
        assert!(open > 858, "{open}");
    }

    #[test]
    fn ids_give_back_their_index() {
        let d = dataset();
        for i in [0, 1, 999, 3 << 30, (3 << 30) + 5] {
            assert_eq!(d.index_of(&d.conversation_id(i)), Some(i));
        }
        let id = d.conversation_id(7);
        let other = format!("{}{}", &id[..35], if id.ends_with('0') { '1' } else { '0' });
        assert_eq!(d.index_of(&other), None);
        assert_eq!(d.index_of("nope"), None);
        assert_eq!(d.index_of(""), None);
    }

    #[test]
    fn records_are_deterministic_and_seed_dependent() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        dataset().write_conversation(7, &mut a);
        dataset().write_conversation(7, &mut b);
        Dataset::new(43, 1_767_225_600_000, 7 * 86_400_000, 2_000, 50)
            .write_conversation(7, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn records_are_realistic_and_varied() {
        let d = dataset();
        let mut media = std::collections::BTreeSet::new();
        let mut non_ascii = 0;
        let mut ids = std::collections::HashSet::new();
        for i in 0..2_000 {
            let mut out = Vec::new();
            d.write_conversation(i, &mut out);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert!(ids.insert(v["conversationId"].as_str().unwrap().to_owned()));
            let start = v["conversationStart"].as_str().unwrap();
            assert_eq!(start, iso::format(d.start_ms(i)));
            let parts = v["participants"].as_array().unwrap();
            assert!(parts.len() >= 2);
            for p in parts {
                let s = &p["sessions"][0];
                media.insert(s["mediaType"].as_str().unwrap().to_owned());
                assert!(!s["segments"].as_array().unwrap().is_empty());
                assert!(!s["metrics"].as_array().unwrap().is_empty());
            }
            if !out.is_ascii() {
                non_ascii += 1;
            }
            assert!(v["simExtension"].is_object(), "unknown extra field present");
        }
        assert_eq!(media.len(), 5, "{media:?}");
        assert!(non_ascii > 500, "{non_ascii}");
    }

    #[test]
    fn starts_are_monotonic_and_inside_the_span() {
        let d = dataset();
        let mut last = d.base_ms;
        for i in 0..2_000 {
            let s = d.start_ms(i);
            assert!(s >= last);
            assert!(s < d.base_ms + d.span_ms as i64);
            last = s;
        }
        let t = d.start_ms(1000);
        let k = d.lower_bound(t, 2_000);
        assert_eq!(d.start_ms(k), t);
        assert!(k == 0 || d.start_ms(k - 1) < t);
    }
}
