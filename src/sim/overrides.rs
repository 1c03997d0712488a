//! What each simulated agent serves instead of the data file's value. A `--data` file recorded
//! from one device is shared by every agent, so a few objects are made per agent; the list is
//! logged once at start (and documented in `emspool simulate --help` and the README), so that
//! nobody takes the sysName they read for the recorded one.

use super::SimConfig;
use super::device::{IF_OPER_STATUS, SYS_NAME, SYS_UPTIME, device_name};
use super::snmprec::{Value, dotted};

/// One object (or behaviour) the simulator changes, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// `sysName.0 (1.3.6.1.2.1.1.5.0)`, or a class of objects.
    pub object: String,
    /// What is served instead.
    pub served: String,
    /// The data file's value it replaces, where there is one object.
    pub replaces: Option<String>,
}

/// What differs from the data file for `cfg`, in a stable order. Objects the data file lacks
/// are not added (a file without sysUpTime.0 serves none).
pub fn overrides(cfg: &SimConfig) -> Vec<Override> {
    let data = &cfg.data;
    let mut out = Vec::new();
    let last = cfg.agents.saturating_sub(1);
    if let Some(v) = data.get(&SYS_NAME) {
        let community = if cfg.single_port {
            " (also its community)"
        } else {
            ""
        };
        out.push(Override {
            object: format!("sysName.0 ({})", dotted(&SYS_NAME)),
            served: format!(
                "the agent's device name, {} .. {}{community}",
                device_name(&cfg.name_prefix, 0),
                device_name(&cfg.name_prefix, last)
            ),
            replaces: Some(show(v)),
        });
    }
    if let Some(v) = data.get(&SYS_UPTIME) {
        let since = if cfg.outage.is_some() {
            "the simulator started, or the agent's last simulated reboot (--outage-*)"
        } else {
            "the simulator started"
        };
        out.push(Override {
            object: format!("sysUpTime.0 ({})", dotted(&SYS_UPTIME)),
            served: format!("hundredths of a second since {since}"),
            replaces: Some(show(v)),
        });
    }
    if let Some(f) = &cfg.flap {
        let mut oid = IF_OPER_STATUS.to_vec();
        oid.push(f.if_index);
        let object = format!("ifOperStatus.{} ({})", f.if_index, dotted(&oid));
        let served = format!(
            "down(2) for the last {:?} of every {:?} on every {}th agent, else the file's value",
            f.down_for, f.period, f.every
        );
        out.push(match data.get(&oid) {
            Some(v) => Override {
                object,
                served,
                replaces: Some(show(v)),
            },
            None => Override {
                object,
                served: "nothing: the data file has no such object, so --flap-* changes nothing"
                    .into(),
                replaces: None,
            },
        });
    }
    if cfg.traffic {
        let counters = data
            .entries()
            .iter()
            .filter(|e| matches!(e.value(), Value::Counter32(_) | Value::Counter64(_)))
            .count();
        out.push(Override {
            object: format!("{counters} Counter32/Counter64 objects"),
            served: "the file's value plus what traffic added since the agent (re)started \
                     (--traffic), wrapping like an agent's"
                .into(),
            replaces: None,
        });
    }
    if let Some(o) = &cfg.outage {
        out.push(Override {
            object: "every object".into(),
            served: format!(
                "no answer for the last {:?} of every {:?} on every {}th agent (--outage-*)",
                o.down_for, o.period, o.every
            ),
            replaces: None,
        });
    }
    out
}

/// A value as a person reads it in the log.
fn show(v: &Value) -> String {
    match v {
        Value::OctetString(b) => format!("\"{}\"", b.escape_ascii()),
        Value::Integer(n) => n.to_string(),
        Value::TimeTicks(n) | Value::Counter32(n) | Value::Gauge32(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// Logs [`overrides`]: one line each, at info.
pub(crate) fn log(cfg: &SimConfig) {
    for o in overrides(cfg) {
        match &o.replaces {
            Some(was) => tracing::info!(
                "simulator overrides {}: serves {} instead of the data file's {was}",
                o.object,
                o.served
            ),
            None => tracing::info!("simulator overrides {}: {}", o.object, o.served),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Dataset, FlapSchedule};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn lists_what_the_file_has_and_the_options_change() {
        let data = Dataset::parse(
            "1.3.6.1.2.1.1.3.0|67|123\n1.3.6.1.2.1.1.5.0|4|core-rtr\n1.3.6.1.2.1.2.2.1.10.1|65|7\n",
        )
        .expect("parses");
        let mut cfg = SimConfig::new(Arc::new(data));
        cfg.agents = 3;
        let o = overrides(&cfg);
        assert_eq!(o.len(), 2, "{o:?}");
        assert_eq!(o[0].object, "sysName.0 (1.3.6.1.2.1.1.5.0)");
        assert!(o[0].served.contains("sim00000 .. sim00002"), "{o:?}");
        assert_eq!(o[0].replaces.as_deref(), Some("\"core-rtr\""));
        assert_eq!(o[1].replaces.as_deref(), Some("123"));

        cfg.traffic = true;
        cfg.flap = Some(FlapSchedule {
            every: 2,
            if_index: 9,
            period: Duration::from_secs(60),
            down_for: Duration::from_secs(10),
        });
        let o = overrides(&cfg);
        assert_eq!(o.len(), 4, "{o:?}");
        assert!(o[2].object.starts_with("ifOperStatus.9"), "{o:?}");
        assert!(o[2].served.contains("changes nothing"), "{o:?}");
        assert_eq!(o[3].object, "1 Counter32/Counter64 objects");
    }

    #[test]
    fn a_file_without_system_objects_gets_none() {
        let data = Dataset::parse("1.3.6.1.4.1.9.1|2|1\n").expect("parses");
        assert!(overrides(&SimConfig::new(Arc::new(data))).is_empty());
    }
}
