//! The LinkDown rule, once for every source: an enabled interface that is down is a major
//! alarm keyed by its ifIndex, whether a poll, a linkDown trap or a NETCONF notification
//! says so; the next poll can then clear what a trap or a notification raised.

use crate::alarms::{Change, Name};
use crate::model::{Interface, Severity};

pub(crate) const LINK_DOWN: &str = "LinkDown";

/// Admin up and oper down: the only combination that is a fault.
pub(crate) fn is_down(i: &Interface) -> bool {
    i.admin_status == 1 && i.oper_status == 2
}

/// The alarm's instance: the interface's ifIndex.
pub(crate) fn instance(index: u32) -> Option<String> {
    Some(index.to_string())
}

/// Raises LinkDown on `instance` (an ifIndex, or None when the source did not name one).
pub(crate) fn down(instance: Option<String>, text: String) -> Change {
    Change::raise(LINK_DOWN, instance, Severity::Major, text)
}

/// Clears LinkDown on `instance`.
pub(crate) fn up(instance: Option<String>, why: impl Into<Name>) -> Change {
    Change::clear(LINK_DOWN, instance, why)
}

/// The text of a LinkDown seen on the interface table; `how` names a source other than a poll.
pub(crate) fn down_text(i: &Interface, how: &str) -> String {
    format!(
        "interface {} ({}) is down while enabled{how}",
        i.index,
        i.descr()
    )
}
