//! `GET /metrics/devices`: the interfaces and health of the elements this server polls, in the
//! Prometheus text format, for Prometheus to scrape from every pool member (each exports only
//! the elements it owns now; see `sd` for finding the members).
//!
//! Series (README "Device metrics" is the user's copy of this list):
//! - per element, labels `element`: `emspool_device_up` (1 if the last poll answered),
//!   `emspool_device_poll_duration_seconds`, `emspool_device_uptime_seconds` (sysUpTime, or
//!   the NETCONF clock's), and `emspool_device_owner{element,server}` (1 on the exporting
//!   server);
//! - per interface of an element that answered its last poll, labels `element`, `ifindex`,
//!   `ifname`, `ifdescr`: `emspool_device_if_{in,out}_octets_total`,
//!   `..._{in,out}_ucast_packets_total`, `..._{in,out}_errors_total`,
//!   `..._{in,out}_discards_total`, `emspool_device_if_speed_bytes_per_second`,
//!   `emspool_device_if_admin_status`, `emspool_device_if_oper_status` (IF-MIB numbers), and
//!   `emspool_device_if_info{...,ifalias}` = 1.
//!
//! Counters are the agent's raw values (32-bit octet counters of agents without ifXTable are
//! carried over their wraps into 64 bits by the poller, `interface::Counters::carry_wraps`).
//! Every sample but `emspool_device_owner` carries the poll's time as its timestamp, so a
//! series continues unchanged when its element moves to another server, and a scrape between
//! two polls repeats the same sample (which Prometheus drops as a duplicate). The owner series
//! has no timestamp on purpose: it goes stale when the element leaves, so
//! `count by (element) (emspool_device_owner)` shows double exports.
//!
//! Label values are cut to [`MAX_LABEL_BYTES`] (at a character boundary) and escaped
//! (`\\`, `\"`, `\n`; other control characters become spaces).
//!
//! The render never holds the poller's lock for the whole scrape: a [`Snapshot`] copies the
//! statuses in chunks of [`SNAPSHOT_CHUNK`] elements, one read lock each; the text is then
//! written metric by metric (the format wants each metric's lines together) from the copy.

use super::stream;
use crate::model::interface::{Counters, has};
use crate::model::{ElementState, ElementStatus, ServerId};
use crate::poll::Poller;
use axum::http::{HeaderMap, header};
use std::io::{self, Write};
use std::ops::Range;

/// Longest label value written; longer ifDescr/ifName/ifAlias texts are cut.
pub(crate) const MAX_LABEL_BYTES: usize = 128;
/// Elements copied per read lock of the poller's state.
pub(crate) const SNAPSHOT_CHUNK: usize = 64;
/// Largest `shards` a scraper may ask for.
pub(crate) const MAX_SHARDS: u32 = 1024;

/// Which part of the elements one scrape returns: those whose name hashes (FNV-1a, stable
/// across servers and releases) to `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) index: u32,
    pub(crate) count: u32,
}

impl Shard {
    pub(crate) const ALL: Shard = Shard { index: 0, count: 1 };

    pub(crate) fn parse(index: Option<u32>, count: Option<u32>) -> Result<Shard, String> {
        match (index, count) {
            (None, None) => Ok(Shard::ALL),
            (Some(index), Some(count)) if (1..=MAX_SHARDS).contains(&count) && index < count => {
                Ok(Shard { index, count })
            }
            _ => Err(format!(
                "shard and shards go together, with 0 <= shard < shards <= {MAX_SHARDS}"
            )),
        }
    }

    pub(crate) fn contains(&self, element: &str) -> bool {
        self.count <= 1 || fnv1a(element) % u64::from(self.count) == u64::from(self.index)
    }
}

pub(crate) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Appends `v` as a label value: cut to [`MAX_LABEL_BYTES`], escaped.
fn push_label_value(out: &mut String, v: &str) {
    let mut end = v.len().min(MAX_LABEL_BYTES);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    let v = &v[..end];
    if !v
        .bytes()
        .any(|b| b < 0x20 || b == b'\\' || b == b'"' || b == 0x7f)
    {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

struct ElementSnap {
    /// `element="..."` in the arena.
    label: Range<usize>,
    up: bool,
    ts: Option<i64>,
    duration_ms: Option<u64>,
    uptime_ticks: Option<u32>,
    ifs: Range<usize>,
}

struct IfSnap {
    /// `element="...",ifindex="...",ifname="...",ifdescr="..."` in the arena.
    labels: Range<usize>,
    /// `,ifalias="..."` in the arena.
    alias: Range<usize>,
    admin: u8,
    oper: u8,
    counters: Counters,
}

/// A copy of what one scrape renders, taken chunk by chunk.
pub(crate) struct Snapshot {
    server: ServerId,
    arena: String,
    elements: Vec<ElementSnap>,
    ifs: Vec<IfSnap>,
}

impl Snapshot {
    pub(crate) fn take(poller: &Poller, server: ServerId, shard: Shard) -> Snapshot {
        let mut names = poller.owned_names();
        names.retain(|n| shard.contains(n));
        names.sort_unstable();
        let mut snap = Snapshot {
            server,
            arena: String::new(),
            elements: Vec::with_capacity(names.len()),
            ifs: Vec::new(),
        };
        for chunk in names.chunks(SNAPSHOT_CHUNK) {
            poller.visit_statuses(chunk, |name, st| snap.add(name, st));
        }
        snap
    }

    pub(crate) fn add(&mut self, name: &str, st: &ElementStatus) {
        let a = &mut self.arena;
        let start = a.len();
        a.push_str("element=\"");
        push_label_value(a, name);
        a.push('"');
        let label = start..a.len();
        let up = st.state == ElementState::Up;
        let first_if = self.ifs.len();
        if up {
            let element = a[label.clone()].to_owned();
            let mut num = itoa::Buffer::new();
            for i in &st.interfaces {
                let a = &mut self.arena;
                let start = a.len();
                a.push_str(&element);
                a.push_str(",ifindex=\"");
                a.push_str(num.format(i.index));
                a.push_str("\",ifname=\"");
                push_label_value(a, i.name().unwrap_or(""));
                a.push_str("\",ifdescr=\"");
                push_label_value(a, i.descr());
                a.push('"');
                let labels = start..a.len();
                a.push_str(",ifalias=\"");
                push_label_value(a, i.alias().unwrap_or(""));
                a.push('"');
                let alias = labels.end..a.len();
                self.ifs.push(IfSnap {
                    labels,
                    alias,
                    admin: i.admin_status,
                    oper: i.oper_status,
                    counters: i.counters().copied().unwrap_or_default(),
                });
            }
        }
        self.elements.push(ElementSnap {
            label,
            up,
            ts: st.last_poll,
            duration_ms: st.last_duration_ms,
            uptime_ticks: st.sys_uptime.filter(|_| up),
            ifs: first_if..self.ifs.len(),
        });
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

type IfValue = fn(&IfSnap) -> Option<u64>;

fn counter(c: &Counters, bit: u16, v: u64) -> Option<u64> {
    c.has(bit).then_some(v)
}

/// The per-interface metrics: name, help, type, value (none: no line).
const IF_FAMILIES: [(&str, &str, Kind, IfValue); 12] = [
    (
        "emspool_device_if_in_octets_total",
        "Octets received (ifHCInOctets; ifInOctets carried over wraps where the agent has no ifXTable).",
        Kind::Counter,
        |i| counter(&i.counters, has::IN_OCTETS, i.counters.in_octets),
    ),
    (
        "emspool_device_if_out_octets_total",
        "Octets sent (ifHCOutOctets; ifOutOctets carried over wraps where the agent has no ifXTable).",
        Kind::Counter,
        |i| counter(&i.counters, has::OUT_OCTETS, i.counters.out_octets),
    ),
    (
        "emspool_device_if_in_ucast_packets_total",
        "Unicast packets received (ifHCInUcastPkts).",
        Kind::Counter,
        |i| counter(&i.counters, has::IN_UCAST, i.counters.in_ucast),
    ),
    (
        "emspool_device_if_out_ucast_packets_total",
        "Unicast packets sent (ifHCOutUcastPkts).",
        Kind::Counter,
        |i| counter(&i.counters, has::OUT_UCAST, i.counters.out_ucast),
    ),
    (
        "emspool_device_if_in_errors_total",
        "Inbound packets with errors (ifInErrors, 32-bit: a wrap reads as a counter reset).",
        Kind::Counter,
        |i| counter(&i.counters, has::IN_ERRORS, u64::from(i.counters.in_errors)),
    ),
    (
        "emspool_device_if_out_errors_total",
        "Outbound packets not sent for errors (ifOutErrors, 32-bit).",
        Kind::Counter,
        |i| {
            counter(
                &i.counters,
                has::OUT_ERRORS,
                u64::from(i.counters.out_errors),
            )
        },
    ),
    (
        "emspool_device_if_in_discards_total",
        "Inbound packets discarded without error (ifInDiscards, 32-bit).",
        Kind::Counter,
        |i| {
            counter(
                &i.counters,
                has::IN_DISCARDS,
                u64::from(i.counters.in_discards),
            )
        },
    ),
    (
        "emspool_device_if_out_discards_total",
        "Outbound packets discarded without error (ifOutDiscards, 32-bit).",
        Kind::Counter,
        |i| {
            counter(
                &i.counters,
                has::OUT_DISCARDS,
                u64::from(i.counters.out_discards),
            )
        },
    ),
    (
        "emspool_device_if_speed_bytes_per_second",
        "Nominal speed in bytes per second (ifHighSpeed, else ifSpeed, divided by 8).",
        Kind::Gauge,
        |i| counter(&i.counters, has::SPEED, i.counters.speed_bps / 8),
    ),
    (
        "emspool_device_if_admin_status",
        "ifAdminStatus: 1 up, 2 down, 3 testing (0: not reported).",
        Kind::Gauge,
        |i| Some(u64::from(i.admin)),
    ),
    (
        "emspool_device_if_oper_status",
        "ifOperStatus: 1 up, 2 down, 3 testing, 4 unknown, 5 dormant, 6 notPresent, 7 lowerLayerDown (0: not reported).",
        Kind::Gauge,
        |i| Some(u64::from(i.oper)),
    ),
    (
        "emspool_device_if_info",
        "Always 1; ifalias carries ifAlias (NETCONF: description).",
        Kind::Gauge,
        |_| Some(1),
    ),
];

/// What one render wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RenderStats {
    pub(crate) elements: usize,
    pub(crate) series: usize,
    pub(crate) bytes: usize,
}

/// Text lines into a buffer that goes to `out` in large writes (small writes into a gzip
/// encoder cost more than the formatting).
struct Lines<'w, W: Write> {
    buf: Vec<u8>,
    out: &'w mut W,
    num: itoa::Buffer,
    stats: RenderStats,
}

impl<W: Write> Lines<'_, W> {
    fn header(&mut self, name: &str, help: &str, kind: Kind) -> io::Result<()> {
        for part in ["# HELP ", name, " ", help, "\n# TYPE ", name, " "] {
            self.buf.extend_from_slice(part.as_bytes());
        }
        self.buf.extend_from_slice(kind.as_str().as_bytes());
        self.buf.push(b'\n');
        self.spill()
    }

    /// `name{labels} value[ ts]` with an integer value.
    fn sample(
        &mut self,
        name: &str,
        labels: &[&str],
        value: u64,
        ts: Option<i64>,
    ) -> io::Result<()> {
        self.start(name, labels);
        self.buf
            .extend_from_slice(self.num.format(value).as_bytes());
        self.end(ts)
    }

    /// The same with a value already formatted.
    fn sample_text(
        &mut self,
        name: &str,
        labels: &[&str],
        value: &[u8],
        ts: Option<i64>,
    ) -> io::Result<()> {
        self.start(name, labels);
        self.buf.extend_from_slice(value);
        self.end(ts)
    }

    fn start(&mut self, name: &str, labels: &[&str]) {
        let b = &mut self.buf;
        b.extend_from_slice(name.as_bytes());
        b.push(b'{');
        for l in labels {
            b.extend_from_slice(l.as_bytes());
        }
        b.extend_from_slice(b"} ");
    }

    fn end(&mut self, ts: Option<i64>) -> io::Result<()> {
        if let Some(ts) = ts {
            self.buf.push(b' ');
            self.buf.extend_from_slice(self.num.format(ts).as_bytes());
        }
        self.buf.push(b'\n');
        self.stats.series += 1;
        self.spill()
    }

    fn spill(&mut self) -> io::Result<()> {
        if self.buf.len() >= stream::CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.stats.bytes += self.buf.len();
        self.buf.clear();
        Ok(())
    }
}

/// Hundredths or thousandths as a decimal: `fixed(1234, 1000)` is `1.234`.
fn fixed(v: u64, per: u64, digits: usize) -> Vec<u8> {
    format!("{}.{:0digits$}", v / per, v % per).into_bytes()
}

/// Writes the whole scrape of `snap` to `out` (not flushed).
pub(crate) fn render<W: Write>(snap: &Snapshot, out: &mut W) -> io::Result<RenderStats> {
    let mut l = Lines {
        buf: Vec::with_capacity(stream::CHUNK_BYTES + 4096),
        out,
        num: itoa::Buffer::new(),
        stats: RenderStats {
            elements: snap.elements.len(),
            ..RenderStats::default()
        },
    };
    let text = |r: &Range<usize>| &snap.arena[r.clone()];
    let server = format!(",server=\"{}\"", snap.server);
    l.header(
        "emspool_device_owner",
        "1 on the server that polls the element now (no timestamp: goes stale when the element moves).",
        Kind::Gauge,
    )?;
    for e in &snap.elements {
        l.sample("emspool_device_owner", &[text(&e.label), &server], 1, None)?;
    }
    l.header(
        "emspool_device_up",
        "1 if the element answered its last poll, else 0.",
        Kind::Gauge,
    )?;
    for e in &snap.elements {
        if e.ts.is_some() {
            l.sample(
                "emspool_device_up",
                &[text(&e.label)],
                u64::from(e.up),
                e.ts,
            )?;
        }
    }
    l.header(
        "emspool_device_poll_duration_seconds",
        "How long the element's last poll took.",
        Kind::Gauge,
    )?;
    for e in &snap.elements {
        if let (Some(ms), Some(_)) = (e.duration_ms, e.ts) {
            let v = fixed(ms, 1000, 3);
            l.sample_text(
                "emspool_device_poll_duration_seconds",
                &[text(&e.label)],
                &v,
                e.ts,
            )?;
        }
    }
    l.header(
        "emspool_device_uptime_seconds",
        "Time since the element's agent (re)started (sysUpTime; NETCONF: its clock's boot time).",
        Kind::Gauge,
    )?;
    for e in &snap.elements {
        if let Some(t) = e.uptime_ticks {
            let v = fixed(u64::from(t), 100, 2);
            l.sample_text("emspool_device_uptime_seconds", &[text(&e.label)], &v, e.ts)?;
        }
    }
    for (name, help, kind, value) in IF_FAMILIES {
        l.header(name, help, kind)?;
        let info = name == "emspool_device_if_info";
        for e in snap.elements.iter().filter(|e| e.up) {
            for i in &snap.ifs[e.ifs.clone()] {
                if let Some(v) = value(i) {
                    let labels = text(&i.labels);
                    if info {
                        l.sample(name, &[labels, text(&i.alias)], v, e.ts)?;
                    } else {
                        l.sample(name, &[labels], v, e.ts)?;
                    }
                }
            }
        }
    }
    l.flush()?;
    Ok(l.stats)
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*`, without `q=0`).
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

#[cfg(test)]
#[path = "devices_tests.rs"]
mod tests;
