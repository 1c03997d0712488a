//! Name resolution of element addresses (`host:port`), bounded in time.

use std::net::SocketAddr;
use std::time::Duration;

pub(crate) async fn resolve(address: &str, timeout: Duration) -> Result<SocketAddr, String> {
    if let Ok(a) = address.parse() {
        return Ok(a);
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host(address)).await {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .ok_or_else(|| format!("{address}: no address found")),
        Ok(Err(e)) => Err(format!("{address}: cannot resolve: {e}")),
        Err(_) => Err(format!("{address}: resolver timed out")),
    }
}
