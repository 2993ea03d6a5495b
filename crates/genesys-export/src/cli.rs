//! The command line of `genesys-export` (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Parser, ValueEnum};
use keel_genesys::{Interval, Mode};

/// Export Genesys Cloud conversation details for an interval, surviving token expiry,
/// revocation, rate limits and faults, with every record exactly once.
///
/// Credentials come from the environment (`GENESYS_CLIENT_ID`, `GENESYS_CLIENT_SECRET`) or
/// from `--credentials-file`, never from a flag (flags show in `ps`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "genesys-export",
    version,
    after_help = "Credentials: GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET in the environment, or --credentials-file.\n\
                  Exit codes: 0 done, 2 usage (or output locked by another export), 3 credentials rejected, 4 API error after retries, 5 output I/O, 130 interrupted.\n\
                  Try it without an account: genesys-export --sim --out conversations.ndjson"
)]
#[command(group(ArgGroup::new("source").args(["sim", "environment", "api_url"])))]
#[command(group(ArgGroup::new("window").args(["interval", "since"])))]
pub struct Args {
    /// Run against an embedded keel-sim simulator (no account needed).
    #[arg(long)]
    pub sim: bool,

    /// Genesys Cloud region domain, e.g. `mypurecloud.com`, `usw2.pure.cloud`.
    #[arg(long, value_name = "DOMAIN")]
    pub environment: Option<String>,

    /// Explicit API base URL (gateways, tests); needs `--login-url`.
    #[arg(long, value_name = "URL", requires = "login_url")]
    pub api_url: Option<String>,

    /// Explicit login (OAuth) base URL; needs `--api-url`.
    #[arg(long, value_name = "URL", requires = "api_url")]
    pub login_url: Option<String>,

    /// Interval to export, ISO-8601 `START/END`, e.g. `2026-11-24T00:00:00Z/2026-11-25T00:00:00Z`.
    #[arg(long, value_name = "START/END", value_parser = parse_interval)]
    pub interval: Option<Interval>,

    /// Export the last DURATION up to now, e.g. `24h`, `90m`, `7d` (default: 24h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,

    /// Only conversations with a segment of this media type (voice, chat, email, callback, message, …).
    #[arg(long, value_name = "TYPE")]
    pub media_type: Option<String>,

    /// Conversations per page, 1 to 100.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub page_size: u32,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    pub format: Format,

    /// Output file (default: stdout), or a database: `sqlite:PATH`, `postgres://…`,
    /// `postgresql://…` (password from PGPASSWORD or ~/.pgpass, not the URL). Locked while
    /// the run lasts: a second export to the same output stops at once (exit 2).
    #[arg(long, value_name = "PATH|URL")]
    pub out: Option<PathBuf>,

    /// Database outputs only: export from the stored watermark (minus `--overlap`) up to now,
    /// fetch conversations stored while in progress again until they end, then move the
    /// watermark. The first run covers `--since` (24h by default).
    #[arg(long, requires = "out", conflicts_with = "interval")]
    pub incremental: bool,

    /// With `--incremental`: how far before the watermark each run starts again, for
    /// late-arriving data.
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = parse_duration, requires = "incremental")]
    pub overlap: Duration,

    /// The moment the export treats as now (RFC 3339), instead of the clock: for tests
    /// against a simulator whose clock is not the machine's.
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant, hide = true)]
    pub now: Option<time::OffsetDateTime>,

    /// Pages in flight at once (1 = page by page).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub prefetch: u32,

    /// Query API (paged details query) or async jobs API.
    #[arg(long, default_value_t = Mode::Query, value_parser = mode_parser())]
    pub mode: Mode,

    /// Make the run resumable: checkpoint after every page (`<out>.checkpoint`) and, when a
    /// checkpoint of an earlier run of the same export exists, continue after it.
    #[arg(long, requires = "out")]
    pub resume: bool,

    /// Read credentials from a file of `GENESYS_CLIENT_ID=…` / `GENESYS_CLIENT_SECRET=…` lines.
    #[arg(long, value_name = "PATH")]
    pub credentials_file: Option<PathBuf>,

    /// Progress on stderr: a bar on a terminal, else a line per `--log-every` pages.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,

    /// With plain progress, log a line every N pages.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub log_every: u64,

    /// Per-request timeout.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// With `--sim`: conversations the simulator holds (spread over the last 24 hours).
    #[arg(long, value_name = "N", default_value_t = 5_000, requires = "sim")]
    pub sim_conversations: u64,

    /// With `--sim`: latency the simulator adds to each page, e.g. `200ms`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "sim")]
    pub sim_page_latency: Option<Duration>,

    /// With `--sim`: turn the simulated faults (429s, 503s, resets, short tokens) off.
    #[arg(long, requires = "sim")]
    pub sim_no_faults: bool,

    /// Share one token and one rate budget with every other process of the same OAuth client
    /// through this Redis (`redis://host:port/db`, `rediss://…`; default `KEEL_REDIS_URL`).
    /// No password here: it goes in `KEEL_REDIS_PASSWORD` (and the user in
    /// `KEEL_REDIS_USERNAME`).
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,

    /// With Redis: stop (rather than carry on in-process) when Redis cannot be reached.
    #[arg(long)]
    pub redis_fail_closed: bool,

    /// With Redis: keep every process of the OAuth client together under this many API
    /// requests per second (permits taken from Redis in batches), so the fleet stays under the
    /// API's rate limit instead of each process discovering it with its own 429s.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub fleet_rate: Option<u32>,
}

/// Output record format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One conversation per line, exactly the JSON the API returned.
    Ndjson,
    /// id, start, end, duration_ms, direction, media_types.
    Csv,
}

/// `--mode`: the library's [`Mode`], by its names.
fn mode_parser() -> impl TypedValueParser<Value = Mode> {
    PossibleValuesParser::new([Mode::Query.as_str(), Mode::Jobs.as_str()])
        .try_map(|s| s.parse::<Mode>())
}

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain log lines otherwise.
    Auto,
    /// Always a bar.
    Bar,
    /// Always plain log lines.
    Log,
    /// Nothing but the summary.
    Quiet,
}

/// Parses an ISO-8601 `START/END` interval.
pub fn parse_interval(s: &str) -> Result<Interval, String> {
    s.parse::<Interval>().map_err(|e| e.to_string())
}

/// Parses an RFC 3339 instant, e.g. `2026-01-01T12:00:00Z`.
pub fn parse_instant(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-01-01T12:00:00Z ({e})"))
}

/// Parses `500ms`, `30s`, `90m`, `24h`, `7d`, `2w` (one number, one unit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "expected a number and a unit (ms, s, m, h, d, w), got `{s}`"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("number too large in `{s}`"))?;
    let secs_per_unit: u64 = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        "" => return Err(format!("missing unit in `{s}` (ms, s, m, h, d, w)")),
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}` (ms, s, m, h, d, w)"
            ))
        }
    };
    n.checked_mul(secs_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration too large: `{s}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("genesys-export").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_ndjson_query_prefetch_4_page_size_100() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.format, Format::Ndjson);
        assert_eq!(a.mode, Mode::Query);
        assert_eq!(a.prefetch, 4);
        assert_eq!(a.page_size, 100);
        assert!(a.out.is_none() && !a.resume && !a.sim);
    }

    #[test]
    fn mode_takes_the_library_modes_by_name() {
        assert_eq!(parse(&["--mode", "jobs"]).unwrap().mode, Mode::Jobs);
        let e = parse(&["--mode", "job"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert!(e.to_string().contains("query, jobs"), "{e}");
    }

    #[test]
    fn page_size_over_100_or_zero_is_a_usage_error_naming_the_flag() {
        for bad in ["101", "0"] {
            let e = parse(&["--page-size", bad]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ValueValidation);
            assert!(e.to_string().contains("--page-size"), "{e}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn unknown_flag_is_a_usage_error_naming_it() {
        let e = parse(&["--bogus"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        assert!(e.to_string().contains("--bogus"));
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn resume_requires_an_output_file() {
        let e = parse(&["--resume"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert!(parse(&["--resume", "--out", "x.ndjson"]).unwrap().resume);
    }

    #[test]
    fn sources_are_mutually_exclusive_and_api_url_needs_login_url() {
        assert!(parse(&["--sim", "--environment", "mypurecloud.com"]).is_err());
        assert!(parse(&["--api-url", "http://127.0.0.1:1"]).is_err());
        let a = parse(&[
            "--api-url",
            "http://127.0.0.1:1",
            "--login-url",
            "http://127.0.0.1:2",
        ])
        .unwrap();
        assert_eq!(a.login_url.as_deref(), Some("http://127.0.0.1:2"));
    }

    #[test]
    fn interval_and_since_are_mutually_exclusive() {
        let e = parse(&[
            "--interval",
            "2026-11-24T00:00:00Z/2026-11-25T00:00:00Z",
            "--since",
            "1h",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn bad_interval_is_a_usage_error_naming_the_flag() {
        for bad in ["yesterday", "2026-11-25T00:00:00Z/2026-11-24T00:00:00Z"] {
            let e = parse(&["--interval", bad]).unwrap_err();
            assert!(e.to_string().contains("--interval"), "{e}");
            assert_eq!(e.exit_code(), 2);
        }
        let a = parse(&["--interval", "2026-11-24T00:00:00Z/2026-11-25T00:00:00Z"]).unwrap();
        assert_eq!(
            a.interval.unwrap().to_string(),
            "2026-11-24T00:00:00.000Z/2026-11-25T00:00:00.000Z"
        );
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_duration("24").unwrap_err().contains("missing unit"));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("3y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn bad_since_is_a_usage_error_naming_the_flag() {
        let e = parse(&["--since", "yesterday"]).unwrap_err();
        assert!(e.to_string().contains("--since"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn incremental_needs_an_output_excludes_interval_and_owns_overlap() {
        let e = parse(&["--incremental"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        let e = parse(&[
            "--incremental",
            "--out",
            "sqlite:x.db",
            "--interval",
            "2026-11-24T00:00:00Z/2026-11-25T00:00:00Z",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
        assert!(
            parse(&["--overlap", "1h"]).is_err(),
            "--overlap needs --incremental"
        );
        let a = parse(&["--incremental", "--out", "sqlite:x.db"]).unwrap();
        assert_eq!(a.overlap, Duration::from_secs(7_200));
        let a = parse(&[
            "--incremental",
            "--out",
            "sqlite:x.db",
            "--overlap",
            "30m",
            "--now",
            "2026-01-01T12:00:00Z",
        ])
        .unwrap();
        assert_eq!(a.overlap, Duration::from_secs(1_800));
        assert_eq!(a.now.unwrap().unix_timestamp(), 1_767_268_800);
        assert!(parse(&["--now", "noon"]).is_err());
    }

    #[test]
    fn sim_knobs_need_sim() {
        assert!(parse(&["--sim-conversations", "10"]).is_err());
        assert_eq!(
            parse(&["--sim", "--sim-conversations", "10"])
                .unwrap()
                .sim_conversations,
            10
        );
    }
}
