//! The real writer of a one-server pool (its own event log in a temporary directory), under
//! concurrent random adds and removes: the final inventory is exactly what the answers
//! promised, in the order of their journal sequence numbers.

use super::*;
use crate::alarms::AlarmTable;
use crate::config::Config;
use crate::eventlog::EventLog;
use crate::metrics::Metrics;
use crate::model::{Element, ServerId};
use crate::poll::Poller;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::time::Duration;

async fn one_server(dir: &std::path::Path) -> Arc<Cluster> {
    let config = Config::parse(
        "[server]\nid = 1\nlisten = \"127.0.0.1:9\"\n\n\
             [credentials.public]\nversion = \"v2c\"\ncommunity = \"public\"\n",
        "t.toml",
    )
    .expect("config");
    let events =
        EventLog::open(&dir.join("events.redb"), ServerId(1), Duration::ZERO).expect("event log");
    let metrics = Metrics::new().expect("metrics");
    let alarms = Arc::new(AlarmTable::new(ServerId(1), events.clone()));
    let (poller, _scheduler) = Poller::start(
        ServerId(1),
        config.poll.clone(),
        config.credentials.clone(),
        alarms.clone(),
        metrics.clone(),
        Arc::new(crate::lease::Lease::for_config(&config)),
    );
    let c = Cluster::start(&config, poller, alarms, events, metrics)
        .await
        .expect("cluster");
    for _ in 0..100 {
        // Master, and done with its first assignment: only then does it take changes.
        let ready = {
            let st = c.lock();
            st.role == Role::Master && st.assignment.id.term == st.term
        };
        if ready {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a pool of one did not make its first assignment within 5 s");
}

fn element(i: u8) -> Element {
    Element {
        name: format!("ne{i:02}").into(),
        // Nobody answers on port 9 (discard): polling these does no harm.
        address: "127.0.0.1:9".into(),
        protocol: Default::default(),
        credential: "public".into(),
        interval: Some(Duration::from_secs(3600)),
        pin: None,
    }
}

fn ops() -> impl Strategy<Value = Vec<(bool, u8)>> {
    prop::collection::vec((any::<bool>(), 0u8..24), 20..120)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_changes_end_in_what_the_answers_promised(ops in ops()) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let (answers, names) = rt.block_on(async {
            let c = one_server(dir.path()).await;
            let mut set = tokio::task::JoinSet::new();
            for (add, i) in ops {
                let c = c.clone();
                set.spawn(async move {
                    let change = if add {
                        InventoryChange::Add(element(i))
                    } else {
                        InventoryChange::Remove(element(i).name.to_string())
                    };
                    let r = c
                        .change_inventory(change.clone(), false, Duration::from_secs(5))
                        .await;
                    (change, r.map(|a| (a.seq, a.applied)))
                });
            }
            let mut answers = Vec::new();
            while let Some(r) = set.join_next().await {
                answers.push(r.expect("task"));
            }
            let newest = answers
                .iter()
                .filter_map(|(_, r)| r.as_ref().ok().map(|(s, _)| *s))
                .max()
                .unwrap_or(0);
            for _ in 0..200 {
                if c.lock().applied_seq >= newest && c.lock().pending.is_none() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            let names: BTreeSet<String> = c
                .assignment()
                .elements
                .iter()
                .map(|e| e.name.to_string())
                .collect();
            (answers, names)
        });
        let mut ok: Vec<(u64, &InventoryChange)> = Vec::new();
        for (change, r) in &answers {
            match r {
                Ok((seq, applied)) => {
                    prop_assert!(applied.is_some(), "{change:?} not applied within 5 s");
                    ok.push((*seq, change));
                }
                Err(ClusterError::Exists(_) | ClusterError::NoSuchElement(_)) => {}
                Err(e) => prop_assert!(false, "{change:?}: unexpected refusal {e}"),
            }
        }
        ok.sort_by_key(|(s, _)| *s);
        let seqs: BTreeSet<u64> = ok.iter().map(|(s, _)| *s).collect();
        prop_assert_eq!(seqs.len(), ok.len(), "two accepted changes share a sequence number");
        let mut promised = BTreeSet::new();
        for (_, change) in ok {
            match change {
                InventoryChange::Add(e) | InventoryChange::Put(e) => {
                    prop_assert!(promised.insert(e.name.to_string()), "add of a present element accepted");
                }
                InventoryChange::Remove(n) => {
                    prop_assert!(promised.remove(n), "removal of an absent element accepted");
                }
                other => prop_assert!(false, "only element changes were made: {other:?}"),
            }
        }
        prop_assert_eq!(names, promised);
    }
}
