//! Free loopback ports.
//!
//! Ports are drawn at random from below the kernel's ephemeral range (read from
//! /proc/sys/net/ipv4/ip_local_port_range), so that a port we hand out and release for a peer
//! to bind is not grabbed meanwhile by some client socket's automatic port. A port is handed
//! out at most once per test process. Falls back to binding port 0 when that range is small.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::Mutex;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

const LOW: u16 = 10_000;

fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32_768)
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

fn udp_free(port: u16) -> Option<UdpSocket> {
    UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).ok()
}

fn tcp_free(port: u16) -> Option<TcpListener> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).ok()
}

/// Find `n` consecutive ports, each free for both UDP and TCP on 127.0.0.1, not handed out
/// before by this process. Returns the first.
fn find_run(n: usize) -> u16 {
    assert!((1..=5000).contains(&n), "port run of {n} is not sensible");
    let high = ephemeral_low();
    let mut taken = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    if high > LOW && (high - LOW) as usize >= 4 * n + 1000 {
        let span = (high - LOW) as usize - n;
        for _ in 0..500 {
            let start = LOW + (random_u64() % span as u64) as u16;
            let ports: Vec<u16> = (start..start + n as u16).collect();
            if ports.iter().any(|p| taken.contains(p)) {
                continue;
            }
            // Hold every socket of the run at once, then release them together.
            let held: Option<Vec<_>> = ports
                .iter()
                .map(|&p| Some((udp_free(p)?, tcp_free(p)?)))
                .collect();
            if held.is_some() {
                taken.extend(ports);
                return start;
            }
        }
        panic!("no run of {n} free loopback ports found below {high}");
    }
    // Small non-ephemeral range: let the kernel pick (only sensible for single ports).
    for _ in 0..500 {
        let sock = udp_free(0).expect("bind udp 127.0.0.1:0");
        let start = sock.local_addr().expect("local_addr").port();
        if (start as usize) + n > 65_535 {
            continue;
        }
        let ports: Vec<u16> = (start..start + n as u16).collect();
        if ports.iter().any(|p| taken.contains(p)) {
            continue;
        }
        drop(sock);
        let held: Option<Vec<_>> = ports
            .iter()
            .map(|&p| Some((udp_free(p)?, tcp_free(p)?)))
            .collect();
        if held.is_some() {
            taken.extend(ports);
            return start;
        }
    }
    panic!("no run of {n} free loopback ports found");
}

/// A UDP port free on 127.0.0.1 (also free for TCP).
pub fn free_udp_port() -> u16 {
    find_run(1)
}

/// A TCP port free on 127.0.0.1 (also free for UDP).
pub fn free_tcp_port() -> u16 {
    find_run(1)
}

/// The first of `n` consecutive UDP ports free on 127.0.0.1: `start..start + n`.
pub fn free_udp_port_range(n: usize) -> u16 {
    find_run(n)
}
