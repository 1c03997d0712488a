//! Polling at scale: one `emspool serve` (this build's binary, a child process) polls N
//! simulated agents (the simulator runs in this process, one UDP socket per agent) at a 60 s
//! interval; each poll is a GET of sysUpTime/sysName/sysDescr plus a GETBULK walk of 6
//! ifTable/ifXTable columns over 24 rows.
//!
//!     cargo bench --bench poll_scale
//!     EMSPOOL_BENCH_SIZES=1000,5000,10000 EMSPOOL_BENCH_INTERVAL_S=60 EMSPOOL_BENCH_WINDOWS=3 \
//!         EMSPOOL_BENCH_CONCURRENCY=256 cargo bench --bench poll_scale
//!
//! Per size it reports, per interval-long window after readiness: how many agents received a
//! request within the last interval + 1 s at the window's end (the simulator records the last
//! request time per agent and polling server), polls finished (`emspool_polls_total`), CPU of
//! the emspool process in cores (utime+stime from /proc/PID/stat over wall time), RSS (VmRSS) at
//! the window's end (read before that window's /metrics scrape) and its median, min and max
//! over once-a-second samples; then poll latency p50/p99 (from
//! the `emspool_poll_duration_seconds` histogram over the windows after the first, and exact
//! from each element's `last_duration_ms`). /metrics is read only at window ends: a scrape costs
//! the server a copy of every element's status. Memory per element is the RSS slope between
//! sizes. Set MALLOC_ARENA_MAX etc. in the environment to try allocator settings: the server
//! inherits it. Results go to BENCHMARKS.md.

mod support;

use emspool::sim::SimHandle;
use std::time::{Duration, Instant};
use support::*;

struct Window {
    agents_polled: usize,
    polls: f64,
    cores: f64,
    sim_cores: f64,
    rss_kib: u64,
    /// VmRSS sampled once a second through the window: the end alone can land on the
    /// once-an-interval poll burst or just after the allocator returned it.
    rss_median_kib: u64,
    rss_min_kib: u64,
    rss_max_kib: u64,
}

struct Run {
    n: usize,
    ready_after: Duration,
    first_round: Option<Duration>,
    windows: Vec<Window>,
    p50_hist: Option<f64>,
    p99_hist: Option<f64>,
    p50_exact: f64,
    p99_exact: f64,
    max_exact: f64,
    up: usize,
    hwm_kib: u64,
    failed_polls: f64,
}

/// Agents that received a request after `since` (simulator clock).
fn polled_since(sim: &SimHandle, since: Duration) -> usize {
    (0..sim.agents())
        .filter(|&i| sim.requesters(i).iter().any(|r| r.last >= since))
        .count()
}

fn config(n: usize, base: u16, port: u16, dir: &TempDir, interval: Duration) -> String {
    let concurrency = env_or("EMSPOOL_BENCH_CONCURRENCY", 256usize);
    single_server_config(n, base, port, dir, interval, concurrency)
}

fn run(rt: &tokio::runtime::Runtime, n: usize, interval: Duration, windows: usize) -> Run {
    let dir = temp_dir("poll-scale");
    let (sim, base) = start_sim(rt, n);
    let port = free_tcp_port();
    let url = format!("http://127.0.0.1:{port}");
    let (mut serve, ready_after) =
        serve_text(dir.path(), &url, &config(n, base, port, &dir, interval));
    let t0 = Instant::now();
    let metrics = || metrics_text(&url);

    // Each window starts where the previous ended; the first includes the start-up burst
    // (every element is due within 500 ms of readiness).
    let mut first_round = None;
    let mut prev_m = metrics();
    let mut prev_cpu = cpu_seconds(serve.pid()).unwrap_or(0.0);
    let mut prev_sim = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let mut prev_t = Instant::now();
    let mut hist_from = None;
    let mut out = Vec::new();
    for k in 0..windows {
        let end = t0 + interval * (k as u32 + 1);
        let mut samples = Vec::new();
        while Instant::now() < end {
            std::thread::sleep(Duration::from_secs(1).min(end - Instant::now()));
            samples.extend(proc_status_field(serve.pid(), "VmRSS"));
            if first_round.is_none() && polled_since(&sim, Duration::ZERO) == n {
                first_round = Some(t0.elapsed());
            }
            assert!(
                serve.try_wait().is_none(),
                "serve exited:\n{}",
                serve.log_tail_lines(30)
            );
        }
        let cpu = cpu_seconds(serve.pid()).unwrap_or(0.0);
        let sim_cpu = cpu_seconds(std::process::id()).unwrap_or(0.0);
        let now = Instant::now();
        // Every agent polled within the last interval (plus 1 s of slack for queueing)?
        let agents_polled = polled_since(
            &sim,
            sim.elapsed()
                .saturating_sub(interval + Duration::from_secs(1)),
        );
        // RSS before this window's scrape: a scrape copies every element's status.
        let rss_kib = proc_status_field(serve.pid(), "VmRSS").unwrap_or(0);
        samples.sort_unstable();
        let m = metrics();
        let wall = (now - prev_t).as_secs_f64();
        let w = Window {
            agents_polled,
            polls: metric(&m, "emspool_polls_total", None)
                - metric(&prev_m, "emspool_polls_total", None),
            cores: (cpu - prev_cpu) / wall,
            sim_cores: (sim_cpu - prev_sim) / wall,
            rss_kib,
            rss_median_kib: samples.get(samples.len() / 2).copied().unwrap_or(rss_kib),
            rss_min_kib: samples.first().copied().unwrap_or(rss_kib),
            rss_max_kib: samples.last().copied().unwrap_or(rss_kib),
        };
        eprintln!(
            "  n={n} window {k}: {} agents polled, {:.0} polls, emspool {:.3} cores, simulator {:.3} cores, RSS {} KiB (median {}, min {}, max {}), load {}",
            w.agents_polled,
            w.polls,
            w.cores,
            w.sim_cores,
            w.rss_kib,
            w.rss_median_kib,
            w.rss_min_kib,
            w.rss_max_kib,
            loadavg()
        );
        out.push(w);
        if k == 0 {
            hist_from = Some(m.clone());
        }
        prev_m = m;
        prev_cpu = cpu;
        prev_sim = sim_cpu;
        prev_t = now;
    }
    let hwm_kib = proc_status_field(serve.pid(), "VmHWM").unwrap_or(0);
    let last = prev_m;
    let name = "emspool_poll_duration_seconds";
    let before = if windows > 1 {
        buckets(hist_from.as_deref().unwrap_or(""), name)
    } else {
        Vec::new()
    };
    let after = buckets(&last, name);
    let p50_hist = histogram_quantile(0.5, &before, &after);
    let p99_hist = histogram_quantile(0.99, &before, &after);
    let failed_polls = metric(&last, "emspool_polls_total", None)
        - metric(&last, "emspool_polls_total", Some("result=\"up\""));

    // Exact latencies of every element's last poll (after the CPU measurement: this answer
    // is large and costs the server some CPU).
    let (_, d, up) = elements_polled(&url);
    let st = serve.terminate_within(Duration::from_secs(20));
    assert!(
        st.success(),
        "serve exit {st:?}:\n{}",
        serve.log_tail_lines(30)
    );
    rt.block_on(sim.shutdown());
    Run {
        n,
        ready_after,
        first_round,
        windows: out,
        p50_hist,
        p99_hist,
        p50_exact: quantile(&d, 0.5),
        p99_exact: quantile(&d, 0.99),
        max_exact: d.last().copied().unwrap_or(f64::NAN),
        up,
        hwm_kib,
        failed_polls,
    }
}

fn main() {
    if !bench_mode() {
        println!("poll_scale: run with `cargo bench --bench poll_scale` (skipped in test mode)");
        return;
    }
    let sizes: Vec<usize> = std::env::var("EMSPOOL_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let max = sizes.iter().copied().max().unwrap_or(0);
    raise_nofile_or_reexec(max + 2000);
    let interval = Duration::from_secs(env_or("EMSPOOL_BENCH_INTERVAL_S", 60));
    let windows = env_or("EMSPOOL_BENCH_WINDOWS", 3usize).max(1);
    println!("poll_scale: {}", machine());
    println!(
        "poll_scale: sizes {sizes:?}, interval {interval:?}, {windows} windows of one interval each"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut runs = Vec::new();
    for &n in &sizes {
        eprintln!("poll_scale: {n} elements ...");
        runs.push(run(&rt, n, interval, windows));
    }
    println!(
        "| elements | ready after | first full round | agents polled in the last interval + 1 s, at each window's end | polls per window (target = elements) | emspool CPU cores per window | simulator + bench cores | RSS at window end (MiB) | RSS median [min-max] per window (MiB) | peak RSS (MiB) | p50 / p99 poll (histogram, windows 2+) | p50 / p99 / max last poll (exact) | up at end | failed polls |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        let list =
            |f: &dyn Fn(&Window) -> String| r.windows.iter().map(f).collect::<Vec<_>>().join(" / ");
        println!(
            "| {} | {:.1} s | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} / {} | {:.1} / {:.1} / {:.1} ms | {} | {:.0} |",
            r.n,
            r.ready_after.as_secs_f64(),
            r.first_round
                .map_or("not within the run".into(), |d| format!(
                    "{:.1} s",
                    d.as_secs_f64()
                )),
            list(&|w| w.agents_polled.to_string()),
            list(&|w| format!("{:.0}", w.polls)),
            list(&|w| format!("{:.3}", w.cores)),
            list(&|w| format!("{:.3}", w.sim_cores)),
            list(&|w| format!("{:.1}", w.rss_kib as f64 / 1024.0)),
            list(&|w| format!(
                "{:.1} [{:.1}-{:.1}]",
                w.rss_median_kib as f64 / 1024.0,
                w.rss_min_kib as f64 / 1024.0,
                w.rss_max_kib as f64 / 1024.0
            )),
            r.hwm_kib as f64 / 1024.0,
            r.p50_hist
                .map_or("-".into(), |s| format!("{:.1} ms", s * 1000.0)),
            r.p99_hist
                .map_or("-".into(), |s| format!("{:.1} ms", s * 1000.0)),
            r.p50_exact,
            r.p99_exact,
            r.max_exact,
            r.up,
            r.failed_polls,
        );
    }
    for pair in runs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let rss = |r: &Run| r.windows.last().map_or(0, |w| w.rss_kib) as f64;
        let per = (rss(b) - rss(a)) * 1024.0 / (b.n as f64 - a.n as f64);
        let median = |r: &Run| r.windows.last().map_or(0, |w| w.rss_median_kib) as f64;
        let per_median = (median(b) - median(a)) * 1024.0 / (b.n as f64 - a.n as f64);
        let peak = (b.hwm_kib as f64 - a.hwm_kib as f64) * 1024.0 / (b.n as f64 - a.n as f64);
        println!(
            "memory per element (RSS slope {} -> {} elements): {:.0} bytes by the last window's median, {:.0} bytes at its end, {:.0} bytes by peak RSS; base ~ {:.1} MiB",
            a.n,
            b.n,
            per_median,
            per,
            peak,
            (rss(a) - per * a.n as f64 / 1024.0) / 1024.0
        );
    }
}
