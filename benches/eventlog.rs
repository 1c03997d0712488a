//! Event log append throughput with group commit, and the latency of one durable append.
//!
//! `cargo bench --bench eventlog`; results go to BENCHMARKS.md.

use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use emspool::model::{NewEvent, ServerId, Severity};
use emspool::testing::EventLog;
use std::time::{Duration, Instant};

const EVENTS: u64 = 100_000;
const PRODUCERS: u64 = 4;

fn event(i: u64) -> NewEvent {
    let element = format!("ne-{:04}", i % 1000);
    NewEvent::now(
        Some(&element),
        "alarm.raised",
        Severity::Major,
        format!("ifIndex {} linkDown (ifOperStatus 2)", i % 24),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn open(dir: &tempfile::TempDir) -> EventLog {
    // Retention zero: the bench measures appends, not pruning.
    EventLog::open(&dir.path().join("bench.redb"), ServerId(1), Duration::ZERO)
        .expect("open event log")
}

fn short(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, secs: u64) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(secs));
}

/// PRODUCERS tasks append EVENTS fire-and-forget; the clock stops when `flush` says all is durable.
fn group_commit(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir);
    let mut group = c.benchmark_group("eventlog_append");
    short(&mut group, 15);
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function(
        format!("durable_{EVENTS}_events_{PRODUCERS}_producers"),
        |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let tasks: Vec<_> = (0..PRODUCERS)
                            .map(|p| {
                                let log = log.clone();
                                tokio::spawn(async move {
                                    for i in (p..EVENTS).step_by(PRODUCERS as usize) {
                                        log.append(event(i));
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.expect("producer");
                        }
                        log.flush().await.expect("flush");
                    }
                    start.elapsed()
                })
            })
        },
    );
    group.finish();
    assert_eq!(log.write_errors_total(), 0);
    rt.block_on(log.close());
}

/// One `append_durable` at a time: the cost of a commit (fsync) when nothing else is queued.
fn durable_latency(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir);
    let mut group = c.benchmark_group("eventlog_append");
    short(&mut group, 5);
    group.bench_function("append_durable_single", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    log.append_durable(event(i)).await.expect("append");
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(log.close());
}

criterion_group!(benches, group_commit, durable_latency);
criterion_main!(benches);
