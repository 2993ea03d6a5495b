//! Conversations per second into SQLite and PostgreSQL, flattened tables included.
//!
//! ```text
//! cargo run --release -p keel-genesys-db --example db_bench -- [CONVERSATIONS] [PAGE_SIZE] [sqlite|postgres]
//! ```
//!
//! Each database gets CONVERSATIONS (default 50,000) records of a realistic shape (customer,
//! ACD and agent participants with segments and metrics, about 2 KB of JSON each) committed
//! in pages of PAGE_SIZE (default 100, the details query's maximum), one transaction per page
//! with its resume point, then the same records again by a second run (the upsert path; the
//! records are unchanged, so nothing is rewritten). The wall time runs from the first commit to
//! the end of the final `flush` (a sink that pipelines has pages in flight until then), page
//! generation included (printed on its own first: a small share). Pages are generated one at a
//! time, so the process's peak memory shows whether the sink's memory is flat in the number of
//! conversations.
//! Wall time depends on the disk's fsync latency (every commit is durable) and on other load;
//! CPU seconds of this process and of the PostgreSQL backends serving the benchmark's database
//! are reported too, as the figure that other load does not distort.
//! PostgreSQL is a throwaway cluster from keel-testkit (durable settings: fsync on), skipped
//! when it is not installed.

use std::time::{Duration, Instant};

use keel_genesys::sink::{Commit, PageSink};
use keel_genesys::{Checkpoint, Interval, QueryCheckpoint, Record};
use keel_genesys_db::{DbSink, Destination, ExportSpec};
use serde_json::value::RawValue;
use time::OffsetDateTime;

fn conversation(i: u64, base: OffsetDateTime) -> Record {
    let start = base + time::Duration::seconds(i as i64);
    let end = start + time::Duration::seconds(300 + (i % 600) as i64);
    let q = format!("4b8e6f3a-0000-4000-8000-{:012x}", i % 20);
    let json = serde_json::json!({
        "conversationId": uuid_of(i),
        "conversationStart": iso(start),
        "conversationEnd": iso(end),
        "originatingDirection": if i.is_multiple_of(3) { "outbound" } else { "inbound" },
        "divisionIds": ["a1b2c3d4-0000-4000-8000-000000000001"],
        "mediaStatsMinConversationMos": 4.88,
        "participants": [
            {"participantId": format!("p-c-{i}"), "purpose": "customer", "participantName": "Zoë Ångström",
             "attributes": {"crm.caseId": format!("CASE-{i}")},
             "sessions": [{"mediaType": "voice", "sessionId": format!("s-c-{i}"), "direction": "inbound",
                 "ani": "tel:+15550001234", "dnis": "tel:+18000001234", "provider": "Edge",
                 "segments": [{"segmentType": "interact", "segmentStart": iso(start), "segmentEnd": iso(end), "disconnectType": "peer"}],
                 "metrics": [{"name": "nConnected", "value": 1, "emitDate": iso(end)}]}]},
            {"participantId": format!("p-q-{i}"), "purpose": "acd",
             "sessions": [{"mediaType": "voice", "sessionId": format!("s-q-{i}"), "direction": "inbound", "provider": "Edge",
                 "segments": [{"segmentType": "interact", "queueId": q, "segmentStart": iso(start), "segmentEnd": iso(start)}],
                 "metrics": [{"name": "nOffered", "value": 1, "emitDate": iso(start)},
                             {"name": "tAcd", "value": 12000, "emitDate": iso(start)}]}]},
            {"participantId": format!("p-a-{i}"), "purpose": "agent", "userId": "u-1", "participantName": "Ada Lovelace",
             "sessions": [{"mediaType": "voice", "sessionId": format!("s-a-{i}"), "direction": "inbound", "provider": "Edge",
                 "segments": [
                     {"segmentType": "alert", "queueId": q, "segmentStart": iso(start), "segmentEnd": iso(start)},
                     {"segmentType": "interact", "queueId": q, "segmentStart": iso(start), "segmentEnd": iso(end), "disconnectType": "client"},
                     {"segmentType": "wrapup", "queueId": q, "segmentStart": iso(end), "segmentEnd": iso(end)}],
                 "metrics": [{"name": "tAlert", "value": 3000, "emitDate": iso(start)},
                             {"name": "tTalk", "value": 250000, "emitDate": iso(end)},
                             {"name": "tAcw", "value": 20000, "emitDate": iso(end)}]}]}
        ],
        "simExtension": {"flags": ["vip"], "locale": "sv-SE", "note": "résumé attached 📎"}
    });
    Record {
        id: json["conversationId"].as_str().unwrap().to_owned(),
        start,
        raw: RawValue::from_string(json.to_string()).unwrap(),
    }
}

fn checkpoint(page: u32, size: u32) -> Checkpoint {
    let interval: Interval = "2024-01-01T00:00:00Z/2024-02-01T00:00:00Z".parse().unwrap();
    Checkpoint::Query(QueryCheckpoint::new(interval, interval, page, size))
}

/// CPU seconds (user + system) of a process, from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return 0.0;
    };
    let f: Vec<&str> = after.split_whitespace().collect();
    // NOTE: fields 14 and 15 of the file are the 12th and 13th after the command name.
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// The PostgreSQL backends serving database `db` (found once: a backend lives as long as its
/// connection, and scanning `/proc` for every page would add its own cost to the client's).
fn backends(db: Option<&str>) -> Vec<String> {
    let Some(db) = db else { return Vec::new() };
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmd.starts_with("postgres: ") && cmd.contains(&format!(" {db} ")) {
            pids.push(pid);
        }
    }
    pids
}

/// CPU seconds of this process, and of the `servers` backends.
fn cpu_split(servers: &[String]) -> (f64, f64) {
    (
        cpu_seconds("self"),
        servers.iter().map(|p| cpu_seconds(p)).sum(),
    )
}

/// Peak resident memory of this process (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Records made by substituting the id and the start into one rendered record: cheap enough
/// (a few hundred nanoseconds each) that generating the pages inside the timed loop hardly
/// counts, while every conversation still has its own id and start time.
struct Generator {
    /// The rendered record of conversation 0, split at its id and at each of its times.
    pieces: Vec<String>,
    base: OffsetDateTime,
}

impl Generator {
    fn new(base: OffsetDateTime) -> Self {
        let sample = conversation(0, base);
        let text = sample.raw.get().to_owned();
        let id = sample.id.clone();
        let start = iso(base);
        // NOTE: ids and start times are the only parts that vary; the end times and metrics of
        // conversation 0 stay, which costs the database nothing more or less.
        let mut pieces = Vec::new();
        for (k, part) in text.split(&id).enumerate() {
            if k > 0 {
                pieces.push(String::from("\u{1}"));
            }
            for (j, p) in part.split(&start).enumerate() {
                if j > 0 {
                    pieces.push(String::from("\u{2}"));
                }
                pieces.push(p.to_owned());
            }
        }
        Generator { pieces, base }
    }

    fn record(&self, i: u64) -> Record {
        let start = self.base + time::Duration::seconds(i as i64);
        let id = uuid_of(i);
        let at = iso(start);
        let mut json = String::with_capacity(2400);
        for p in &self.pieces {
            match p.as_str() {
                "\u{1}" => json.push_str(&id),
                "\u{2}" => json.push_str(&at),
                text => json.push_str(text),
            }
        }
        Record {
            id,
            start,
            raw: RawValue::from_string(json).unwrap(),
        }
    }
}

/// A version-4-shaped UUID that looks random but is a function of `i` (distinct for distinct
/// `i`): the API's conversation ids are random UUIDs, which land all over the primary keys'
/// B-trees, where sequential ids would all go to their right-most pages.
fn uuid_of(i: u64) -> String {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    // NOTE: the low half keeps `i` itself (bijective in `i`), the high half is its hash.
    let hi = mix(i.wrapping_add(0x9e37_79b9_7f4a_7c15));
    let lo = mix(hi) & 0xffff_0000_0000_0000 | i & 0x0000_ffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0x0fff,
        0x8000 | (lo >> 48) & 0x3fff,
        lo & 0xffff_ffff_ffff
    )
}

fn iso(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Commits `n` conversations and flushes: (wall time from the first commit to the end of the
/// flush, page generation included; CPU seconds of client and server).
async fn pass(
    sink: &mut DbSink,
    n: u64,
    page_size: u64,
    db: Option<&str>,
) -> (Duration, (f64, f64)) {
    let servers = backends(db);
    let base = OffsetDateTime::parse(
        "2024-01-01T00:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let generator = Generator::new(base);
    let mut page_no = 0u32;
    let mut i = 0u64;
    let c = cpu_split(&servers);
    let t = Instant::now();
    while i < n {
        let page: Vec<Record> = (i..(i + page_size).min(n))
            .map(|k| generator.record(k))
            .collect();
        page_no += 1;
        let resume = checkpoint(page_no, page_size as u32);
        sink.commit(Commit::new(&page, &resume, 1))
            .await
            .expect("commit");
        i += page.len() as u64;
    }
    sink.flush().await.expect("flush");
    let spent = t.elapsed();
    let d = cpu_split(&servers);
    (spent, (d.0 - c.0, d.1 - c.1))
}

/// Wall time of generating `n` records in pages, as `pass` does, without committing them.
fn generation_only(n: u64, page_size: u64) -> Duration {
    let generator = Generator::new(OffsetDateTime::UNIX_EPOCH);
    let t = Instant::now();
    let mut i = 0u64;
    let mut bytes = 0usize;
    while i < n {
        let page: Vec<Record> = (i..(i + page_size).min(n))
            .map(|k| generator.record(k))
            .collect();
        bytes += page.iter().map(|r| r.raw.get().len()).sum::<usize>();
        i += page.len() as u64;
    }
    std::hint::black_box(bytes);
    t.elapsed()
}

async fn bench(name: &str, dest: &Destination, db: Option<&str>, n: u64, page_size: u64) {
    let spec = ExportSpec::new("bench", serde_json::json!({}));
    let mut sink = DbSink::connect(dest, spec.clone()).await.expect("connect");
    sink.open().await.expect("open");
    let first = pass(&mut sink, n, page_size, db).await;
    sink.close().await.expect("close");
    drop(sink);
    // A second run over the same interval: every conversation is updated, its child rows replaced.
    let mut sink = DbSink::connect(dest, spec).await.expect("connect");
    sink.open().await.expect("open");
    let again = pass(&mut sink, n, page_size, db).await;
    sink.close().await.expect("close");
    for (what, (wall, (client, server))) in [("first write", first), ("re-run", again)] {
        println!(
            "{name:<8} {what:<11} {n} conversations, pages of {page_size}: {:>7.0} conv/s wall \
             ({:.2} s), {:>7.0} conv per CPU-second (client {:.2} s + server {:.2} s); peak RSS {:.0} MiB",
            n as f64 / wall.as_secs_f64(),
            wall.as_secs_f64(),
            n as f64 / (client + server),
            client,
            server,
            peak_rss_mib().unwrap_or(f64::NAN),
        );
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let page_size: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let only = args.next();
    let runs = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let sample = conversation(0, OffsetDateTime::UNIX_EPOCH);
    println!(
        "record size {} bytes; {} rows per conversation across the five tables; load average {}",
        sample.raw.get().len(),
        1 + 3 + 3 + 5 + 6,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    println!(
        "generating the pages alone: {:.2} s for {n} conversations (inside every figure below)",
        generation_only(n, page_size).as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    if runs("sqlite") {
        let sqlite = Destination::Sqlite(dir.path().join("bench.db"));
        bench("sqlite", &sqlite, None, n, page_size).await;
    }
    if !runs("postgres") {
        return;
    }

    // NOTE: `KEEL_BENCH_PG_URL` measures a server of your own (an empty database: the
    // benchmark writes its tables there); the password comes from the URL, `PGPASSWORD` or
    // `.pgpass` as for the export.
    if let Ok(url) = std::env::var("KEEL_BENCH_PG_URL") {
        let dest = Destination::parse(&url).expect("KEEL_BENCH_PG_URL");
        let db = url::Url::parse(&url)
            .ok()
            .map(|u| u.path().trim_start_matches('/').to_owned());
        bench("postgres", &dest, db.as_deref(), n, page_size).await;
        return;
    }
    match keel_testkit::postgres::PgCluster::shared() {
        Some(pg) => {
            let db = pg.create_database();
            let dest = Destination::parse(&db.url()).expect("url");
            bench("postgres", &dest, Some(&db.name), n, page_size).await;
        }
        None => println!("postgres   skipped: PostgreSQL is not installed"),
    }
}
