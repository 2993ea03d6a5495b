use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::convert::Infallible;

use futures_util::{StreamExt, TryStreamExt};
use tokio::time::{sleep, Instant};

use crate::{BoxError, FetchError, Fetched, PageError, PageStream};

type BoxFetch<T, N = ()> = Pin<Box<dyn Future<Output = Result<Fetched<T, N>, Boom>> + Send>>;

#[derive(Debug, PartialEq, Eq)]
struct Boom(u64);

/// Counts fetches: started (first poll), in flight (started, not finished or dropped),
/// completed, and the positions asked for.
#[derive(Debug, Default)]
struct Probe {
    started: AtomicUsize,
    in_flight: AtomicUsize,
    high_water: AtomicUsize,
    completed: AtomicUsize,
    calls: Mutex<Vec<u64>>,
}

struct InFlight(Arc<Probe>);

impl Probe {
    fn enter(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.high_water.fetch_max(now, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn calls(&self) -> Vec<u64> {
        self.calls.lock().unwrap().clone()
    }

    fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

impl InFlight {
    fn complete(self) {
        self.0.completed.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A page-number server over the items `0..total`, reporting `total`, with a delay per page.
fn numbered(
    probe: &Arc<Probe>,
    total: u64,
    page_size: u64,
    delay: impl Fn(u64) -> Duration + Send + 'static,
) -> impl FnMut(u64) -> BoxFetch<u64> {
    let probe = probe.clone();
    move |page| {
        probe.calls.lock().unwrap().push(page);
        let probe = probe.clone();
        let delay = delay(page);
        Box::pin(async move {
            let guard = probe.enter();
            if !delay.is_zero() {
                sleep(delay).await;
            }
            guard.complete();
            let start = (page - 1) * page_size;
            let items = (start..(start + page_size).min(total)).collect();
            Ok(Fetched::new(items).with_total(Some(total)))
        })
    }
}

fn positions<T, P: Clone, E>(results: &[Result<crate::Page<T, P>, E>]) -> Vec<P> {
    results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|p| p.position.clone()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn yields_in_order_when_later_pages_complete_first() {
    let probe = Arc::new(Probe::default());
    // page 2 is the slowest, page 5 the fastest
    let fetch = numbered(&probe, 50, 10, |page| {
        Duration::from_millis(1000 - page * 100)
    });
    let pages: Vec<_> = PageStream::page_numbers(10, fetch)
        .prefetch(4)
        .collect()
        .await;
    assert_eq!(positions(&pages), vec![1, 2, 3, 4, 5]);
    let items: Vec<u64> = pages.into_iter().flat_map(|p| p.unwrap().items).collect();
    assert_eq!(items, (0..50).collect::<Vec<_>>());
    assert_eq!(
        Probe::get(&probe.high_water),
        4,
        "pages 2..=5 fetched together"
    );
}

#[tokio::test(start_paused = true)]
async fn issues_pages_two_to_n_plus_one_once_the_total_is_known() {
    let probe = Arc::new(Probe::default());
    let fetch = numbered(&probe, 100, 10, |_| Duration::from_millis(100));
    let mut pages = PageStream::page_numbers(10, fetch).prefetch(3);
    let first = pages.next().await.unwrap().unwrap();
    assert_eq!(first.position, 1);
    assert_eq!(first.next, Some(2));
    assert_eq!(probe.calls(), vec![1, 2, 3, 4]);
    assert_eq!(Probe::get(&probe.in_flight), 3);
}

#[tokio::test(start_paused = true)]
async fn never_more_than_n_fetches_in_flight() {
    for n in [1, 2, 3, 5] {
        let probe = Arc::new(Probe::default());
        let fetch = numbered(&probe, 200, 10, |page| {
            Duration::from_millis(50 + (page * 37 % 7) * 30)
        });
        let pages: Vec<_> = PageStream::page_numbers(10, fetch)
            .prefetch(n)
            .collect()
            .await;
        assert_eq!(pages.len(), 20);
        assert_eq!(Probe::get(&probe.high_water), n, "prefetch {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn never_more_than_n_pages_requested_but_not_yielded() {
    for n in [1, 2, 4] {
        let probe = Arc::new(Probe::default());
        // every fetch completes at its first poll: anything allowed to run ahead does
        let fetch = numbered(&probe, 300, 10, |_| Duration::ZERO);
        let mut pages = PageStream::page_numbers(10, fetch).prefetch(n);
        let (mut yielded, mut most_outstanding) = (0, 0);
        while let Some(page) = pages.next().await {
            page.unwrap();
            yielded += 1;
            most_outstanding = most_outstanding.max(probe.calls().len() - yielded);
            sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(yielded, 30);
        assert_eq!(most_outstanding, n, "prefetch {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn pages_that_overtake_a_slow_one_wait_within_the_bound() {
    let n = 4;
    let probe = Arc::new(Probe::default());
    // every fifth page is slow: the next three complete first and wait for it
    let fetch = numbered(&probe, 400, 10, |page| {
        Duration::from_millis(if page % 5 == 2 { 500 } else { 10 })
    });
    let mut pages = PageStream::page_numbers(10, fetch).prefetch(n);
    let (mut yielded, mut most_buffered) = (0, 0);
    while let Some(page) = pages.next().await {
        assert_eq!(page.unwrap().position, yielded as u64 + 1);
        yielded += 1;
        most_buffered = most_buffered.max(Probe::get(&probe.completed) - yielded);
    }
    assert_eq!(yielded, 40);
    assert!(
        most_buffered >= 2,
        "pages overtook the slow one: {most_buffered}"
    );
    assert!(most_buffered <= n, "{most_buffered}");
}

#[tokio::test(start_paused = true)]
async fn error_after_k_pages_yields_k_pages_then_the_error_then_none() {
    let probe = Arc::new(Probe::default());
    let mut inner = numbered(&probe, 100, 10, |_| Duration::from_millis(100));
    let fetch = move |page: u64| -> BoxFetch<u64> {
        if page == 4 {
            // fails before pages 2 and 3 arrive
            return Box::pin(async move { Err(Boom(page)) });
        }
        inner(page)
    };
    let mut pages = PageStream::page_numbers(10, fetch).prefetch(4);
    for expected in 1..=3 {
        assert_eq!(pages.next().await.unwrap().unwrap().position, expected);
    }
    match pages.next().await {
        Some(Err(PageError::Fetch { index, source })) => {
            assert_eq!(index, 4);
            assert_eq!(source, Boom(4));
        }
        other => panic!("expected the fetch error, got {other:?}"),
    }
    assert!(pages.next().await.is_none());
    assert!(pages.next().await.is_none());
    assert!(futures_core::stream::FusedStream::is_terminated(&pages));
    assert_eq!(
        Probe::get(&probe.in_flight),
        0,
        "pages after the error are cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn resume_after_a_page_number_starts_at_the_next_page() {
    let probe = Arc::new(Probe::default());
    let fetch = numbered(&probe, 55, 10, |_| Duration::from_millis(10));
    let pages: Vec<_> = PageStream::page_numbers(10, fetch)
        .prefetch(2)
        .resume_after(3)
        .collect()
        .await;
    assert_eq!(positions(&pages), vec![4, 5, 6]);
    let items: Vec<u64> = pages.into_iter().flat_map(|p| p.unwrap().items).collect();
    assert_eq!(items, (30..55).collect::<Vec<_>>());
    assert!(probe.calls().iter().all(|page| *page > 3));
}

#[tokio::test(start_paused = true)]
async fn resume_from_a_page_number_starts_at_that_page() {
    let probe = Arc::new(Probe::default());
    let fetch = numbered(&probe, 55, 10, |_| Duration::from_millis(10));
    let pages: Vec<_> = PageStream::page_numbers(10, fetch)
        .resume_from(5)
        .collect()
        .await;
    assert_eq!(positions(&pages), vec![5, 6]);
}

#[tokio::test(start_paused = true)]
async fn page_numbers_end_when_the_total_is_reached() {
    let probe = Arc::new(Probe::default());
    // a server that would keep sending full pages past its own total
    let fetch = {
        let probe = probe.clone();
        move |page: u64| -> BoxFetch<u64> {
            probe.calls.lock().unwrap().push(page);
            Box::pin(async move { Ok(Fetched::new(vec![page; 10]).with_total(Some(30))) })
        }
    };
    let pages: Vec<_> = PageStream::page_numbers(10, fetch)
        .prefetch(8)
        .collect()
        .await;
    assert_eq!(positions(&pages), vec![1, 2, 3]);
    assert!(pages[2].as_ref().unwrap().is_last());
    assert_eq!(
        probe.calls(),
        vec![1, 2, 3],
        "nothing past the total is fetched"
    );
}

#[tokio::test(start_paused = true)]
async fn page_numbers_without_a_total_end_at_an_empty_page() {
    let probe = Arc::new(Probe::default());
    let fetch = {
        let probe = probe.clone();
        move |page: u64| -> BoxFetch<u64> {
            probe.calls.lock().unwrap().push(page);
            let items = if page <= 3 { vec![page; 10] } else { vec![] };
            Box::pin(async move { Ok(Fetched::new(items)) })
        }
    };
    let pages: Vec<_> = PageStream::page_numbers(10, fetch)
        .prefetch(4)
        .collect()
        .await;
    assert_eq!(positions(&pages), vec![1, 2, 3, 4]);
    let last = pages[3].as_ref().unwrap();
    assert!(last.items.is_empty() && last.is_last());
    assert_eq!(
        probe.calls(),
        vec![1, 2, 3, 4],
        "without a total, one page at a time"
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_page_ends_the_stream_even_if_the_total_says_more() {
    let probe = Arc::new(Probe::default());
    let fetch = {
        let probe = probe.clone();
        move |page: u64| -> BoxFetch<u64> {
            let guard = probe.enter();
            let items = if page < 3 { vec![page; 10] } else { vec![] };
            Box::pin(async move {
                sleep(Duration::from_millis(page * 10)).await;
                guard.complete();
                Ok(Fetched::new(items).with_total(Some(1000)))
            })
        }
    };
    let pages: Vec<_> = PageStream::page_numbers(10, fetch)
        .prefetch(5)
        .collect()
        .await;
    assert_eq!(positions(&pages), vec![1, 2, 3]);
    assert_eq!(
        Probe::get(&probe.in_flight),
        0,
        "pages after the empty one are dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn each_page_reports_its_own_total_and_a_growing_total_extends_the_stream() {
    let fetch = |page: u64| async move {
        // the data grows while the export runs: 25 items at first, 45 from page 2 on
        let total = if page == 1 { 25 } else { 45 };
        let start = (page - 1) * 10;
        let items: Vec<u64> = (start..(start + 10).min(total)).collect();
        Ok::<_, Boom>(Fetched::new(items).with_total(Some(total)))
    };
    let pages: Vec<_> = PageStream::page_numbers(10, fetch)
        .prefetch(2)
        .collect()
        .await;
    let totals: Vec<_> = pages.iter().map(|p| p.as_ref().unwrap().total).collect();
    assert_eq!(
        totals,
        vec![Some(25), Some(45), Some(45), Some(45), Some(45)]
    );
    assert_eq!(positions(&pages), vec![1, 2, 3, 4, 5]);
}

/// A cursor server: `chain[i]` holds the items and the next cursor of the page at cursor `i`.
fn cursor_server(
    probe: &Arc<Probe>,
    next: impl Fn(Option<u64>) -> Option<u64> + Send + 'static,
) -> impl FnMut(Option<u64>) -> BoxFetch<u64, u64> {
    let probe = probe.clone();
    move |cursor| {
        probe.calls.lock().unwrap().push(cursor.unwrap_or(0));
        let guard = probe.enter();
        let next = next(cursor);
        Box::pin(async move {
            sleep(Duration::from_millis(200)).await;
            guard.complete();
            Ok(Fetched::new(vec![cursor.unwrap_or(0)]).with_next(next))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn cursors_end_at_a_page_without_a_cursor() {
    let probe = Arc::new(Probe::default());
    let fetch = cursor_server(&probe, |c| Some(c.unwrap_or(0) + 1).filter(|n| *n < 5));
    let pages: Vec<_> = PageStream::cursors(fetch).prefetch(4).collect().await;
    assert_eq!(
        positions(&pages),
        vec![None, Some(1), Some(2), Some(3), Some(4)]
    );
    assert_eq!(pages[3].as_ref().unwrap().next, Some(Some(4)));
    assert!(pages[4].as_ref().unwrap().is_last());
    assert_eq!(Probe::get(&probe.high_water), 1, "cursors are sequential");
    assert_eq!(probe.calls(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn a_repeated_cursor_ends_with_a_typed_error() {
    let probe = Arc::new(Probe::default());
    // 0 -> 1 -> 2 -> 1 -> ...
    let fetch = cursor_server(&probe, |c| {
        Some(match c {
            None => 1,
            Some(1) => 2,
            _ => 1,
        })
    });
    let mut pages = PageStream::cursors(fetch);
    assert_eq!(pages.next().await.unwrap().unwrap().position, None);
    assert_eq!(pages.next().await.unwrap().unwrap().position, Some(1));
    assert_eq!(pages.next().await.unwrap().unwrap().position, Some(2));
    assert!(matches!(
        pages.next().await,
        Some(Err(PageError::Repeated { index: 3 }))
    ));
    assert!(pages.next().await.is_none());
    assert_eq!(
        probe.calls(),
        vec![0, 1, 2],
        "the repeated cursor is not fetched"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cursor_pointing_at_its_own_page_is_a_repeat() {
    let probe = Arc::new(Probe::default());
    let fetch = cursor_server(&probe, |c| Some(c.unwrap_or(7)));
    let results: Vec<_> = PageStream::cursors(fetch)
        .resume_from(Some(7))
        .collect()
        .await;
    assert_eq!(results.len(), 2);
    assert!(matches!(results[1], Err(PageError::Repeated { index: 1 })));
}

#[tokio::test(start_paused = true)]
async fn resume_after_a_cursor_refetches_it_without_yielding_it() {
    let probe = Arc::new(Probe::default());
    let fetch = cursor_server(&probe, |c| Some(c.unwrap_or(0) + 1).filter(|n| *n < 5));
    let pages: Vec<_> = PageStream::cursors(fetch)
        .resume_after(Some(2))
        .collect()
        .await;
    assert_eq!(positions(&pages), vec![Some(3), Some(4)]);
    assert_eq!(probe.calls(), vec![2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn resume_from_a_checkpointed_next_cursor() {
    let probe = Arc::new(Probe::default());
    let fetch = cursor_server(&probe, |c| Some(c.unwrap_or(0) + 1).filter(|n| *n < 5));
    let pages: Vec<_> = PageStream::cursors(fetch)
        .resume_from(Some(3))
        .collect()
        .await;
    assert_eq!(positions(&pages), vec![Some(3), Some(4)]);
    assert_eq!(probe.calls(), vec![3, 4]);
}

fn link_server(last: u32) -> impl FnMut(String) -> BoxFetch<String, String> {
    move |link: String| {
        let page: u32 = link.trim_start_matches("/users?page=").parse().unwrap();
        let next = (page < last).then(|| format!("/users?page={}", page + 1));
        Box::pin(async move { Ok(Fetched::new(vec![link]).with_next(next)) })
    }
}

#[tokio::test(start_paused = true)]
async fn next_links_end_at_a_page_without_a_link() {
    let pages: Vec<_> = PageStream::next_links("/users?page=1".to_string(), link_server(3))
        .collect()
        .await;
    let links: Vec<String> = positions(&pages);
    assert_eq!(links, ["/users?page=1", "/users?page=2", "/users?page=3"]);
    assert!(pages[2].as_ref().unwrap().is_last());
}

#[tokio::test(start_paused = true)]
async fn a_next_link_back_to_the_first_page_is_a_repeat() {
    let fetch = |link: String| async move {
        let next = if link == "/a" { "/b" } else { "/a" };
        Ok::<_, Boom>(Fetched::new(vec![()]).with_next(Some(next.to_string())))
    };
    let results: Vec<_> = PageStream::next_links("/a".to_string(), fetch)
        .collect()
        .await;
    assert_eq!(results.len(), 3);
    assert!(matches!(results[2], Err(PageError::Repeated { index: 2 })));
}

#[tokio::test(start_paused = true)]
async fn max_pages_stops_a_server_that_never_ends() {
    let probe = Arc::new(Probe::default());
    let fetch = {
        let probe = probe.clone();
        move |page: u64| -> BoxFetch<u64> {
            probe.calls.lock().unwrap().push(page);
            // claims a huge total and never sends an empty page
            Box::pin(async move { Ok(Fetched::new(vec![page]).with_total(Some(u64::MAX))) })
        }
    };
    let results: Vec<_> = PageStream::page_numbers(1, fetch)
        .prefetch(4)
        .max_pages(5)
        .collect()
        .await;
    assert_eq!(positions(&results), vec![1, 2, 3, 4, 5]);
    assert!(matches!(
        results[5],
        Err(PageError::TooManyPages { limit: 5 })
    ));
    assert_eq!(results.len(), 6);
    assert_eq!(
        probe.calls(),
        vec![1, 2, 3, 4, 5],
        "page 6 is never fetched"
    );
}

#[tokio::test(start_paused = true)]
async fn max_pages_is_not_an_error_when_the_last_page_is_reached() {
    let probe = Arc::new(Probe::default());
    let fetch = numbered(&probe, 50, 10, |_| Duration::from_millis(10));
    let results: Vec<_> = PageStream::page_numbers(10, fetch)
        .max_pages(5)
        .collect()
        .await;
    assert_eq!(results.len(), 5);
    assert!(results.iter().all(Result::is_ok));
}

async fn export_time(prefetch: usize) -> Duration {
    let probe = Arc::new(Probe::default());
    let fetch = numbered(&probe, 3000, 100, |_| Duration::from_millis(200));
    let start = Instant::now();
    let pages: Vec<_> = PageStream::page_numbers(100, fetch)
        .prefetch(prefetch)
        .collect()
        .await;
    assert_eq!(pages.len(), 30);
    start.elapsed()
}

#[tokio::test(start_paused = true)]
async fn prefetch_4_pages_30_pages_about_4_times_faster() {
    let sequential = export_time(1).await;
    let ahead = export_time(4).await;
    // one page at a time: 30 x 200 ms
    assert!(sequential >= Duration::from_millis(6000), "{sequential:?}");
    assert!(sequential < Duration::from_millis(6100), "{sequential:?}");
    // page 1, then 29 pages 4 at a time: 8 more rounds of 200 ms
    assert!(ahead >= Duration::from_millis(1800), "{ahead:?}");
    assert!(ahead < Duration::from_millis(1900), "{ahead:?}");
}

#[tokio::test(start_paused = true)]
async fn the_next_page_is_fetched_while_the_consumer_processes_the_current_one() {
    async fn run(prefetch: usize) -> (Duration, usize) {
        let probe = Arc::new(Probe::default());
        let fetch = cursor_server(&probe, |c| Some(c.unwrap_or(0) + 1).filter(|n| *n < 10));
        let mut pages = PageStream::cursors(fetch).prefetch(prefetch);
        let start = Instant::now();
        let mut started_before_asked = 0;
        while let Some(page) = pages.next().await {
            page.unwrap();
            if Probe::get(&probe.started) > Probe::get(&probe.completed) {
                started_before_asked += 1;
            }
            sleep(Duration::from_millis(200)).await; // processing the page
        }
        (start.elapsed(), started_before_asked)
    }
    let (overlapped, ahead) = run(1).await;
    assert_eq!(ahead, 9, "every page but the last starts its successor");
    assert_eq!(overlapped, Duration::from_millis(200 + 10 * 200));
    let (on_demand, ahead) = run(0).await;
    assert_eq!(ahead, 0);
    assert_eq!(on_demand, Duration::from_millis(10 * 400));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_stream_cancels_in_flight_fetches() {
    let probe = Arc::new(Probe::default());
    let fetch = numbered(&probe, 1000, 10, |_| Duration::from_millis(100));
    let mut pages = PageStream::page_numbers(10, fetch).prefetch(4);
    pages.next().await.unwrap().unwrap();
    assert_eq!(Probe::get(&probe.in_flight), 4);
    drop(pages);
    assert_eq!(Probe::get(&probe.in_flight), 0);
    assert_eq!(Probe::get(&probe.completed), 1);
}

#[test]
fn page_streams_are_send_when_their_fetches_are() {
    fn assert_send<S: Send>(_: &S) {}
    let probe = Arc::new(Probe::default());
    let stream = PageStream::page_numbers(10, numbered(&probe, 10, 10, |_| Duration::ZERO));
    assert_send(&stream);
    assert_send(&PageStream::cursors(cursor_server(&probe, |_| None)));
    assert!(format!("{stream:?}").starts_with("PageStream"));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn run(total: u64, page_size: u64, prefetch: usize, resume_after: u64) -> (Vec<u64>, Vec<u64>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let probe = Arc::new(Probe::default());
            let fetch = numbered(&probe, total, page_size, |page| {
                Duration::from_millis(page * 7919 % 13)
            });
            let mut stream = PageStream::page_numbers(page_size, fetch).prefetch(prefetch);
            if resume_after > 0 {
                stream = stream.resume_after(resume_after);
            }
            let pages: Vec<_> = stream.collect().await;
            assert!(Probe::get(&probe.high_water) <= prefetch.max(1));
            let positions = positions(&pages);
            let items = pages.into_iter().flat_map(|p| p.unwrap().items).collect();
            (positions, items)
        })
    }

    proptest! {
        #[test]
        fn every_item_exactly_once_in_order(
            total in 0u64..400,
            page_size in 1u64..40,
            prefetch in 0usize..8,
        ) {
            let (positions, items) = run(total, page_size, prefetch, 0);
            prop_assert_eq!(items, (0..total).collect::<Vec<_>>());
            let pages = total.div_ceil(page_size).max(1);
            prop_assert_eq!(positions, (1..=pages).collect::<Vec<_>>());
        }

        #[test]
        fn resume_after_yields_exactly_the_items_after_the_checkpoint(
            total in 1u64..400,
            page_size in 1u64..40,
            prefetch in 0usize..8,
            checkpoint in 1u64..40,
        ) {
            let pages = total.div_ceil(page_size);
            let checkpoint = checkpoint.min(pages);
            let (_, items) = run(total, page_size, prefetch, checkpoint);
            let expected: Vec<u64> = ((checkpoint * page_size).min(total)..total).collect();
            prop_assert_eq!(items, expected);
        }
    }
}

#[tokio::test]
async fn items_flatten_pages_and_mark_each_page_completed_after_its_last_record() {
    let mut items = PageStream::cursors(|cursor: Option<u32>| async move {
        // the second page is empty: a server may send one, and it is complete on arrival.
        let (records, next) = match cursor {
            None => (vec![1, 2], Some(2)),
            Some(2) => (vec![], Some(3)),
            Some(_) => (vec![3], None),
        };
        Ok::<_, Infallible>(Fetched::new(records).with_next(next))
    })
    .items();
    let mut seen = Vec::new();
    while let Some(record) = items.try_next().await.unwrap() {
        seen.push((record, items.completed().copied()));
    }
    assert_eq!(seen, vec![(1, None), (2, Some(None)), (3, Some(Some(3)))]);
}

#[tokio::test]
async fn items_stop_at_the_first_error_after_the_records_before_it() {
    let mut items = PageStream::page_numbers(1, |page: u64| async move {
        if page == 2 {
            Err("page two is broken")
        } else {
            Ok(Fetched::new(vec![page]).with_total(Some(3)))
        }
    })
    .items();
    assert_eq!(items.try_next().await.unwrap(), Some(1));
    let error = items.try_next().await.unwrap_err();
    assert!(matches!(error, PageError::Fetch { index: 2, .. }));
    assert_eq!(items.completed(), Some(&1));
    assert_eq!(items.try_next().await.unwrap(), None);
}

#[tokio::test]
async fn boxed_page_errors_convert_with_question_mark_and_keep_their_source() {
    async fn first_record() -> Result<u64, BoxError> {
        let mut items = PageStream::page_numbers(1, |_page: u64| async move {
            Err::<Fetched<u64>, BoxError>("upstream said no".into())
        })
        .items();
        let record = items.try_next().await.map_err(PageError::boxed)?;
        Ok(record.unwrap_or_default())
    }
    let error = first_record().await.unwrap_err();
    let page = error.downcast_ref::<PageError<FetchError>>().unwrap();
    assert_eq!(page.to_string(), "fetching page 1 failed");
    let source = std::error::Error::source(page).unwrap();
    assert_eq!(source.to_string(), "upstream said no");
}
