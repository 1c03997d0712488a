//! systemd readiness notification (`Type=notify`): datagrams to `$NOTIFY_SOCKET`, as
//! `sd_notify(3)` sends them. Without the variable (not started by systemd) nothing is sent.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Startup finished: the API listens and polling runs.
pub(crate) fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={status}"));
}

/// A SIGHUP reload starts; [`ready`] ends it.
pub(crate) fn reloading() {
    send("RELOADING=1\nSTATUS=reloading the configuration");
}

/// Shutdown started.
pub(crate) fn stopping() {
    send("STOPPING=1\nSTATUS=stopping");
}

/// Sends `state` to `$NOTIFY_SOCKET` when set; failures are logged, never fatal.
pub(crate) fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Some(path) = path.to_str() else {
        tracing::warn!("NOTIFY_SOCKET is not valid UTF-8; not notifying systemd");
        return;
    };
    if let Err(e) = send_to(path, state) {
        tracing::warn!("cannot notify systemd through {path}: {e}");
    }
}

/// `path` is a filesystem path, or `@name` for a socket in the abstract namespace.
pub(crate) fn send_to(path: &str, state: &str) -> io::Result<()> {
    let addr = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes())?
    } else {
        SocketAddr::from_pathname(path)?
    };
    let sock = UnixDatagram::unbound()?;
    let n = sock.send_to_addr(state.as_bytes(), &addr)?;
    if n != state.len() {
        return Err(io::Error::other("short datagram write"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).expect("bind");
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send_to(path.to_str().unwrap(), "READY=1\nSTATUS=x").expect("send");
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=x");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("emspool-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send_to(&format!("@{name}"), "STOPPING=1").expect("send");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn missing_socket_is_an_error_not_a_panic() {
        assert!(send_to("/nonexistent/emspool/notify", "READY=1").is_err());
    }
}
