//! NETCONF glue of the poller: what the NETCONF client asks of it (credentials) and what a
//! notification does to an owned element.

use super::Poller;
use crate::alarms::Raise;
use crate::config::Credential;
use crate::model::{NewEvent, Severity};
use crate::netconf::Host;
use crate::netconf::notify::Action;
use crate::rules::poll::LINK_DOWN;

impl Host for Poller {
    fn credential(&self, name: &str) -> Option<Credential> {
        let creds = self.credentials.read().unwrap_or_else(|p| p.into_inner());
        creds.get(name).cloned()
    }

    fn notified(&self, element: &str, actions: Vec<Action>) {
        // Under the status lock, like poll results: an element handed over meanwhile is left
        // alone.
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        let Some((_, st)) = status.get_mut(element) else {
            return;
        };
        for a in actions {
            match a {
                Action::Event {
                    kind,
                    severity,
                    text,
                } => self
                    .events
                    .append(NewEvent::now(Some(element), kind, severity, text)),
                Action::RaiseAlarm {
                    kind,
                    instance,
                    severity,
                    text,
                } => {
                    self.alarms.raise(Raise {
                        kind,
                        element: element.to_owned(),
                        instance,
                        severity,
                        text,
                    });
                }
                Action::ClearAlarm { kind, instance } => {
                    self.alarms.clear(
                        &kind,
                        element,
                        instance.as_deref(),
                        "cleared by the element",
                    );
                }
                Action::Link {
                    interface,
                    up,
                    text,
                } => {
                    // Only interfaces the poller knows: the next poll must be able to clear
                    // what a notification raised, and it keys LinkDown by index.
                    let Some(i) = st.interfaces.iter_mut().find(|i| i.is_called(&interface)) else {
                        continue;
                    };
                    let instance = Some(i.index.to_string());
                    if up {
                        i.oper_status = 1;
                        self.alarms
                            .clear(LINK_DOWN, element, instance.as_deref(), &text);
                    } else {
                        i.oper_status = 2;
                        if i.admin_status == 1 {
                            self.alarms.raise(Raise {
                                kind: LINK_DOWN.to_owned(),
                                element: element.to_owned(),
                                instance,
                                severity: Severity::Major,
                                text: format!(
                                    "interface {} ({}) is down while enabled (notification)",
                                    i.index,
                                    i.descr()
                                ),
                            });
                        }
                    }
                }
            }
        }
    }
}
