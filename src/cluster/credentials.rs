//! The pool's credential profiles: part of the inventory, so they take its path. A change
//! (API, peer, reloaded file) goes through the master's one writer and its journal, rides in
//! the next assignment (`Assignment::credentials`, the whole set in a `Delta` when it
//! changed, on the first `Chunk` of a snapshot) and is persisted by every member with the
//! assignment. The config file's `[credentials.NAME]` seed them, as `[[elements]]` seed the
//! inventory. Secrets travel only between members (pool secret, mutual TLS when configured);
//! errors and events name profiles, never their secrets.

use super::protocol::Credentials;
use super::{Cluster, ClusterError, InventoryChange};
use crate::config::Credential;
use crate::model::Element;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Applies a credential change to the master's pending inventory; the inverse, or `None` when
/// a replay found it done. A profile that elements still name cannot be removed: their polls
/// would fail on every member at once.
pub(crate) fn apply(
    elements: &BTreeMap<Arc<str>, Element>,
    credentials: &mut Credentials,
    change: &InventoryChange,
    replay: bool,
) -> Result<Option<InventoryChange>, ClusterError> {
    match change {
        InventoryChange::SetCredential { name, credential } => {
            validate(name, credential)?;
            let netconf = |e: &Element| e.protocol == crate::model::Protocol::Netconf;
            if let Some(e) = elements
                .values()
                .find(|e| *e.credential == **name && netconf(e) != credential.is_netconf())
            {
                return Err(ClusterError::Invalid(format!(
                    "credential profile {name:?} would change protocol under element {:?}",
                    e.name
                )));
            }
            match credentials.insert(name.clone(), credential.clone()) {
                Some(old) if old == *credential => Ok(None),
                Some(old) => Ok(Some(InventoryChange::SetCredential {
                    name: name.clone(),
                    credential: old,
                })),
                None => Ok(Some(InventoryChange::RemoveCredential(name.clone()))),
            }
        }
        InventoryChange::RemoveCredential(name) => {
            let users: Vec<&Arc<str>> = elements
                .values()
                .filter(|e| *e.credential == **name)
                .map(|e| &e.name)
                .collect();
            if let Some(first) = users.first() {
                return Err(ClusterError::CredentialInUse {
                    name: name.clone(),
                    count: users.len(),
                    example: first.to_string(),
                });
            }
            match credentials.remove(name) {
                Some(old) => Ok(Some(InventoryChange::SetCredential {
                    name: name.clone(),
                    credential: old,
                })),
                None if replay => Ok(None),
                None => Err(ClusterError::NoSuchCredential(name.clone())),
            }
        }
        _ => Ok(None),
    }
}

/// A profile as the file would accept it, under a name the API and the CLI can carry.
pub(crate) fn validate(name: &str, credential: &Credential) -> Result<(), ClusterError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ClusterError::Invalid(format!(
            "credential profile name {name:?}: 1-64 characters of letters, digits, '-', '_' or '.'"
        )));
    }
    crate::config::validate_credential(name, credential)
        .map_err(|(k, m)| ClusterError::Invalid(format!("{k}: {m}")))
}

impl Cluster {
    /// The config file's profiles (the pool's until an assignment holds some).
    pub(crate) fn seed_credentials(&self) -> Credentials {
        self.seed_credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The pool's profiles as this member holds them (its newest assignment; the file's
    /// before the pool held any).
    pub(crate) fn credentials(&self) -> Credentials {
        let held = self.lock().assignment.credentials.clone();
        held.unwrap_or_else(|| self.seed_credentials())
    }

    /// What a reloaded file changed in its `[credentials.*]`, as changes for the writer:
    /// profiles set (to go before the elements that use them) and removed (after).
    pub(crate) fn reload_credentials(
        &self,
        new: Credentials,
    ) -> (Vec<InventoryChange>, Vec<InventoryChange>) {
        let old = std::mem::replace(
            &mut *self
                .seed_credentials
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
            new.clone(),
        );
        if self.lock().assignment.credentials.is_none() {
            // The pool holds none yet: the file still decides here.
            self.poller.set_credentials(new.clone());
        }
        let set = new
            .iter()
            .filter(|(n, c)| old.get(*n) != Some(c))
            .map(|(n, c)| InventoryChange::SetCredential {
                name: n.clone(),
                credential: c.clone(),
            })
            .collect();
        let removed = old
            .keys()
            .filter(|n| !new.contains_key(*n))
            .map(|n| InventoryChange::RemoveCredential(n.clone()))
            .collect();
        (set, removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::model::Protocol;

    fn v2(c: &str) -> Credential {
        Credential::V2c {
            community: Secret::new(c),
        }
    }

    fn el(name: &str, credential: &str) -> Element {
        Element {
            name: name.into(),
            address: "127.0.0.1:161".into(),
            protocol: Protocol::Snmp,
            credential: credential.into(),
            interval: None,
            pin: None,
        }
    }

    #[test]
    fn set_replace_and_remove_give_their_inverse_and_in_use_is_refused() {
        let mut creds = Credentials::new();
        let mut elements = BTreeMap::new();
        let set = |c: &str| InventoryChange::SetCredential {
            name: "lab".into(),
            credential: v2(c),
        };
        assert_eq!(
            apply(&elements, &mut creds, &set("one"), false).expect("new"),
            Some(InventoryChange::RemoveCredential("lab".into()))
        );
        assert_eq!(
            apply(&elements, &mut creds, &set("one"), false).expect("same"),
            None
        );
        assert_eq!(
            apply(&elements, &mut creds, &set("two"), false).expect("replaced"),
            Some(set("one"))
        );
        elements.insert(Arc::from("r1"), el("r1", "lab"));
        let remove = InventoryChange::RemoveCredential("lab".into());
        let e = apply(&elements, &mut creds, &remove, false).expect_err("in use");
        assert!(
            matches!(e, ClusterError::CredentialInUse { count: 1, .. }),
            "{e}"
        );
        assert!(creds.contains_key("lab"));
        elements.clear();
        assert_eq!(
            apply(&elements, &mut creds, &remove, false).expect("removed"),
            Some(set("two"))
        );
        assert!(matches!(
            apply(&elements, &mut creds, &remove, false),
            Err(ClusterError::NoSuchCredential(_))
        ));
        assert_eq!(
            apply(&elements, &mut creds, &remove, true).expect("replay"),
            None
        );
    }

    #[test]
    fn refusals_never_carry_the_secret() {
        let mut creds = Credentials::new();
        let short = Credential::V3 {
            user: "u".into(),
            auth_protocol: Some(crate::config::AuthProtocol::Sha),
            auth_password: Some(Secret::new("s3cr")),
            priv_protocol: None,
            priv_password: None,
        };
        for (name, c) in [("bad name!", v2("s3cr-community")), ("ok", short)] {
            let change = InventoryChange::SetCredential {
                name: name.into(),
                credential: c,
            };
            let e = apply(&BTreeMap::new(), &mut creds, &change, false).expect_err("invalid");
            let text = format!("{e} {e:?}");
            assert!(!text.contains("s3cr"), "{text}");
        }
        assert!(creds.is_empty());
    }

    #[test]
    fn a_profile_cannot_switch_protocol_under_its_elements() {
        let mut creds = Credentials::new();
        creds.insert("lab".into(), v2("public"));
        let elements: BTreeMap<Arc<str>, Element> =
            [(Arc::from("r1"), el("r1", "lab"))].into_iter().collect();
        let nc = Credential::Netconf(crate::config::NetconfCredential {
            user: "admin".into(),
            password: Some(Secret::new("password1")),
            private_key: None,
            private_key_passphrase: None,
            known_hosts: None,
            host_key_sha256: None,
            insecure_accept_any_host_key: true,
        });
        let change = InventoryChange::SetCredential {
            name: "lab".into(),
            credential: nc,
        };
        assert!(matches!(
            apply(&elements, &mut creds, &change, false),
            Err(ClusterError::Invalid(_))
        ));
        assert_eq!(creds["lab"], v2("public"));
    }
}
