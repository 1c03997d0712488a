//! The one vocabulary of alarm changes. Polling, traps and NETCONF notifications all turn
//! what they saw into [`Change`]s with pure functions (`crate::rules`), and
//! [`AlarmTable::apply`](super::AlarmTable::apply) is the one place that applies them to the
//! alarm table and the event log.

use crate::model::{Severity, UnixMillis};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Names are `'static` for the rules' own kinds and owned for kinds a device chose (an
/// ietf-alarms type), so a poll that clears nothing allocates nothing for its name.
pub(crate) type Name = Cow<'static, str>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum Change {
    /// The condition `kind` on `instance` of the element holds (new, or a repeat).
    Raise {
        kind: Name,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        severity: Severity,
        text: String,
        /// When the condition began, if not now (a linkDown held back by the flap window).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<UnixMillis>,
    },
    /// The condition ended; `why` goes into the `alarm.cleared` event.
    Clear {
        kind: Name,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        why: Name,
    },
    /// Something worth an event but no alarm (a state change, a flap, a config change).
    Event {
        kind: Name,
        severity: Severity,
        text: String,
    },
}

impl Change {
    pub(crate) fn raise(
        kind: impl Into<Name>,
        instance: Option<String>,
        severity: Severity,
        text: String,
    ) -> Change {
        Change::Raise {
            kind: kind.into(),
            instance,
            severity,
            text,
            at: None,
        }
    }

    pub(crate) fn clear(
        kind: impl Into<Name>,
        instance: Option<String>,
        why: impl Into<Name>,
    ) -> Change {
        Change::Clear {
            kind: kind.into(),
            instance,
            why: why.into(),
        }
    }

    pub(crate) fn event(kind: impl Into<Name>, severity: Severity, text: String) -> Change {
        Change::Event {
            kind: kind.into(),
            severity,
            text,
        }
    }

    /// A raise whose condition began at `at` rather than when it is applied.
    pub(crate) fn at(mut self, when: UnixMillis) -> Change {
        if let Change::Raise { at, .. } = &mut self {
            *at = Some(when);
        }
        self
    }
}
