//! Free loopback ports, and the simulator started on a free run of them.
//!
//! Ports are drawn at random from below the kernel's ephemeral range (read from
//! /proc/sys/net/ipv4/ip_local_port_range), so that a port handed out and released for a child
//! to bind is not taken meanwhile by some client socket's automatic port. A port is handed out
//! at most once per process: an `emspool serve` child's HTTP port can never fall inside the
//! simulator's UDP run, nor two tests' daemons onto one port.

use crate::sim::{self, SimConfig, SimError, SimHandle};
use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::ops::Range;
use std::sync::Mutex;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Below this, ports belong to well-known services more often.
const LOW: u32 = 10_000;
/// Random candidates tried before giving up.
const TRIES: usize = 500;
/// Simulator starts tried (each on a new random run) when a port of the run is taken.
const SIM_TRIES: usize = 30;
/// Largest run checked by binding: it holds two sockets a port.
const MAX_CHECKED_RUN: usize = 5_000;

/// The first of the kernel's ephemeral ports and the last.
fn ephemeral() -> (u32, u32) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = text.split_whitespace().filter_map(|p| p.parse().ok());
    match (it.next(), it.next()) {
        (Some(lo), Some(hi)) if lo <= hi => (lo, hi),
        _ => (32_768, 60_999),
    }
}

/// Where runs of `n` ports are drawn from: below the ephemeral range when it leaves room,
/// else above it, else anywhere unprivileged.
fn space(n: usize) -> Range<u32> {
    let (elow, ehigh) = ephemeral();
    let room = u32::try_from(n)
        .unwrap_or(u32::MAX)
        .saturating_mul(4)
        .saturating_add(1_000);
    if elow.saturating_sub(LOW) >= room {
        LOW..elow
    } else if 65_535u32.saturating_sub(ehigh) >= room {
        ehigh + 1..65_536
    } else {
        1_024..65_536
    }
}

/// A random `start` with `start..start + n` inside `space` and none of it handed out.
fn candidate(n: usize, space: &Range<u32>, taken: &BTreeSet<u16>) -> Option<u16> {
    let n32 = u32::try_from(n).ok()?;
    let span = space.end.checked_sub(space.start)?.checked_sub(n32)?;
    let start = space.start + rand::random::<u32>() % span.max(1);
    let start = u16::try_from(start).ok()?;
    let end = u16::try_from(u32::from(start) + n32 - 1).ok()?;
    taken.range(start..=end).next().is_none().then_some(start)
}

fn no_run(n: usize, space: &Range<u32>) -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "no run of {n} free loopback ports found in {}..{}",
            space.start, space.end
        ),
    )
}

fn taken() -> std::sync::MutexGuard<'static, BTreeSet<u16>> {
    // The set stays consistent even if a holder panicked: it only ever grows.
    HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner())
}

/// The first of `n` consecutive ports (at most 5,000), each free on 127.0.0.1 for both UDP
/// and TCP right now, never handed out before by this process. All sockets of the run are
/// held at once while checking, then released together.
pub fn free_port_run(n: usize) -> io::Result<u16> {
    if !(1..=MAX_CHECKED_RUN).contains(&n) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a checked port run of {n} is not sensible (1..={MAX_CHECKED_RUN})"),
        ));
    }
    let space = space(n);
    let mut taken = taken();
    for _ in 0..TRIES {
        let Some(start) = candidate(n, &space, &taken) else {
            continue;
        };
        let ports = (0..n).filter_map(|i| start.checked_add(u16::try_from(i).ok()?));
        let held: Option<Vec<_>> = ports
            .clone()
            .map(|p| {
                let at = SocketAddrV4::new(Ipv4Addr::LOCALHOST, p);
                Some((UdpSocket::bind(at).ok()?, TcpListener::bind(at).ok()?))
            })
            .collect();
        if held.is_some_and(|h| h.len() == n) {
            taken.extend(ports);
            return Ok(start);
        }
    }
    Err(no_run(n, &space))
}

/// A port free on 127.0.0.1 for both UDP and TCP, never handed out before by this process.
pub fn free_port() -> io::Result<u16> {
    free_port_run(1)
}

/// The first of `n` consecutive ports not handed out before, marked as handed out but not
/// checked by binding: for a process that binds them all itself (the simulator, in this
/// process or as `emspool simulate`), whose bind is the check; on "address in use", ask again.
/// Any size that fits below the ephemeral range (10,000 agents need 10,000 ports).
pub fn reserve_port_run(n: usize) -> io::Result<u16> {
    let space = space(n);
    let mut taken = taken();
    for _ in 0..TRIES {
        if let Some(start) = candidate(n, &space, &taken) {
            taken.extend((0..n).filter_map(|i| start.checked_add(u16::try_from(i).ok()?)));
            return Ok(start);
        }
    }
    Err(no_run(n, &space))
}

/// Starts the simulator with `cfg` (its `base_port` is ignored) on `cfg.agents` consecutive
/// UDP ports of 127.0.0.1 (up to the whole space below the ephemeral range): a random run,
/// and another one when a port of it is taken.
pub async fn start_sim(mut cfg: SimConfig) -> anyhow::Result<SimHandle> {
    let mut last = None;
    for _ in 0..SIM_TRIES {
        cfg.base_port = reserve_port_run(cfg.agents.max(1))?;
        match sim::start(cfg.clone()).await {
            Ok(h) => return Ok(h),
            Err(SimError::Bind { source, addr, .. })
                if source.kind() == io::ErrorKind::AddrInUse =>
            {
                last = Some(addr);
            }
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!(
        "no run of {} free UDP ports for the simulator in {SIM_TRIES} tries (last taken: {last:?})",
        cfg.agents
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_free_and_never_handed_out_twice() {
        let a = free_port_run(16).expect("run");
        let b = free_port_run(16).expect("run");
        assert!(a.abs_diff(b) >= 16, "{a} and {b} overlap");
        let p = free_port().expect("port");
        assert!(!(a..a + 16).contains(&p) && !(b..b + 16).contains(&p));
        UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).expect("free for UDP");
        TcpListener::bind((Ipv4Addr::LOCALHOST, p)).expect("free for TCP");
        assert!(free_port_run(0).is_err());
        assert!(free_port_run(MAX_CHECKED_RUN + 1).is_err());
    }

    #[test]
    fn candidates_stay_inside_the_space() {
        let space = 20_000..20_010;
        let taken = BTreeSet::new();
        for _ in 0..100 {
            let s = candidate(4, &space, &taken).expect("room");
            assert!((20_000..=20_006).contains(&s), "{s}");
        }
        assert_eq!(candidate(11, &space, &taken), None);
        let all: BTreeSet<u16> = (20_000..20_010).collect();
        assert_eq!(candidate(1, &space, &all), None);
    }
}
