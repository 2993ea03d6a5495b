//! Result sets that change while a part is paged, against an in-process fake details API.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tower::util::BoxCloneSyncService;

use super::{Checkpoint, DetailsPage, SplitPolicy};
use crate::error::BoxError;
use crate::{Client, ConversationQuery, Credentials, Environment, Error, Interval};

const DAY: &str = "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z";
const DAY_START_MS: i64 = 1_767_225_600_000;

type Mutation = Box<dyn Fn(u64, &mut Vec<(i64, String)>) + Send + Sync>;

/// Records sorted by start; `mutate(pages_served, records)` runs after each page is served.
struct Fake {
    records: Mutex<Vec<(i64, String)>>,
    served: Mutex<u64>,
    mutate: Mutex<Option<Mutation>>,
    /// `(k, gate)`: page `k` is answered only once page `k + 1` was served (once).
    hold: Mutex<Option<(u64, Arc<Notify>)>>,
}

impl Fake {
    fn new(n: i64, mutate: Mutation) -> Arc<Self> {
        let records = (0..n)
            .map(|i| (DAY_START_MS + 1_000 + i * 60_000, format!("c-{i:05}")))
            .collect();
        Arc::new(Self {
            records: Mutex::new(records),
            served: Mutex::new(0),
            mutate: Mutex::new(Some(mutate)),
            hold: Mutex::new(None),
        })
    }

    fn page_number(body: &[u8]) -> u64 {
        let q: Value = serde_json::from_slice(body).unwrap();
        q["paging"]["pageNumber"].as_u64().unwrap()
    }

    fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .records
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.1.clone())
            .collect();
        ids.sort();
        ids
    }

    fn answer(&self, body: &[u8]) -> Value {
        let q: Value = serde_json::from_slice(body).unwrap();
        let interval: Interval = q["interval"].as_str().unwrap().parse().unwrap();
        let size = q["paging"]["pageSize"].as_u64().unwrap() as usize;
        let number = q["paging"]["pageNumber"].as_u64().unwrap() as usize;
        let (s, e) = (
            (interval.start().unix_timestamp_nanos() / 1_000_000) as i64,
            (interval.end().unix_timestamp_nanos() / 1_000_000) as i64,
        );
        let mut records = self.records.lock().unwrap();
        let matching: Vec<&(i64, String)> =
            records.iter().filter(|(t, _)| s <= *t && *t < e).collect();
        let total = matching.len();
        let page: Vec<Value> = matching
            .iter()
            .skip((number - 1) * size)
            .take(size)
            .map(|(t, id)| json!({"conversationId": id, "startMs": t}))
            .collect();
        let mut out = json!({ "totalHits": total });
        if !page.is_empty() {
            out["conversations"] = Value::Array(page);
        }
        let mut served = self.served.lock().unwrap();
        *served += 1;
        if let Some(m) = self.mutate.lock().unwrap().as_ref() {
            m(*served, &mut records);
            records.sort();
        }
        out
    }
}

fn client(fake: &Arc<Fake>) -> Client {
    client_with(fake, 1)
}

fn client_with(fake: &Arc<Fake>, prefetch: usize) -> Client {
    let fake = fake.clone();
    let svc = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let fake = fake.clone();
        async move {
            let body = req.into_body().collect().await?.to_bytes();
            let number = Fake::page_number(&body);
            let hold = fake.hold.lock().unwrap().clone();
            if let Some((k, gate)) = &hold {
                if number == *k {
                    gate.notified().await;
                }
            }
            let answer = fake.answer(&body);
            if let Some((k, gate)) = hold {
                if number == k + 1 {
                    *fake.hold.lock().unwrap() = None;
                    gate.notify_one();
                }
            }
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(answer.to_string()))))
        }
    });
    let env = Environment::custom("http://127.0.0.1:9", "http://127.0.0.1:9").unwrap();
    let creds = Credentials::new("fake", SecretString::from("unused"));
    Client::builder(env, creds)
        .page_size(50)
        .prefetch(prefetch)
        .max_parallel_parts(1)
        .split_policy(SplitPolicy {
            max_part: None,
            ..SplitPolicy::default()
        })
        .build_with(BoxCloneSyncService::new(svc))
}

fn ids(pages: &[DetailsPage]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.conversations.iter())
        .map(|c| {
            serde_json::from_str::<Value>(c.get()).unwrap()["conversationId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    let n = v.len();
    v.sort();
    v.dedup();
    assert_eq!(v.len(), n, "an id was yielded twice");
    v
}

fn query() -> ConversationQuery {
    ConversationQuery::new(DAY.parse().unwrap())
}

/// The ids of `fake` when the export started (`c-00000`…), sorted.
fn first(n: i64) -> Vec<String> {
    (0..n).map(|i| format!("c-{i:05}")).collect()
}

/// Asserts `got` holds each id once, every id of `must` and only ids of `may`.
fn assert_exactly_once(got: Vec<String>, must: &[String], may: &[String]) {
    let got = sorted_unique(got);
    let missing: Vec<&String> = must
        .iter()
        .filter(|id| got.binary_search(id).is_err())
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let mut may = may.to_vec();
    may.sort();
    let strange: Vec<&String> = got
        .iter()
        .filter(|id| may.binary_search(id).is_err())
        .collect();
    assert!(strange.is_empty(), "never in the results: {strange:?}");
}

#[tokio::test]
async fn an_insert_that_shifts_pages_is_read_on_in_order_and_loses_nothing() {
    let fake = Fake::new(
        300,
        Box::new(|served, records| {
            if served == 2 {
                records.push((DAY_START_MS, "c-early".to_owned()));
            }
        }),
    );
    let pages: Vec<DetailsPage> = client(&fake)
        .conversation_details(query())
        .try_collect()
        .await
        .unwrap();
    // NOTE: c-early arrived before the pages already read: a late arrival it cannot see.
    assert_exactly_once(ids(&pages), &first(300), &fake.ids());
    assert!(
        *fake.served.lock().unwrap() > 7,
        "the shifted page was read again"
    );
}

#[tokio::test]
async fn a_record_pushed_into_a_page_fetched_ahead_is_read_again_not_lost() {
    // Pages 3 to 6 are in flight together (page 2 told the total); page 4 is answered first,
    // then c-early is inserted, then page 3 is answered: c-00149, pushed from page 3 to
    // page 4 after page 4 was answered, is on neither page as fetched.
    let fake = Fake::new(
        300,
        Box::new(|served, records| {
            if served == 3 {
                records.push((DAY_START_MS, "c-early".to_owned()));
            }
        }),
    );
    *fake.hold.lock().unwrap() = Some((3, Arc::new(Notify::new())));
    let export = client_with(&fake, 4)
        .conversation_details(query())
        .try_collect::<Vec<DetailsPage>>();
    let pages = tokio::time::timeout(std::time::Duration::from_secs(20), export)
        .await
        .expect("page 3 was requested with page 4 in flight")
        .unwrap();
    assert!(
        fake.hold.lock().unwrap().is_none(),
        "page 4 was answered before page 3"
    );
    assert_exactly_once(ids(&pages), &first(300), &fake.ids());
}

#[tokio::test]
async fn late_arrivals_after_the_pages_read_are_yielded_once_and_counted() {
    // After every page, a conversation arrives at the end of the part.
    let fake = Fake::new(
        200,
        Box::new(|served, records| {
            let at = DAY_START_MS + 80_000_000 + served as i64;
            records.push((at, format!("c-late-{served:03}")));
        }),
    );
    let pages: Vec<DetailsPage> = client_with(&fake, 3)
        .conversation_details(query())
        .try_collect()
        .await
        .unwrap();
    let got = ids(&pages);
    let late = got.iter().filter(|id| id.starts_with("c-late")).count() as u64;
    assert!(late > 0, "late arrivals were picked up");
    assert_exactly_once(got, &first(200), &fake.ids());
    let Checkpoint::Query(last) = &pages.last().unwrap().checkpoint else {
        panic!("a query checkpoint")
    };
    assert_eq!(last.first_total_hits, Some(200));
    assert_eq!(last.yielded, Some(200 + late));
    assert_eq!(last.late_arrivals(), late);
}

#[tokio::test]
async fn a_shift_with_an_unchanged_total_is_caught_by_a_repeated_id() {
    let fake = Fake::new(
        300,
        Box::new(|served, records| {
            if served == 2 {
                records.pop();
                records.push((DAY_START_MS, "c-early".to_owned()));
            }
        }),
    );
    let pages: Vec<DetailsPage> = client(&fake)
        .conversation_details(query())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sorted_unique(ids(&pages)), fake.ids());
    assert!(ids(&pages).contains(&"c-early".to_owned()));
}

#[tokio::test]
async fn a_part_that_grows_after_every_page_completes_with_every_record_once() {
    let fake = Fake::new(
        200,
        Box::new(|served, records| {
            records.push((DAY_START_MS + served as i64, format!("c-new-{served:03}")));
        }),
    );
    let pages: Vec<DetailsPage> = client(&fake)
        .conversation_details(query())
        .try_collect()
        .await
        .unwrap();
    assert_exactly_once(ids(&pages), &first(200), &fake.ids());
}

#[tokio::test]
async fn a_removal_behind_the_pages_read_is_caught_and_the_part_read_again() {
    // After page 3, c-00010 (already yielded) is removed: every later record moves back one
    // place, and c-00150, at the start of page 4 until then, would be on no page.
    let fake = Fake::new(
        300,
        Box::new(|served, records| {
            if served == 3 {
                records.retain(|r| r.1 != "c-00010");
            }
        }),
    );
    let pages: Vec<DetailsPage> = client(&fake)
        .conversation_details(query())
        .try_collect()
        .await
        .unwrap();
    assert_exactly_once(ids(&pages), &first(300), &first(300));
    let restart = pages.iter().find_map(|p| match &p.checkpoint {
        Checkpoint::Query(q) if q.page_number == 0 => Some(q.clone()),
        _ => None,
    });
    let restart = restart.expect("the re-read begins with a restart point");
    assert!(restart.skip_ids.contains(&"c-00010".to_owned()));
}

#[tokio::test]
async fn a_part_that_keeps_shrinking_ends_with_an_exact_resume_point() {
    // After every page, the earliest remaining record is removed.
    let fake = Fake::new(
        200,
        Box::new(|_, records| {
            records.remove(0);
        }),
    );
    let client = client(&fake);
    let mut export = client.conversation_details(query());
    let mut first_run = Vec::new();
    let err = loop {
        match export.try_next().await {
            Ok(Some(p)) => first_run.push(p),
            Ok(None) => panic!("the shrinking part was not noticed"),
            Err(e) => break e,
        }
    };
    let Error::ResultSetChanged {
        resume: Some(resume),
        interval,
        expected,
        actual,
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(interval, query().interval);
    assert!(actual < expected, "{expected} -> {actual}");
    assert!(
        err_text(interval, expected, actual).contains(&interval.to_string()),
        "the error names the interval"
    );
    let Checkpoint::Query(cp) = resume.as_ref() else {
        panic!()
    };
    assert_eq!(cp.page_number, 0);
    assert_eq!(
        sorted_unique(cp.skip_ids.clone()),
        sorted_unique(ids(&first_run))
    );
    let rereads = first_run
        .iter()
        .filter(|p| matches!(&p.checkpoint, Checkpoint::Query(q) if q.page_number == 0))
        .count();
    assert_eq!(rereads as u32, super::part::MAX_REREADS);

    *fake.mutate.lock().unwrap() = None;
    let rest: Vec<DetailsPage> = client
        .conversation_details(query())
        .resume_after(*resume)
        .try_collect()
        .await
        .unwrap();
    let mut all = ids(&first_run);
    all.extend(ids(&rest));
    assert_exactly_once(all, &fake.ids(), &first(200));
}

fn err_text(interval: Interval, expected: u64, actual: u64) -> String {
    Error::ResultSetChanged {
        interval,
        expected,
        actual,
        resume: None,
    }
    .to_string()
}

#[tokio::test]
async fn a_change_after_a_mid_part_resume_gives_no_false_resume_point() {
    let fake = Fake::new(300, Box::new(|_, _| {}));
    let client = client(&fake);
    let mut export = client.conversation_details(query());
    let first = export.try_next().await.unwrap().unwrap();
    let second = export.try_next().await.unwrap().unwrap();
    drop(export);
    fake.records
        .lock()
        .unwrap()
        .insert(0, (DAY_START_MS, "c-early".to_owned()));
    let err = client
        .conversation_details(query())
        .resume_after(second.checkpoint)
        .try_next()
        .await
        .unwrap_err();
    // NOTE: the ids of the first page are unknown to the resumed run: no exact resume exists.
    assert!(
        matches!(
            err,
            Error::ResultSetChanged {
                resume: None,
                expected: 300,
                actual: 301,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(ids(&[first]).len(), 50);
}
