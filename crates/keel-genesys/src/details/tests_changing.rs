//! Result sets that change while a part is paged, against an in-process fake details API.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use secrecy::SecretString;
use serde_json::{json, Value};
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
        })
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
    let fake = fake.clone();
    let svc = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let fake = fake.clone();
        async move {
            let body = req.into_body().collect().await?.to_bytes();
            let answer = fake.answer(&body);
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(answer.to_string()))))
        }
    });
    let env = Environment::custom("http://127.0.0.1:9", "http://127.0.0.1:9").unwrap();
    let creds = Credentials::new("fake", SecretString::from("unused"));
    Client::builder(env, creds)
        .page_size(50)
        .prefetch(1)
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

#[tokio::test]
async fn an_insert_that_shifts_pages_restarts_the_part_and_loses_nothing() {
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
    assert_eq!(sorted_unique(ids(&pages)), fake.ids());
    assert_eq!(fake.ids().len(), 301);
    assert!(*fake.served.lock().unwrap() > 7, "the part was paged again");
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
async fn a_part_that_keeps_changing_ends_with_an_exact_resume_point() {
    let fake = Fake::new(
        200,
        Box::new(|served, records| {
            records.push((DAY_START_MS + served as i64, format!("c-new-{served:03}")));
        }),
    );
    let client = client(&fake);
    let mut export = client.conversation_details(query());
    let mut first = Vec::new();
    let err = loop {
        match export.try_next().await {
            Ok(Some(p)) => first.push(p),
            Ok(None) => panic!("the changing part was not noticed"),
            Err(e) => break e,
        }
    };
    let Error::ResultSetChanged {
        resume: Some(resume),
        interval,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(interval, query().interval);
    let Checkpoint::Query(cp) = resume.as_ref() else {
        panic!()
    };
    assert_eq!(cp.page_number, 0);
    assert_eq!(
        sorted_unique(cp.skip_ids.clone()),
        sorted_unique(ids(&first))
    );

    *fake.mutate.lock().unwrap() = None;
    let rest: Vec<DetailsPage> = client
        .conversation_details(query())
        .resume_after(*resume)
        .try_collect()
        .await
        .unwrap();
    let mut all = ids(&first);
    all.extend(ids(&rest));
    assert_eq!(sorted_unique(all), fake.ids());
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
