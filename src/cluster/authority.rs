//! Who may tell this member what. Every peer request has an authenticated sender (the member
//! id of its mutual-TLS certificate, or in a clear-text lab pool the `x-emspool-from` header
//! behind the pool secret); these checks bind what a message claims to that sender:
//! - heartbeats and election messages name their sender, which must be the authenticated one;
//! - terms stay in range and do not jump further ahead than `[pool] max_term_jump` rounds;
//! - a push or a release is obeyed only from the member this server follows as master of
//!   exactly that term (the term carries its claimant's id);
//! - an inventory change from a peer passes the public API's validation.
//!
//! Everything refused is counted (`emspool_peer_refused_total{reason}`) and logged once per
//! peer per minute.

use super::delta::{Chunk, Push};
use super::election::{self, MAX_TERM, Message, TermRefusal};
use super::protocol::{Heartbeat, Release};
use super::{Cluster, ClusterError, InventoryChange};
use crate::model::ServerId;
use crate::ratelog::RateLog;
use std::time::Duration;

/// Why a peer request was refused: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Reason {
    /// Mutual TLS is on and the connection showed no pool certificate naming a member.
    NoCertificate,
    /// The request claims a sender other than the authenticated one (or this server).
    Impersonation,
    /// The sender is not a configured member.
    NotMember,
    /// A term beyond `MAX_TERM`.
    TermRange,
    /// A term too many election rounds ahead.
    TermJump,
    /// A push or release from a member that is not master of that term here.
    NotMaster,
    /// A peer's inventory change the public API would refuse.
    Invalid,
}

impl Reason {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reason::NoCertificate => "no_certificate",
            Reason::Impersonation => "impersonation",
            Reason::NotMember => "not_member",
            Reason::TermRange => "term_range",
            Reason::TermJump => "term_jump",
            Reason::NotMaster => "not_master",
            Reason::Invalid => "invalid",
        }
    }

    const ALL: [Reason; 7] = [
        Reason::NoCertificate,
        Reason::Impersonation,
        Reason::NotMember,
        Reason::TermRange,
        Reason::TermJump,
        Reason::NotMaster,
        Reason::Invalid,
    ];
}

/// Counters and the once-a-minute log of refusals.
pub(crate) struct Authority {
    counter: prometheus::IntCounterVec,
    log: RateLog<Option<ServerId>>,
    pub(crate) max_jump: u64,
    /// `[pool] ca` is set: the sender of a peer request is its certificate's member id.
    pub(crate) mutual_tls: bool,
}

impl Authority {
    pub(crate) fn new(
        registry: &prometheus::Registry,
        max_jump: u64,
        mutual_tls: bool,
    ) -> Authority {
        let counter = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "emspool_peer_refused_total",
                "Peer requests refused by the authority checks, by reason.",
            ),
            &["reason"],
        )
        .unwrap_or_else(|e| unreachable!("valid metric definition: {e}"));
        // A second registration (a second server in one process, in benchmarks) keeps
        // counting in its own counter; only the first is scraped.
        let _ = registry.register(Box::new(counter.clone()));
        for r in Reason::ALL {
            counter.with_label_values(&[r.label()]);
        }
        Authority {
            counter,
            log: RateLog::new(Duration::from_secs(60)),
            max_jump,
            mutual_tls,
        }
    }

    /// Counts and (rate-limited) logs a refusal; returns the error to answer with.
    pub(crate) fn refuse(
        &self,
        peer: Option<ServerId>,
        reason: Reason,
        detail: String,
    ) -> ClusterError {
        self.counter.with_label_values(&[reason.label()]).inc();
        if let Some(skipped) = self.log.admit(&peer) {
            let who = peer.map_or_else(
                || "an unidentified peer".to_owned(),
                |p| format!("server {p}"),
            );
            tracing::warn!(
                "refused a request from {who}: {detail} ({} more refused from it in the last minute)",
                skipped
            );
        }
        ClusterError::Refused { reason, detail }
    }

    #[cfg(test)]
    pub(crate) fn count(&self, reason: Reason) -> u64 {
        self.counter.with_label_values(&[reason.label()]).get()
    }
}

impl Cluster {
    /// The authenticated sender of a peer request: a configured member other than us.
    pub(crate) fn authorize_sender(
        &self,
        sender: Option<ServerId>,
    ) -> Result<ServerId, ClusterError> {
        let r = &self.authority;
        let Some(from) = sender else {
            return Err(r.refuse(None, Reason::NoCertificate, "no member identity".into()));
        };
        if from == self.me {
            return Err(r.refuse(
                Some(from),
                Reason::Impersonation,
                format!("claims to be this server ({from})"),
            ));
        }
        if !self.members.iter().any(|m| m.id == from.0) {
            return Err(r.refuse(
                Some(from),
                Reason::NotMember,
                format!("{from} is not a pool member"),
            ));
        }
        Ok(from)
    }

    /// A term a peer sent may be taken (range and jump bound against ours).
    pub(crate) fn authorize_term(&self, from: ServerId, term: u64) -> Result<(), ClusterError> {
        let have = self.lock().term;
        election::check_term(have, term, self.authority.max_jump).map_err(|e| {
            let reason = match e {
                TermRefusal::OutOfRange(_) => Reason::TermRange,
                TermRefusal::Jump { .. } => Reason::TermJump,
            };
            self.authority.refuse(Some(from), reason, e.to_string())
        })
    }

    fn same_sender(
        &self,
        from: ServerId,
        claimed: ServerId,
        what: &str,
    ) -> Result<(), ClusterError> {
        if claimed != from {
            return Err(self.authority.refuse(
                Some(from),
                Reason::Impersonation,
                format!("{what} claims to come from {claimed}"),
            ));
        }
        Ok(())
    }

    pub(crate) fn authorize_heartbeat(
        &self,
        from: ServerId,
        hb: &Heartbeat,
    ) -> Result<(), ClusterError> {
        self.same_sender(from, hb.from, "a heartbeat")?;
        self.authorize_term(from, hb.term)?;
        // The assignment ids a heartbeat reports steer a new master's catch-up: bounded too.
        for t in [hb.applied.term, hb.known.term] {
            if t > MAX_TERM {
                return Err(self.authority.refuse(
                    Some(from),
                    Reason::TermRange,
                    format!("a heartbeat reports assignment term {t}"),
                ));
            }
            self.authorize_term(from, t)?;
        }
        Ok(())
    }

    pub(crate) fn authorize_election(
        &self,
        from: ServerId,
        claimed: ServerId,
        msg: &Message,
    ) -> Result<(), ClusterError> {
        self.same_sender(from, claimed, "an election message")?;
        self.authorize_term(from, msg.term())
    }

    /// A master's command (push, release) under `term`: obeyed only from the member this
    /// server follows as master of exactly that term.
    async fn authorize_command(
        &self,
        from: ServerId,
        term: u64,
        what: &str,
    ) -> Result<(), ClusterError> {
        self.authorize_term(from, term)?;
        let follows = || {
            let st = self.lock();
            (st.master, st.term)
        };
        let (mut master, mut have) = follows();
        // A new master's first push can overtake its own Coordinator message: give our
        // election a heartbeat period to take the claim (the term names `from`) before
        // refusing, instead of making the master retry a round later. Nothing is obeyed
        // before the election has accepted `from` as master of exactly this term.
        let deadline = tokio::time::Instant::now() + self.timings.heartbeat;
        while election::term_owner(term) == from
            && term >= have
            && master != Some(from)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
            (master, have) = follows();
        }
        if term < have {
            // Normal around a change of master; not an attack, not counted.
            return Err(ClusterError::StaleTerm { got: term, have });
        }
        if master == Some(from) && term == have {
            return Ok(());
        }
        Err(self.authority.refuse(
            Some(from),
            Reason::NotMaster,
            format!(
                "{what} under term {} from {from}, but this server follows {} at term {}",
                election::term_text(term),
                master.map_or_else(|| "no master".to_owned(), |m| m.to_string()),
                election::term_text(have)
            ),
        ))
    }

    pub(crate) async fn authorize_push(
        &self,
        from: ServerId,
        push: &Push,
    ) -> Result<(), ClusterError> {
        self.same_sender(from, push.from, "an assignment")?;
        self.authorize_command(from, push.id.term, "an assignment")
            .await
    }

    pub(crate) async fn authorize_chunk(
        &self,
        from: ServerId,
        chunk: &Chunk,
    ) -> Result<(), ClusterError> {
        self.same_sender(from, chunk.from, "an assignment chunk")?;
        self.authorize_command(from, chunk.id.term, "an assignment chunk")
            .await
    }

    pub(crate) async fn authorize_release(
        &self,
        from: ServerId,
        r: &Release,
    ) -> Result<(), ClusterError> {
        self.authorize_command(from, r.term, "a release").await
    }

    /// A peer's inventory change: what the public API would accept.
    pub(crate) fn authorize_inventory(
        &self,
        from: ServerId,
        change: &InventoryChange,
    ) -> Result<(), ClusterError> {
        // The credential an element names is checked by the writer, against the pool's
        // profiles (this member's copy may lag behind a profile just added).
        let invalid = |m: String| {
            self.authority.refuse(
                Some(from),
                Reason::Invalid,
                format!("inventory change: {m}"),
            )
        };
        match change {
            InventoryChange::Add(e) | InventoryChange::Put(e) => {
                crate::config::validate_element_fields(e)
                    .map_err(|(k, m)| invalid(format!("{k}: {m}")))?;
            }
            InventoryChange::SetCredential { name, credential } => {
                super::credentials::validate(name, credential)
                    .map_err(|e| invalid(e.to_string()))?;
            }
            InventoryChange::Remove(_) | InventoryChange::RemoveCredential(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_counted_by_reason_and_answers_refused() {
        let registry = prometheus::Registry::new();
        let a = Authority::new(&registry, 10, true);
        for _ in 0..3 {
            let e = a.refuse(Some(ServerId(1)), Reason::NotMaster, "a push".into());
            assert!(matches!(
                e,
                ClusterError::Refused {
                    reason: Reason::NotMaster,
                    ..
                }
            ));
        }
        a.refuse(None, Reason::NoCertificate, "none".into());
        assert_eq!(a.count(Reason::NotMaster), 3);
        assert_eq!(a.count(Reason::NoCertificate), 1);
        assert_eq!(a.count(Reason::TermRange), 0);
        // Every reason is exported from the start, at zero.
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        for r in Reason::ALL {
            assert!(
                text.contains(&format!("reason=\"{}\"", r.label())),
                "{text}"
            );
        }
    }
}
