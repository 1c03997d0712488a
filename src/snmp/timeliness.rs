//! Replay protection for SNMPv3 traps (RFC 3414 3.2.7 b): the sender of a trap is the
//! authoritative engine, so the receiver keeps, per sending engine, the latest boots and time
//! it authenticated and refuses messages older than that notion by more than the window.
//! (For informs this server is authoritative and checks against its own clock, `usm`.)
//!
//! Pure bookkeeping over instants the caller passes in. Only engine ids of configured users
//! reach it (others fail before), so the map is as small as the configuration.

use std::collections::HashMap;
use std::time::Instant;

/// RFC 3414 3.2.7: seconds a message may lag behind the sender's clock as we know it.
pub(crate) const TIME_WINDOW: u32 = 150;
/// snmpEngineBoots latches here and the engine must get new keys (RFC 3414 2.2.2).
const MAX_BOOTS: u32 = 0x7fff_ffff;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Untimely {
    #[error("msgAuthoritativeEngineBoots/Time out of range")]
    OutOfRange,
    #[error("the engine's boots counter is latched at its maximum")]
    Latched,
    #[error("boots {got} is older than the engine's {have} (replayed from before a restart?)")]
    OldBoots { got: u32, have: u32 },
    #[error("engine time {got} s is more than 150 s behind the engine's {expected} s (replayed?)")]
    OldTime { got: u32, expected: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Notion {
    boots: u32,
    /// latestReceivedEngineTime, which is also the engine's time at `at`.
    time: u32,
    at: Instant,
}

/// What this receiver knows of each sending engine's clock.
#[derive(Debug, Default)]
pub(crate) struct EngineClocks {
    by_engine: HashMap<Vec<u8>, Notion>,
}

impl EngineClocks {
    /// An authenticated message from `engine` carried `boots` and `time`: learn from it
    /// (RFC 3414 3.2.7 b 1) and say whether it is within the time window (b 2).
    pub(crate) fn check(
        &mut self,
        engine: &[u8],
        boots: i64,
        time: i64,
        now: Instant,
    ) -> Result<(), Untimely> {
        let (Ok(boots), Ok(time)) = (u32::try_from(boots), u32::try_from(time)) else {
            return Err(Untimely::OutOfRange);
        };
        if boots > MAX_BOOTS || time > MAX_BOOTS {
            return Err(Untimely::OutOfRange);
        }
        let n = match self.by_engine.get_mut(engine) {
            Some(n) => n,
            None => {
                // First contact: nothing to compare with (a replay of an old message to a
                // receiver that just started is accepted once; RFC 3414 accepts that too).
                self.by_engine.insert(
                    engine.to_vec(),
                    Notion {
                        boots,
                        time,
                        at: now,
                    },
                );
                return if boots == MAX_BOOTS {
                    Err(Untimely::Latched)
                } else {
                    Ok(())
                };
            }
        };
        if boots > n.boots || (boots == n.boots && time > n.time) {
            *n = Notion {
                boots,
                time,
                at: now,
            };
        }
        if n.boots == MAX_BOOTS {
            return Err(Untimely::Latched);
        }
        if boots < n.boots {
            return Err(Untimely::OldBoots {
                got: boots,
                have: n.boots,
            });
        }
        let expected =
            u64::from(n.time).saturating_add(now.saturating_duration_since(n.at).as_secs());
        if u64::from(time).saturating_add(u64::from(TIME_WINDOW)) < expected {
            return Err(Untimely::OldTime {
                got: time,
                expected,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn newer_teaches_older_beyond_the_window_is_refused() {
        let mut c = EngineClocks::default();
        let t0 = Instant::now();
        let e = b"engine-a".as_slice();
        assert_eq!(c.check(e, 3, 1_000, t0), Ok(()));
        // Within the window behind, and a repeat: accepted (USM does not detect duplicates).
        assert_eq!(c.check(e, 3, 1_000 - 150, t0), Ok(()));
        assert_eq!(c.check(e, 3, 1_000, t0), Ok(()));
        assert_eq!(
            c.check(e, 3, 849, t0),
            Err(Untimely::OldTime {
                got: 849,
                expected: 1_000
            })
        );
        // Our estimate of its clock runs on: 200 s later, time 1,000 is stale.
        let later = t0 + Duration::from_secs(200);
        assert!(matches!(
            c.check(e, 3, 1_000, later),
            Err(Untimely::OldTime {
                expected: 1_200,
                ..
            })
        ));
        assert_eq!(c.check(e, 3, 1_190, later), Ok(()));
        // A restart of the sender: new boots, time from zero; the old boots are refused.
        assert_eq!(c.check(e, 4, 5, later), Ok(()));
        assert_eq!(
            c.check(e, 3, 1_195, later),
            Err(Untimely::OldBoots { got: 3, have: 4 })
        );
        // Another engine has a clock of its own.
        assert_eq!(c.check(b"engine-b", 1, 0, later), Ok(()));
    }

    #[test]
    fn out_of_range_and_latched_boots_are_refused() {
        let mut c = EngineClocks::default();
        let t0 = Instant::now();
        assert_eq!(c.check(b"e", -1, 0, t0), Err(Untimely::OutOfRange));
        assert_eq!(c.check(b"e", 1, i64::MAX, t0), Err(Untimely::OutOfRange));
        assert_eq!(c.check(b"e", 1, 10, t0), Ok(()));
        assert_eq!(
            c.check(b"e", i64::from(MAX_BOOTS), 10, t0),
            Err(Untimely::Latched)
        );
        assert_eq!(c.check(b"e", 1, 10, t0), Err(Untimely::Latched));
    }

    /// From datagrams: authPriv v3 traps of one engine, as the agent's clock advances and it
    /// restarts; a captured datagram sent again later is refused and counted under its reason.
    #[test]
    fn a_replayed_v3_trap_datagram_is_refused() {
        use crate::snmp::trap::{DecodeError, Decoder};
        use crate::snmp::usm::{InformUser, LocalEngine, encode_as_engine, int, oid, tlv};
        use std::net::{IpAddr, Ipv4Addr};

        let id = vec![0x80, 0, 0, 0, 1, 2, 3, 4];
        let u = crate::snmp::trap::fuzz_trap_user();
        let d = Decoder::new(&[], std::slice::from_ref(&u)).expect("decoder");
        let trap = |engine: &LocalEngine, msg_id: i64| {
            let vbs = [
                tlv(
                    0x30,
                    &[oid(&[1, 3, 6, 1, 2, 1, 1, 3, 0]), tlv(0x43, &[1])].concat(),
                ),
                tlv(
                    0x30,
                    &[
                        oid(&[1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0]),
                        oid(&[1, 3, 6, 1, 6, 3, 1, 1, 5, 1]),
                    ]
                    .concat(),
                ),
            ]
            .concat();
            let pdu = tlv(
                0xa7,
                &[int(msg_id), int(0), int(0), tlv(0x30, &vbs)].concat(),
            );
            let user = InformUser::new(&u, engine).expect("keys").expect("user");
            encode_as_engine(engine, &user, msg_id, pdu).expect("encode")
        };
        let src = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let captured = trap(&LocalEngine::new(id.clone(), 7), 1);
        assert!(d.decode(&captured, src, 1).is_ok());
        assert!(
            d.decode(&captured, src, 1).is_ok(),
            "a repeat within the window"
        );
        // 400 s later by the agent's clock.
        let later = trap(&LocalEngine::started_ago(id.clone(), 7, 400), 2);
        assert!(d.decode(&later, src, 1).is_ok());
        let e = d
            .decode(&captured, src, 1)
            .expect_err("a replay 400 s late");
        assert!(matches!(e, DecodeError::NotInTimeWindow { .. }), "{e:?}");
        assert_eq!(e.reason(), "not_in_time_window");
        // The agent restarted: a message of the previous boots is a replay whatever its time.
        assert!(
            d.decode(&trap(&LocalEngine::new(id.clone(), 8), 3), src, 1)
                .is_ok()
        );
        let e = d.decode(&later, src, 1).expect_err("boots 7 after boots 8");
        assert!(e.to_string().contains("boots 7"), "{e}");
    }
}
