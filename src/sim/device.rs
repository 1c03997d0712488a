//! What makes one simulated device differ from the shared dataset: its name, its uptime, and the
//! flap and outage schedules. All of it is a pure function of (agent index, elapsed time), so
//! agents need no timers and no per-agent copies of the data.

use std::time::Duration;

use rasn::types::OctetString;
use rasn_snmp::v2::VarBindValue;

use super::respond::MibView;
use super::snmprec::{Dataset, Value, ticks_syntax, to_wire};

pub(crate) const SYS_UPTIME: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 3, 0];
pub(crate) const SYS_NAME: [u32; 9] = [1, 3, 6, 1, 2, 1, 1, 5, 0];
pub(crate) const IF_OPER_STATUS: [u32; 10] = [1, 3, 6, 1, 2, 1, 2, 2, 1, 8];
const OPER_DOWN: i32 = 2;
const IF_TABLE: [u32; 9] = [1, 3, 6, 1, 2, 1, 2, 2, 1];
const IFX_TABLE: [u32; 10] = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1];

/// How fast a counter of the dataset advances with traffic on, per second of uptime: the
/// interface tables' octets by 1-8 Mbit/s (in) and half that (out), varying with ifIndex and
/// agent so that graphs and top-N differ; unicast packets at 500 bytes each; errors and
/// discards by 1/s on every fourth interface; any other counter by 1/s.
pub(crate) fn traffic_rate(oid: &[u32], agent: usize) -> u64 {
    let (col, index) = match oid {
        [head @ .., col, index] if head == IF_TABLE => (Some((false, *col)), *index),
        [head @ .., col, index] if head == IFX_TABLE => (Some((true, *col)), *index),
        _ => (None, 0),
    };
    let k = 1 + (u64::from(index) + agent as u64) % 8;
    match col {
        Some((false, 10) | (true, 6)) => 125_000 * k,
        Some((false, 16) | (true, 10)) => 62_500 * k,
        Some((false, 11) | (true, 7)) => 250 * k,
        Some((false, 17) | (true, 11)) => 125 * k,
        Some((false, 13 | 14 | 19 | 20)) => u64::from(index % 4 == 0),
        _ => 1,
    }
}

/// Agents whose index is a multiple of `every` see ifOperStatus.`if_index` go down(2) for the
/// last `down_for` of every `period` (counted from simulator start), so a poller raises and then
/// clears a link alarm. All such agents flap in phase, which keeps tests predictable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapSchedule {
    pub every: usize,
    pub if_index: u32,
    pub period: Duration,
    pub down_for: Duration,
}

impl FlapSchedule {
    pub fn is_down(&self, agent: usize, elapsed: Duration) -> bool {
        agent % self.every == 0 && in_last(elapsed, self.period, self.down_for)
    }
}

/// Agents whose index is a multiple of `every` do not answer during the last `down_for` of every
/// `period`, then come back as if rebooted (sysUpTime restarts from zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutageSchedule {
    pub every: usize,
    pub period: Duration,
    pub down_for: Duration,
}

impl OutageSchedule {
    pub fn is_down(&self, agent: usize, elapsed: Duration) -> bool {
        self.affects(agent) && in_last(elapsed, self.period, self.down_for)
    }

    fn affects(&self, agent: usize) -> bool {
        agent % self.every == 0
    }

    /// snmpEngineBoots: 1, plus one per outage (reboot) completed.
    pub fn boots(&self, agent: usize, elapsed: Duration) -> u32 {
        if self.affects(agent) {
            let done = elapsed.as_millis() / self.period.as_millis().max(1);
            1 + u32::try_from(done).unwrap_or(u32::MAX - 1)
        } else {
            1
        }
    }

    /// Time since the agent last (re)started: outages end on period boundaries.
    pub fn uptime(&self, agent: usize, elapsed: Duration) -> Duration {
        if self.affects(agent) {
            rem(elapsed, self.period)
        } else {
            elapsed
        }
    }
}

/// Why a schedule is unusable.
pub(crate) fn check(
    name: &str,
    every: usize,
    period: Duration,
    down_for: Duration,
) -> Result<(), String> {
    if every == 0 {
        return Err(format!("{name}: 'every' must be at least 1 agent"));
    }
    if period.as_millis() == 0 || down_for.as_millis() == 0 || down_for >= period {
        return Err(format!(
            "{name}: need 0 < down_for ({down_for:?}) < period ({period:?}), in whole milliseconds"
        ));
    }
    Ok(())
}

fn rem(elapsed: Duration, period: Duration) -> Duration {
    let p = period.as_millis().max(1);
    Duration::from_millis((elapsed.as_millis() % p) as u64)
}

fn in_last(elapsed: Duration, period: Duration, down_for: Duration) -> bool {
    rem(elapsed, period) >= period.saturating_sub(down_for)
}

/// sysName of agent `index`, e.g. `sim00042`; in single-port mode it is also its community.
pub fn device_name(prefix: &str, index: usize) -> String {
    format!("{prefix}{index:05}")
}

/// The agent index a device name stands for, if it is one of `agents`.
pub fn device_index(prefix: &str, name: &[u8], agents: usize) -> Option<usize> {
    let digits = name.strip_prefix(prefix.as_bytes())?;
    if digits.len() < 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let index: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    // Reject aliases like sim000042 so each device has exactly one community.
    let width = index.checked_ilog10().map_or(1, |d| d as usize + 1).max(5);
    (index < agents && digits.len() == width).then_some(index)
}

/// Where the overridden objects sit in the dataset, found once for all agents.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Marks {
    sys_name: Option<usize>,
    sys_uptime: Option<usize>,
    flap_oper: Option<usize>,
}

impl Marks {
    pub(crate) fn find(data: &Dataset, flap: Option<&FlapSchedule>) -> Marks {
        let flap_oper = flap.and_then(|f| {
            let mut oid = IF_OPER_STATUS.to_vec();
            oid.push(f.if_index);
            data.find(&oid)
        });
        Marks {
            sys_name: data.find(&SYS_NAME),
            sys_uptime: data.find(&SYS_UPTIME),
            flap_oper,
        }
    }
}

/// One agent's view at one instant.
pub(crate) struct Device<'a> {
    pub data: &'a Dataset,
    pub marks: Marks,
    pub name_prefix: &'a str,
    pub index: usize,
    pub uptime: Duration,
    pub link_down: bool,
    /// Counters advance with uptime ([`traffic_rate`]); they restart with it, as a real
    /// agent's do after a reboot.
    pub traffic: bool,
}

impl MibView for Device<'_> {
    fn data(&self) -> &Dataset {
        self.data
    }

    fn value(&self, idx: usize) -> VarBindValue {
        let m = &self.marks;
        if m.sys_name == Some(idx) {
            let name = device_name(self.name_prefix, self.index);
            VarBindValue::Value(OctetString::from(name.into_bytes()).into())
        } else if m.sys_uptime == Some(idx) {
            // TimeTicks wrap after 497 days, like a real agent's.
            let ticks = (self.uptime.as_millis() / 10) as u32;
            VarBindValue::Value(ticks_syntax(ticks))
        } else if self.link_down && m.flap_oper == Some(idx) {
            VarBindValue::Value(OPER_DOWN.into())
        } else {
            let entry = &self.data.entries()[idx];
            // Counters wrap like an agent's: Counter32 modulo 2^32, Counter64 modulo 2^64.
            let moved = match (self.traffic, entry.value()) {
                (true, Value::Counter32(base)) => Some(Value::Counter32(
                    u64::from(*base).wrapping_add(self.grown(entry.oid())) as u32,
                )),
                (true, Value::Counter64(base)) => {
                    Some(Value::Counter64(base.wrapping_add(self.grown(entry.oid()))))
                }
                _ => None,
            };
            moved
                .as_ref()
                .and_then(to_wire)
                .unwrap_or_else(|| entry.wire().clone())
        }
    }
}

impl Device<'_> {
    /// How far a counter moved since the agent (re)started.
    fn grown(&self, oid: &[u32]) -> u64 {
        let ms = u64::try_from(self.uptime.as_millis()).unwrap_or(u64::MAX);
        traffic_rate(oid, self.index).wrapping_mul(ms) / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_advance_with_uptime_when_traffic_is_on() {
        let data = Dataset::router24().unwrap();
        let hc_in = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 3];
        let in32 = [1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 3];
        let at = |traffic: bool, secs: u64, oid: &[u32]| {
            let d = Device {
                data: &data,
                marks: Marks::find(&data, None),
                name_prefix: "sim",
                index: 0,
                uptime: Duration::from_secs(secs),
                link_down: false,
                traffic,
            };
            d.value(data.find(oid).unwrap())
        };
        let base = 10_000_000_000 + 3000;
        let rate = traffic_rate(&hc_in, 0);
        let want = |v| to_wire(&Value::Counter64(v)).unwrap();
        assert_eq!(at(true, 10, &hc_in), want(base + 10 * rate));
        assert_eq!(at(false, 10, &hc_in), want(base));
        // Counter32 wraps modulo 2^32.
        let secs = 10_000;
        let wrapped = (300_000 + secs * rate) % (1 << 32);
        assert_eq!(
            at(true, secs, &in32),
            to_wire(&Value::Counter32(wrapped as u32)).unwrap()
        );
    }

    #[test]
    fn traffic_rates_by_column() {
        let hc_in = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 3];
        assert_eq!(traffic_rate(&hc_in, 0), 125_000 * 4);
        let in32 = [1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 3];
        assert_eq!(traffic_rate(&in32, 0), traffic_rate(&hc_in, 0));
        assert_eq!(traffic_rate(&[1, 3, 6, 1, 2, 1, 2, 2, 1, 14, 4], 9), 1);
        assert_eq!(traffic_rate(&[1, 3, 6, 1, 2, 1, 2, 2, 1, 14, 3], 9), 0);
        assert_eq!(traffic_rate(&[1, 3, 6, 1, 4, 1, 9], 0), 1);
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn flap_is_down_in_last_part_of_each_period() {
        let f = FlapSchedule {
            every: 3,
            if_index: 1,
            period: 60 * S,
            down_for: 20 * S,
        };
        assert!(!f.is_down(0, Duration::ZERO));
        assert!(!f.is_down(0, 39 * S));
        assert!(f.is_down(0, 40 * S));
        assert!(f.is_down(3, 59 * S));
        assert!(!f.is_down(3, 60 * S));
        assert!(f.is_down(6, 100 * S));
        assert!(!f.is_down(1, 100 * S));
    }

    #[test]
    fn outage_restarts_uptime() {
        let o = OutageSchedule {
            every: 2,
            period: 100 * S,
            down_for: 10 * S,
        };
        assert!(o.is_down(2, 95 * S));
        assert!(!o.is_down(1, 95 * S));
        assert_eq!(o.uptime(2, 50 * S), 50 * S);
        assert_eq!(o.uptime(2, 105 * S), 5 * S);
        assert_eq!(o.uptime(1, 105 * S), 105 * S);
    }

    #[test]
    fn schedule_checks() {
        assert!(check("flap", 1, 60 * S, 10 * S).is_ok());
        assert!(check("flap", 0, 60 * S, 10 * S).is_err());
        assert!(check("flap", 1, 60 * S, 60 * S).is_err());
        assert!(check("flap", 1, 60 * S, Duration::ZERO).is_err());
    }

    #[test]
    fn names_roundtrip() {
        assert_eq!(device_name("sim", 42), "sim00042");
        assert_eq!(device_index("sim", b"sim00042", 100), Some(42));
        assert_eq!(device_index("sim", b"sim00042", 42), None);
        assert_eq!(device_index("sim", b"sim000042", 100), None);
        assert_eq!(device_index("sim", b"sim42", 100), None);
        assert_eq!(device_index("sim", b"public", 100), None);
        assert_eq!(device_index("sim", b"sim123456", 200_000), Some(123_456));
    }
}
