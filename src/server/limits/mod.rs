//! What a server may spend: the open-file limit it needs (every NETCONF element holds one or
//! two SSH sockets for as long as it is polled, every SNMP poll in flight one UDP socket, every
//! HTTP connection one socket), and the limits on HTTP connections that keep clients from
//! spending it all (`http`: timeouts and caps, applied around the axum service).

mod accept;
mod http;

pub(crate) use accept::{TlsAccept, bind, serve};
pub(crate) use http::HttpLimits;

use crate::config::Config;
use crate::model::Protocol;

/// Descriptors the configuration needs beyond the elements' sessions (database, listeners,
/// peers, trap socket, clients of the API).
const BASE: u64 = 256;

/// What the configured inventory needs if this server owned all of it.
pub(crate) fn needed(config: &Config) -> u64 {
    let netconf = config
        .elements
        .iter()
        .filter(|e| e.protocol == Protocol::Netconf)
        .count() as u64;
    let per_netconf = if config.poll.netconf.notifications {
        2
    } else {
        1
    };
    // Every open HTTP connection holds a descriptor; the caps bound them (pending ones
    // count against the sum, see `accept`).
    let http = (config.server.max_connections as u64)
        .saturating_add(config.server.max_peer_connections as u64);
    BASE.saturating_add(config.poll.concurrency as u64)
        .saturating_add(netconf.saturating_mul(per_netconf))
        .saturating_add(http)
}

/// Raises the soft open-file limit to the hard one (a shell's soft limit is often 1,024, which
/// ~500 NETCONF elements with notifications exhaust) and warns when even that is short.
pub(crate) fn raise_open_files(config: &Config) {
    let need = needed(config);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < need => tracing::warn!(
            "open-file limit is {limit}, the inventory may need ~{need}: raise it \
             (systemd LimitNOFILE=, or ulimit -Hn)"
        ),
        Ok(limit) => tracing::debug!("open-file limit {limit} (inventory needs ~{need})"),
        Err(e) => tracing::warn!("cannot read or raise the open-file limit: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netconf_elements_count_their_sessions() {
        let mut c: Config = toml::from_str(
            "[server]\nid = 1\nlisten = \"127.0.0.1:0\"\ndata_dir = \"/tmp/x\"\n\
             [[elements]]\nname = \"a\"\naddress = \"127.0.0.1:830\"\nprotocol = \"netconf\"\n\
             credential = \"nc\"\n\
             [[elements]]\nname = \"b\"\naddress = \"127.0.0.1:161\"\ncredential = \"v2\"\n",
        )
        .expect("config");
        let base = BASE + c.poll.concurrency as u64 + 512 + 64;
        assert_eq!(needed(&c), base + 2);
        c.poll.netconf.notifications = false;
        assert_eq!(needed(&c), base + 1);
    }
}
