//! What a webhook receives: one JSON document per alarm change, and its signature. Pure.

use crate::model::{Alarm, Event, ServerId, format_millis};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

/// The header carrying `sha256=<hex>` of the body, keyed with the webhook's secret.
pub(crate) const SIGNATURE_HEADER: &str = "x-emspool-signature";
/// The header carrying the delivery id (also in the body), for receivers that dedupe early.
pub(crate) const DELIVERY_HEADER: &str = "x-emspool-delivery";

#[derive(Debug, Serialize)]
pub(crate) struct Delivery<'a> {
    /// Unique per change in the pool and stable across re-sends: `server-incarnation-event`.
    pub(crate) id: String,
    /// `raise`, `clear` or `ack`.
    pub(crate) change: &'static str,
    pub(crate) at: String,
    pub(crate) at_ms: i64,
    pub(crate) server: ServerId,
    pub(crate) text: &'a str,
    pub(crate) alarm: &'a Alarm,
}

/// The change an event of the log stands for, if it is one a webhook receives.
pub(crate) fn change_of(kind: &str) -> Option<&'static str> {
    match kind {
        "alarm.raised" => Some("raise"),
        "alarm.cleared" => Some("clear"),
        "alarm.acked" => Some("ack"),
        _ => None,
    }
}

/// The delivery of `ev`, None for an event that is no alarm change.
pub(crate) fn delivery(ev: &Event, incarnation: u64) -> Option<Delivery<'_>> {
    let change = change_of(&ev.kind)?;
    let alarm = ev.alarm.as_deref()?;
    Some(Delivery {
        id: format!("{}-{incarnation}-{}", ev.server, ev.id),
        change,
        at: format_millis(ev.ts),
        at_ms: ev.ts,
        server: ev.server,
        text: &ev.text,
        alarm,
    })
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body).
pub(crate) fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut s = String::with_capacity(7 + tag.len() * 2);
    s.push_str("sha256=");
    for b in tag {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;

    fn event(kind: &str, with_alarm: bool) -> Event {
        let alarm = Alarm {
            id: 9,
            key: "NodeDown:r1".into(),
            kind: "NodeDown".into(),
            element: "r1".into(),
            instance: None,
            severity: Severity::Critical,
            text: "no answer".into(),
            first_seen: 1_000,
            last_seen: 1_000,
            count: 1,
            acked_by: None,
            acked_at: None,
            server: ServerId(2),
        };
        Event {
            id: 41,
            ts: 1_700_000_000_000,
            server: ServerId(2),
            element: Some("r1".into()),
            kind: kind.into(),
            severity: Severity::Critical,
            text: "NodeDown [NodeDown:r1]: no answer".into(),
            alarm: with_alarm.then(|| Box::new(alarm)),
        }
    }

    #[test]
    fn only_alarm_changes_are_delivered_with_a_stable_id() {
        let ev = event("alarm.raised", true);
        let d = delivery(&ev, 7).expect("a raise");
        assert_eq!(d.id, "2-7-41");
        assert_eq!(d.change, "raise");
        let v = serde_json::to_value(&d).expect("json");
        assert_eq!(v["alarm"]["key"], "NodeDown:r1");
        assert_eq!(v["at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(
            delivery(&event("alarm.cleared", true), 7).map(|d| d.change),
            Some("clear")
        );
        assert_eq!(
            delivery(&event("alarm.acked", true), 7).map(|d| d.change),
            Some("ack")
        );
        assert!(delivery(&event("element.state", true), 7).is_none());
        // Written before events carried their alarm: nothing to say.
        assert!(delivery(&event("alarm.raised", false), 7).is_none());
    }

    #[test]
    fn signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
