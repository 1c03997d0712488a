//! Name resolution of element addresses (`host:port`) without blocking threads.
//!
//! `tokio::net::lookup_host` runs getaddrinfo on tokio's blocking pool, and a timeout around it
//! frees the caller but not the thread: with a resolver that never answers, 400 elements named
//! by DNS filled all 512 blocking threads, the API (which reads the event log there) took 9 s
//! and SIGTERM 47 s. hickory's resolver is async (its queries are sockets on the runtime),
//! reads `/etc/hosts` first, caches answers (bounded by their TTL) and gives each lookup one
//! attempt of at most the poll timeout.
//!
//! One resolver per process, set up at start from `[poll] resolv_conf` (default
//! `/etc/resolv.conf`); code that runs without `server::start` (benchmarks) gets the default.

use hickory_resolver::config::{ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";
/// Records kept in the cache (hickory counts records, not bytes).
const CACHE_RECORDS: usize = 4096;
/// A name that does not exist is asked again after at most this.
const NEGATIVE_TTL_MAX: Duration = Duration::from_secs(30);
/// Hickory's own per-query timeout; the caller's deadline (the poll timeout) cuts earlier.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

static SHARED: OnceLock<RwLock<Arc<TokioResolver>>> = OnceLock::new();

fn shared() -> Arc<TokioResolver> {
    let cell = SHARED.get_or_init(|| RwLock::new(Arc::new(build(None))));
    cell.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Sets up the process's resolver from `resolv_conf` (`None`: `/etc/resolv.conf`). A file that
/// cannot be read or lists no name server leaves `/etc/hosts` and literal addresses only, with
/// a warning: never a public resolver the operator did not choose.
pub(crate) fn configure(resolv_conf: Option<&Path>) {
    let resolver = Arc::new(build(resolv_conf));
    let cell = SHARED.get_or_init(|| RwLock::new(resolver.clone()));
    *cell.write().unwrap_or_else(|p| p.into_inner()) = resolver;
}

fn build(resolv_conf: Option<&Path>) -> TokioResolver {
    let path = resolv_conf.map_or_else(|| PathBuf::from(DEFAULT_RESOLV_CONF), Path::to_owned);
    let parsed = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            hickory_resolver::system_conf::parse_resolv_conf(bytes).map_err(|e| e.to_string())
        });
    let (config, mut opts) = match parsed {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(
                "name servers from {}: {e}; element names resolve from /etc/hosts only",
                path.display()
            );
            (
                ResolverConfig::from_parts(None, vec![], vec![]),
                ResolverOpts::default(),
            )
        }
    };
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = 1;
    opts.cache_size = CACHE_RECORDS;
    opts.negative_max_ttl = Some(NEGATIVE_TTL_MAX);
    opts.use_hosts_file = ResolveHosts::Always;
    TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
        .with_options(opts)
        .build()
}

/// Splits `host:port` (`[v6]:port` too).
fn split(address: &str) -> Result<(&str, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{address}: expected host:port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("{address}: bad port {port:?}"))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

/// Every address of `address`, within `timeout` whatever the name servers do.
pub(crate) async fn resolve_all(
    address: &str,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, String> {
    if let Ok(a) = address.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let (host, port) = split(address)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let resolver = shared();
    match tokio::time::timeout(timeout, resolver.lookup_ip(host)).await {
        Ok(Ok(found)) => {
            let addrs: Vec<SocketAddr> = found.iter().map(|ip| SocketAddr::new(ip, port)).collect();
            if addrs.is_empty() {
                Err(format!("{address}: no address found"))
            } else {
                Ok(addrs)
            }
        }
        Ok(Err(e)) => Err(format!("{address}: cannot resolve: {}", describe(&e))),
        Err(_) => Err(format!("{address}: resolver timed out after {timeout:?}")),
    }
}

/// The first address of `address` (IPv4 before IPv6, hickory's default order).
pub(crate) async fn resolve(address: &str, timeout: Duration) -> Result<SocketAddr, String> {
    resolve_all(address, timeout)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{address}: no address found"))
}

/// How long a member's name may take to resolve (connections to members time out at 500 ms).
const MEMBER_LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// reqwest's resolver for the pool members' URLs: the same async resolver, so that a member
/// named by DNS costs no blocking thread either (reqwest's default is getaddrinfo on tokio's
/// blocking pool, several lookups a second per member for the heartbeats).
pub(crate) struct MemberResolver;

impl reqwest::dns::Resolve for MemberResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        // reqwest puts the URL's port on the addresses; 0 is a placeholder.
        let address = format!("{}:0", name.as_str());
        Box::pin(async move {
            let addrs = resolve_all(&address, MEMBER_LOOKUP_TIMEOUT)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn describe(e: &ResolveError) -> String {
    if e.is_no_records_found() {
        "no such name".to_owned()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_split() {
        assert_eq!(split("ne1.example:161"), Ok(("ne1.example", 161)));
        assert_eq!(split("[::1]:830"), Ok(("::1", 830)));
        assert!(split("ne1.example").is_err());
        assert!(split("ne1.example:x").is_err());
    }

    #[tokio::test]
    async fn literals_and_hosts_file_need_no_name_server() {
        let t = Duration::from_secs(2);
        assert_eq!(
            resolve("127.0.0.1:161", t).await,
            Ok("127.0.0.1:161".parse().expect("addr"))
        );
        let local = resolve_all("localhost:161", t).await.expect("localhost");
        assert!(local.iter().all(|a| a.ip().is_loopback()), "{local:?}");
    }

    #[tokio::test]
    async fn member_names_go_through_the_same_resolver() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().expect("name");
        let addrs: Vec<SocketAddr> = MemberResolver
            .resolve(name)
            .await
            .expect("resolved")
            .collect();
        assert!(!addrs.is_empty(), "no address for localhost");
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    /// A name server that reads and never answers: the lookup ends at the deadline, and a
    /// hundred of them at once hold no thread.
    #[tokio::test]
    async fn a_silent_name_server_costs_the_deadline_only() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let ns = silent.local_addr().expect("addr");
        let mut config = ResolverConfig::from_parts(None, vec![], vec![]);
        config.add_name_server(hickory_resolver::config::NameServerConfig::new(
            ns,
            hickory_resolver::proto::xfer::Protocol::Udp,
        ));
        let mut opts = ResolverOpts::default();
        opts.attempts = 1;
        opts.use_hosts_file = ResolveHosts::Never;
        let r = Arc::new(
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build(),
        );
        let started = std::time::Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..100 {
            let r = r.clone();
            set.spawn(async move {
                tokio::time::timeout(
                    Duration::from_millis(300),
                    r.lookup_ip(format!("ne{i}.silent.test.")),
                )
                .await
                .is_err()
            });
        }
        let mut timed_out = 0;
        while let Some(r) = set.join_next().await {
            timed_out += usize::from(r.expect("task"));
        }
        assert_eq!(timed_out, 100);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
