//! Turns one poll result into the element's new status and the alarm changes it implies.
//!
//! Pure: previous status + outcome -> new status + alarm changes, so every rule is unit-tested
//! without agents or clocks.

use super::link;
use crate::alarms::Change;
use crate::model::{ElementState, ElementStatus, Interface, Outcome, Severity, UnixMillis};

pub(crate) const NODE_DOWN: &str = "NodeDown";
pub(crate) const REBOOT: &str = "Reboot";
/// The element refused our credentials; clears at the next poll that gets past them.
pub(crate) const CREDENTIAL_REJECTED: &str = "CredentialRejected";
/// The event of a state change (up, down, unknown).
pub(crate) const ELEMENT_STATE: &str = "element.state";
const CONDITION_ENDED: &str = "condition ended";
/// Alarm kinds an answered poll repeats every time while their condition holds: an
/// answered poll that does not repeat one has seen its condition end (the new owner of an
/// element whose owner died clears them after its first answer, `AlarmTable::settle`).
/// NodeDown is not among them: an answer clears it by itself.
pub(crate) const REPEATED_BY_EVERY_ANSWER: &[&str] = &[link::LINK_DOWN];
/// Why `REPEATED_BY_EVERY_ANSWER` alarms continued from a dead owner clear.
pub(crate) const ENDED_WHILE_OWNER_DOWN: &str = "condition ended while the owner was down";

/// sysUpTime wraps after ~497 days; a drop from this close to the top is a wrap, not a reboot.
const UPTIME_WRAP_MARGIN: u32 = 360_000;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// A Reboot alarm clears once sysUpTime passes this many hundredths of a second.
    pub(crate) reboot_clear_ticks: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            reboot_clear_ticks: 10 * 60 * 100,
        }
    }
}

pub(crate) fn evaluate(
    prev: &ElementStatus,
    outcome: Outcome,
    now: UnixMillis,
    duration_ms: u64,
    rules: &Rules,
) -> (ElementStatus, Vec<Change>) {
    let mut effects = Vec::new();
    let mut next = ElementStatus {
        last_poll: Some(now),
        last_duration_ms: Some(duration_ms),
        ..prev.clone()
    };
    match outcome {
        Outcome::Answered(mut data) => {
            next.state = ElementState::Up;
            next.reason = None;
            effects.push(Change::clear(NODE_DOWN, None, CONDITION_ENDED));
            // Only a poll after one that did not answer can end a refusal: an element up
            // since its last poll has cleared it then (also one continued from a dead owner,
            // whose status starts unknown).
            if prev.state != ElementState::Up {
                effects.push(Change::clear(
                    CREDENTIAL_REJECTED,
                    None,
                    "the element accepted our credentials",
                ));
            }
            match data.boot_time {
                Some(boot) => boot_effects(
                    prev.boot_time,
                    boot,
                    data.sys_uptime,
                    now,
                    rules,
                    &mut effects,
                ),
                None => uptime_effects(prev.sys_uptime, data.sys_uptime, rules, &mut effects),
            }
            link_effects(&prev.interfaces, &data.interfaces, &mut effects);
            next.sys_uptime = data.sys_uptime;
            next.boot_time = data.boot_time;
            next.capabilities = data.capabilities;
            next.sys_name = data.sys_name;
            next.sys_descr = data.sys_descr;
            let restarted = effects
                .iter()
                .any(|e| matches!(e, Change::Raise { kind, .. } if kind == REBOOT));
            crate::model::interface::carry_wraps(&prev.interfaces, &mut data.interfaces, restarted);
            next.interfaces = data.interfaces;
        }
        Outcome::Unreachable(why) => {
            next.state = ElementState::Down;
            effects.push(Change::raise(
                NODE_DOWN,
                None,
                Severity::Critical,
                format!("element does not answer: {why}"),
            ));
            next.reason = Some(why);
        }
        Outcome::Failed(why) => {
            next.state = ElementState::Unknown;
            next.reason = Some(why);
        }
        Outcome::Rejected(why) => {
            // Unknown, not down: it answered. Whatever else was raised stays as it was, since
            // nothing was learnt about it.
            next.state = ElementState::Unknown;
            effects.push(Change::raise(
                CREDENTIAL_REJECTED,
                None,
                Severity::Major,
                format!("the element refused our credentials: {why}"),
            ));
            next.reason = Some(why);
        }
    }
    if prev.state != next.state
        || (next.state == ElementState::Unknown && prev.reason != next.reason)
    {
        let text = match &next.reason {
            Some(r) if prev.state == next.state => format!("still {}: {r}", next.state),
            Some(r) => format!("{} -> {}: {r}", prev.state, next.state),
            None => format!("{} -> {}", prev.state, next.state),
        };
        let severity = match next.state {
            ElementState::Up => Severity::Info,
            ElementState::Down => Severity::Critical,
            ElementState::Unknown => Severity::Warning,
        };
        effects.push(Change::event(ELEMENT_STATE, severity, text));
    }
    (next, effects)
}

fn uptime_effects(prev: Option<u32>, now: Option<u32>, rules: &Rules, out: &mut Vec<Change>) {
    let Some(now) = now else { return };
    if let Some(prev) = prev
        && now < prev
        && prev < u32::MAX - UPTIME_WRAP_MARGIN
    {
        out.push(Change::raise(
            REBOOT,
            None,
            Severity::Warning,
            format!(
                "sysUpTime went back from {} to {}: the element restarted",
                ticks(prev),
                ticks(now)
            ),
        ));
    } else if now >= rules.reboot_clear_ticks {
        out.push(Change::clear(REBOOT, None, CONDITION_ENDED));
    }
}

/// Boot times by the element's clock may wobble by a second (devices that derive them from
/// an uptime counter round); a move forward by more than this is a restart.
const BOOT_TIME_JITTER_MS: UnixMillis = 1_000;

/// Reboot detection from a boot time (NETCONF ietf-system `boot-datetime`): a boot time
/// that moves forward means the element restarted; the alarm clears after
/// `reboot_clear_ticks` of uptime (by the element's clock, else ours).
fn boot_effects(
    prev: Option<UnixMillis>,
    boot: UnixMillis,
    uptime: Option<u32>,
    now: UnixMillis,
    rules: &Rules,
    out: &mut Vec<Change>,
) {
    if let Some(prev) = prev
        && boot > prev + BOOT_TIME_JITTER_MS
    {
        out.push(Change::raise(
            REBOOT,
            None,
            Severity::Warning,
            format!(
                "boot time moved from {} to {}: the element restarted",
                crate::model::format_millis(prev),
                crate::model::format_millis(boot)
            ),
        ));
        return;
    }
    let up_ticks = uptime
        .map(u64::from)
        .unwrap_or_else(|| ((now - boot).max(0) / 10) as u64);
    if up_ticks >= u64::from(rules.reboot_clear_ticks) {
        out.push(Change::clear(REBOOT, None, CONDITION_ENDED));
    }
}

fn ticks(t: u32) -> String {
    humantime::format_duration(std::time::Duration::from_secs(u64::from(t / 100))).to_string()
}

fn link_effects(prev: &[Interface], now: &[Interface], out: &mut Vec<Change>) {
    for i in now {
        if link::is_down(i) {
            out.push(link::down(link::instance(i.index), link::down_text(i, "")));
        } else if prev.iter().any(|p| p.index == i.index && link::is_down(p)) {
            out.push(link::up(link::instance(i.index), CONDITION_ENDED));
        }
    }
    // An interface that vanished (module removed) cannot stay in alarm.
    for p in prev.iter().filter(|p| link::is_down(p)) {
        if !now.iter().any(|i| i.index == p.index) {
            out.push(link::up(link::instance(p.index), CONDITION_ENDED));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PollData;
    use crate::rules::link::LINK_DOWN;

    fn iface(index: u32, admin: u8, oper: u8) -> Interface {
        Interface::new(index, &format!("if{index}"), None).with_status(admin, oper)
    }

    fn answered(uptime: u32, ifs: Vec<Interface>) -> Outcome {
        Outcome::Answered(PollData {
            sys_uptime: Some(uptime),
            interfaces: ifs,
            ..PollData::default()
        })
    }

    fn raised(effects: &[Change], kind: &str) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Change::Raise { kind: k, .. } if k == kind))
            .count()
    }

    fn cleared(effects: &[Change], kind: &str) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Change::Clear { kind: k, .. } if k == kind))
            .count()
    }

    #[test]
    fn down_then_up_raises_and_clears_node_down_with_state_events() {
        let r = Rules::default();
        let (up, e) = evaluate(&ElementStatus::default(), answered(500, vec![]), 1, 5, &r);
        assert_eq!(up.state, ElementState::Up);
        assert!(matches!(
            e.last(),
            Some(Change::Event { kind, text, .. }) if kind == ELEMENT_STATE && text.ends_with("-> up")
        ));
        let (down, e) = evaluate(&up, Outcome::Unreachable("timeout".into()), 2, 5, &r);
        assert_eq!(down.state, ElementState::Down);
        assert_eq!(raised(&e, NODE_DOWN), 1);
        assert_eq!(down.sys_uptime, Some(500), "last known data is kept");
        let (_, e) = evaluate(&down, answered(600, vec![]), 3, 5, &r);
        assert_eq!(cleared(&e, NODE_DOWN), 1);
        assert!(e.iter().any(|x| matches!(
            x,
            Change::Event { kind, text, .. } if kind == ELEMENT_STATE && text.starts_with("down -> ")
        )));
    }

    #[test]
    fn link_down_only_when_admin_up_and_clears_when_oper_up_or_gone() {
        let r = Rules::default();
        let prev = ElementStatus::default();
        let ifs = vec![iface(1, 1, 1), iface(2, 1, 2), iface(3, 2, 2)];
        let (s, e) = evaluate(&prev, answered(100, ifs), 1, 1, &r);
        assert_eq!(raised(&e, LINK_DOWN), 1);
        let (s2, e) = evaluate(
            &s,
            answered(200, vec![iface(1, 1, 1), iface(2, 1, 1)]),
            2,
            1,
            &r,
        );
        assert_eq!(raised(&e, LINK_DOWN), 0);
        assert_eq!(cleared(&e, LINK_DOWN), 1);
        let (s3, _) = evaluate(&s2, answered(300, vec![iface(2, 1, 2)]), 3, 1, &r);
        let (_, e) = evaluate(&s3, answered(400, vec![]), 4, 1, &r);
        assert_eq!(cleared(&e, LINK_DOWN), 1, "vanished interface clears");
    }

    #[test]
    fn uptime_going_back_is_a_reboot_but_a_wrap_is_not() {
        let r = Rules::default();
        let (s, _) = evaluate(
            &ElementStatus::default(),
            answered(90_000, vec![]),
            1,
            1,
            &r,
        );
        let (s, e) = evaluate(&s, answered(10, vec![]), 2, 1, &r);
        assert_eq!(raised(&e, REBOOT), 1);
        let (_, e) = evaluate(&s, answered(r.reboot_clear_ticks, vec![]), 3, 1, &r);
        assert_eq!(cleared(&e, REBOOT), 1);
        let near_top = ElementStatus {
            sys_uptime: Some(u32::MAX - 10),
            state: ElementState::Up,
            ..ElementStatus::default()
        };
        let (_, e) = evaluate(&near_top, answered(5, vec![]), 4, 1, &r);
        assert_eq!(raised(&e, REBOOT), 0);
    }

    fn booted(boot: UnixMillis, uptime: Option<u32>) -> Outcome {
        Outcome::Answered(PollData {
            sys_uptime: uptime,
            boot_time: Some(boot),
            ..PollData::default()
        })
    }

    #[test]
    fn boot_time_moving_forward_is_a_reboot_and_wobble_is_not() {
        let r = Rules::default();
        let t0 = 1_700_000_000_000;
        let (s, e) = evaluate(
            &ElementStatus::default(),
            booted(t0, Some(500)),
            t0 + 5_000,
            1,
            &r,
        );
        assert_eq!(raised(&e, REBOOT), 0);
        assert_eq!(s.boot_time, Some(t0));
        // Rounded by the device: one second later is the same boot.
        let (s, e) = evaluate(&s, booted(t0 + 1_000, Some(600)), t0 + 6_000, 1, &r);
        assert_eq!(raised(&e, REBOOT), 0);
        // Uptime went *up* past the old value, but the boot time moved: still a reboot
        // (sysUpTime alone would miss this).
        let (s, e) = evaluate(&s, booted(t0 + 60_000, Some(90_000)), t0 + 70_000, 1, &r);
        assert_eq!(raised(&e, REBOOT), 1);
        let (_, e) = evaluate(
            &s,
            booted(t0 + 60_000, Some(r.reboot_clear_ticks)),
            t0 + 700_000,
            1,
            &r,
        );
        assert_eq!(cleared(&e, REBOOT), 1);
        // Without the device's current time, our clock measures the uptime.
        let (_, e) = evaluate(&s, booted(t0 + 60_000, None), t0 + 60_000 + 600_000, 1, &r);
        assert_eq!(cleared(&e, REBOOT), 1);
    }

    #[test]
    fn own_failure_is_unknown_with_reason_and_no_node_down() {
        let r = Rules::default();
        let (s, e) = evaluate(
            &ElementStatus::default(),
            Outcome::Failed("authentication failed".into()),
            1,
            1,
            &r,
        );
        assert_eq!(s.state, ElementState::Unknown);
        assert_eq!(s.reason.as_deref(), Some("authentication failed"));
        assert_eq!(raised(&e, NODE_DOWN), 0);
        assert_eq!(e.len(), 1, "reason change from none is an event: {e:?}");
        assert_eq!(
            raised(&e, CREDENTIAL_REJECTED),
            0,
            "a resolver error is not a refusal"
        );
    }

    #[test]
    fn refused_credentials_raise_credential_rejected_until_an_answer_clears_it() {
        let r = Rules::default();
        let (up, _) = evaluate(&ElementStatus::default(), answered(500, vec![]), 1, 5, &r);
        let why = "SNMPv3 authentication failed: WrongDigests";
        let (s, e) = evaluate(&up, Outcome::Rejected(why.into()), 2, 5, &r);
        assert_eq!(s.state, ElementState::Unknown);
        assert_eq!(s.reason.as_deref(), Some(why));
        assert_eq!(raised(&e, CREDENTIAL_REJECTED), 1);
        assert_eq!(raised(&e, NODE_DOWN), 0, "it answered: not down");
        assert_eq!(
            cleared(&e, NODE_DOWN),
            0,
            "nothing learnt about reachability"
        );
        assert!(e.iter().any(|x| matches!(
            x,
            Change::Raise { kind, severity: Severity::Major, text, .. }
                if kind == CREDENTIAL_REJECTED && text.contains("WrongDigests")
        )));
        // Still refused: raised again (a repeat in the table), the state event only once.
        let (s, e) = evaluate(&s, Outcome::Rejected(why.into()), 3, 5, &r);
        assert_eq!(raised(&e, CREDENTIAL_REJECTED), 1);
        assert!(
            !e.iter().any(|x| matches!(x, Change::Event { .. })),
            "{e:?}"
        );
        // Unreachable meanwhile: the refusal is not cleared by a timeout.
        let (s, e) = evaluate(&s, Outcome::Unreachable("timeout".into()), 4, 5, &r);
        assert_eq!(cleared(&e, CREDENTIAL_REJECTED), 0);
        let (up, e) = evaluate(&s, answered(900, vec![]), 5, 5, &r);
        assert_eq!(up.state, ElementState::Up);
        assert_eq!(cleared(&e, CREDENTIAL_REJECTED), 1);
        // Up since the last poll: nothing left to clear.
        let (_, e) = evaluate(&up, answered(1000, vec![]), 6, 5, &r);
        assert_eq!(cleared(&e, CREDENTIAL_REJECTED), 0);
        // The first poll of an element continued from a dead owner (status unknown) clears.
        let (_, e) = evaluate(&ElementStatus::default(), answered(1, vec![]), 7, 5, &r);
        assert_eq!(cleared(&e, CREDENTIAL_REJECTED), 1);
    }
}
