//! Tests of the event log: ids, queries, paging, retention, durability.
use super::*;
use crate::model::Severity;
use crate::model::now_millis;
use std::collections::HashSet;

const S: ServerId = ServerId(2);
const FOREVER: Duration = Duration::ZERO;

fn ev(ts: i64, element: Option<&str>, kind: &str) -> NewEvent {
    let text = format!("{kind} at {ts}");
    let element = element.map(str::to_owned);
    let (kind, severity) = (kind.to_owned(), Severity::Info);
    NewEvent {
        ts,
        element,
        kind,
        severity,
        text,
        alarm: None,
    }
}

fn open(dir: &tempfile::TempDir, retention: Duration) -> EventLog {
    EventLog::open(&dir.path().join("events.redb"), S, retention).expect("open")
}

async fn put(log: &EventLog, ts: i64, element: Option<&str>) -> Event {
    log.append_durable(ev(ts, element, "k"))
        .await
        .expect("append")
}

/// Runs a query (limit 10,000 unless `edit` says otherwise) and returns the page.
fn page(log: &EventLog, edit: impl FnOnce(&mut EventQuery)) -> EventPage {
    let mut q = EventQuery {
        limit: MAX_LIMIT,
        ..EventQuery::default()
    };
    edit(&mut q);
    log.query(&q).expect("query")
}

fn ts(log: &EventLog, edit: impl FnOnce(&mut EventQuery)) -> Vec<i64> {
    page(log, edit).events.iter().map(|e| e.ts).collect()
}

fn ids(log: &EventLog, edit: impl FnOnce(&mut EventQuery)) -> Vec<u64> {
    page(log, edit).events.iter().map(|e| e.id).collect()
}

#[tokio::test]
async fn ids_are_monotonic_across_reopen_and_events_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir, FOREVER);
    let mut written = vec![put(&log, 30, Some("r1")).await, put(&log, 10, None).await];
    written.push(put(&log, 20, Some("r1")).await);
    assert_eq!(written.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2, 3]);
    log.close().await;
    drop(log);

    let log = open(&dir, FOREVER);
    written.sort_by_key(|e| std::cmp::Reverse(EventCursor::from(e)));
    assert_eq!(page(&log, |_| {}).events, written);
    assert_eq!(put(&log, 5, None).await.id, 4);
    log.close().await;
}

#[tokio::test]
async fn ids_are_not_reused_after_pruning_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir, Duration::from_millis(10));
    put(&log, 1, None).await;
    put(&log, 2, None).await;
    assert_eq!(log.prune(1_000).expect("prune"), 2);
    log.close().await;
    drop(log);
    let log = open(&dir, Duration::from_millis(10));
    assert_eq!(put(&log, 2_000, None).await.id, 3);
    log.close().await;
}

#[tokio::test]
async fn query_filters_by_element_kind_and_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir, FOREVER);
    log.append(ev(10, Some("r1"), "alarm.raised"));
    log.append(ev(20, Some("r2"), "alarm.raised"));
    log.append(ev(30, Some("r1"), "alarm.cleared"));
    log.append(ev(40, Some("r1"), "element.state"));
    log.append(ev(50, None, "server.start"));
    log.append(ev(60, Some("r10"), "alarm.raised"));
    log.flush().await.expect("flush");

    let some = |s: &str| Some(s.to_owned());
    let none = Vec::<i64>::new();
    assert_eq!(ts(&log, |q| q.element = some("r1")), [40, 30, 10]);
    assert_eq!(ts(&log, |q| q.element = some("nope")), none);
    assert_eq!(ts(&log, |q| q.kind = some("alarm.*")), [60, 30, 20, 10]);
    assert_eq!(ts(&log, |q| q.kind = some("alarm.")), [60, 30, 20, 10]);
    assert_eq!(ts(&log, |q| q.kind = some("alarm")), none);
    assert_eq!(ts(&log, |q| q.kind = some("alarm.raised")), [60, 20, 10]);
    assert_eq!(
        ts(&log, |q| (q.since, q.until) = (Some(20), Some(50))),
        [40, 30, 20]
    );
    assert_eq!(
        ts(&log, |q| (q.since, q.until) = (Some(50), Some(50))),
        none
    );
    let r1_alarms_10_to_30 = |q: &mut EventQuery| {
        (q.element, q.kind) = (some("r1"), some("alarm.*"));
        (q.since, q.until) = (Some(10), Some(30));
    };
    assert_eq!(ts(&log, r1_alarms_10_to_30), [10]);
    assert_eq!(ts(&log, |q| q.limit = 2), [60, 50]);
    // `limit: 0` is the default query, not an empty one.
    assert_eq!(ts(&log, |q| q.limit = 0).len(), 6);
    log.close().await;
}

#[tokio::test]
async fn paging_returns_every_event_exactly_once_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir, FOREVER);
    // Many events share a timestamp, so that the cursor must break ties by id.
    for i in 0..1000i64 {
        log.append(ev(i / 7, Some(if i % 3 == 0 { "r1" } else { "r2" }), "k"));
    }
    log.flush().await.expect("flush");

    for (element, expected) in [(None, 1000), (Some("r1".to_owned()), 334)] {
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let p = page(&log, |q| {
                (q.element, q.limit, q.before) = (element.clone(), 33, before)
            });
            assert!(p.events.len() <= 33);
            seen.extend(p.events.iter().map(EventCursor::from));
            let Some(next) = p.next else { break };
            before = Some(next.to_string().parse().expect("cursor"));
        }
        assert_eq!(seen.len(), expected);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), expected);
        assert!(
            seen.windows(2).all(|w| w[0] > w[1]),
            "not strictly newest first"
        );
    }
    log.close().await;
}

#[tokio::test]
async fn cursor_from_another_server_orders_by_ts_server_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir, FOREVER);
    for ts in [4, 5, 5, 6] {
        log.append(ev(ts, None, "k"));
    }
    log.flush().await.expect("flush");
    let before = |ts, server, id| {
        ids(&log, |q| {
            q.before = Some(EventCursor {
                ts,
                server: ServerId(server),
                id,
            })
        })
    };
    // Our events at ts 5 (ids 2, 3) sort after any server-1 event at ts 5...
    assert_eq!(before(5, 1, 99), [1]);
    // ...and before any server-3 event at ts 5.
    assert_eq!(before(5, 3, 0), [3, 2, 1]);
    assert_eq!(before(5, 2, 3), [2, 1]);
    assert_eq!(before(i64::MAX, 9, 0), [4, 3, 2, 1]);
    log.close().await;
}

#[test]
fn cursor_text_round_trips_and_rejects_garbage() {
    let c = EventCursor {
        ts: -5,
        server: ServerId(3),
        id: 42,
    };
    assert_eq!(c.to_string(), "-5.3.42");
    assert_eq!("-5.3.42".parse::<EventCursor>().expect("parse"), c);
    for bad in ["", "1.2", "1.2.3.4", "a.2.3", "1.-2.3", "1.2.x", "1..3"] {
        let parsed = bad.parse::<EventCursor>();
        assert!(matches!(parsed, Err(EventLogError::BadCursor(_))), "{bad}");
    }
    let query = EventQuery {
        before: Some(c),
        ..EventQuery::default()
    };
    let json = serde_json::to_string(&query).expect("json");
    assert!(json.contains("\"-5.3.42\""));
    let back: EventQuery = serde_json::from_str(&json).expect("json");
    assert_eq!(back.before, Some(c));
    assert!(serde_json::from_str::<EventQuery>(r#"{"before":"zz"}"#).is_err());
}

#[tokio::test]
async fn prune_deletes_old_events_from_both_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir, Duration::from_millis(100));
    for ts in 0..10 {
        log.append(ev(ts * 100, Some("r1"), "k"));
    }
    log.flush().await.expect("flush");
    // Cutoff 1000 - 100 = 900: ts 0..=800 go, 900 stays.
    assert_eq!(log.prune(1_000).expect("prune"), 9);
    assert_eq!(ts(&log, |q| q.element = Some("r1".into())), [900]);
    let txn = log.db().expect("db").begin_read().expect("txn");
    let index = txn.open_table(BY_ELEMENT).expect("table");
    assert_eq!(redb::ReadableTableMetadata::len(&index).expect("len"), 1);
    drop(txn);
    log.close().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir, FOREVER);
    put(&log, 0, None).await;
    assert_eq!(log.prune(i64::MAX).expect("prune"), 0);
    log.close().await;
}

#[tokio::test]
async fn writer_prunes_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir, FOREVER);
    put(&log, 1, Some("r1")).await;
    log.close().await;
    drop(log);
    let log = open(&dir, Duration::from_secs(60));
    // The prune at open runs before the writer serves this append.
    put(&log, now_millis(), None).await;
    assert_eq!(ids(&log, |_| {}), [2]);
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir, FOREVER);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let element = format!("ne{t}");
                for i in 0..1250 {
                    if i % 100 == 0 {
                        put(&log, i, Some(&element)).await;
                    } else {
                        log.append(ev(i, Some(&element), "k"));
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    log.flush().await.expect("flush");
    assert_eq!((log.written_total(), log.write_errors_total()), (10_000, 0));
    let all = page(&log, |_| {});
    assert!(all.next.is_none());
    let ids: HashSet<u64> = all.events.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=10_000).collect());
    assert_eq!(ts(&log, |q| q.element = Some("ne3".into())).len(), 1250);
    log.close().await;
}

#[tokio::test]
async fn meta_is_durable_and_close_stops_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir, FOREVER);
    assert_eq!(log.meta_get("term").expect("get"), None);
    log.meta_put("term", b"7".to_vec()).await.expect("put");
    log.close().await;
    let late = log.append_durable(ev(1, None, "k")).await;
    assert!(matches!(late, Err(EventLogError::Closed)));
    assert!(matches!(log.flush().await, Err(EventLogError::Closed)));
    log.append(ev(1, None, "k"));
    assert_eq!(log.write_errors_total(), 1);
    log.close().await;
    drop(log);
    let log = open(&dir, FOREVER);
    assert_eq!(log.meta_get("term").expect("get"), Some(b"7".to_vec()));
    log.close().await;
}

#[test]
fn log_is_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<EventLog>();
}

#[tokio::test]
async fn read_after_follows_ids_not_clocks_and_skips_pruned_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir, Duration::from_millis(100));
    // The clock steps back between appends: id order is not ts order.
    for ts in [5_000, 900, 3_000, 10, 4_000] {
        log.append(ev(ts, Some("r1"), "k"));
    }
    log.flush().await.expect("flush");
    assert_eq!(log.last_id().expect("last"), 5);
    let got: Vec<(u64, i64)> = log
        .read_after(0, 100)
        .expect("read")
        .iter()
        .map(|e| (e.id, e.ts))
        .collect();
    assert_eq!(got, [(1, 5_000), (2, 900), (3, 3_000), (4, 10), (5, 4_000)]);
    let ids: Vec<u64> = log
        .read_after(2, 2)
        .expect("read")
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, [3, 4]);
    // Cutoff 3_100 - 100: ids 2 (ts 900) and 4 (ts 10) go; the follower jumps the gaps.
    assert_eq!(log.prune(3_100).expect("prune"), 2);
    let ids: Vec<u64> = log
        .read_after(1, 100)
        .expect("read")
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, [3, 5]);
    assert!(log.read_after(u64::MAX, 10).expect("read").is_empty());
    log.close().await;
}
