//! NETCONF glue of the poller: what the NETCONF client asks of it (credentials) and what a
//! notification does to an owned element.

use super::Poller;
use crate::config::Credential;
use crate::netconf::Host;
use crate::netconf::xml::Notification;

impl Host for Poller {
    fn credential(&self, name: &str) -> Option<Credential> {
        let creds = self.credentials.read().unwrap_or_else(|p| p.into_inner());
        creds.get(name).cloned()
    }

    fn notified(&self, element: &str, n: &Notification, own: &dyn Fn(u32) -> bool) {
        // Under the status lock, like poll results: an element handed over meanwhile is left
        // alone.
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        let Some((_, st)) = status.get_mut(element) else {
            return;
        };
        if !self.lease.may_act() {
            return;
        }
        let changes = crate::rules::netconf::interpret(n, own, &mut st.interfaces);
        self.alarms.apply(element, changes);
    }
}
