//! One NETCONF session over SSH (ssh2 = libssh2, blocking): connect, check the host key,
//! log in, open the `netconf` subsystem, exchange `<hello>`, then RPCs one at a time.
//!
//! Every blocking call is bounded: the TCP connect by `connect_timeout`, every libssh2 call
//! by `Session::set_timeout`, and an RPC as a whole by its deadline. A session that timed out
//! or broke framing is dropped by the caller, never reused.

use super::NcError;
use super::framing::{self, Decoder, Framing};
use super::xml::{self, DataVisit, Hello, Incoming, Reply};
use crate::config::NetconfCredential;
use crate::fingerprint::{fingerprint_sha256, parse_sha256_fingerprint};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// netconfd (yuma123 2.13) handles one message per socket read: a `<hello>` and an `<rpc>`
/// that arrive together leave the rpc unread. The first RPC waits this long after our hello.
const HELLO_SETTLE: Duration = Duration::from_millis(50);
const READ_CHUNK: usize = 32 * 1024;

/// Where and how to log in.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Host name as configured (for known_hosts lookups), without the port.
    pub host: String,
    pub credential: NetconfCredential,
    /// Bound of every blocking step (TCP connect, each SSH read or write).
    pub timeout: Duration,
    pub max_reply: usize,
    /// SSH keepalive interval; zero disables.
    pub keepalive: Duration,
}

pub struct Session {
    ssh: ssh2::Session,
    channel: ssh2::Channel,
    decoder: Decoder,
    hello: Hello,
    next_id: u64,
    settle_until: Option<Instant>,
    timeout: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("session_id", &self.hello.session_id)
            .field("framing", &self.decoder.framing())
            .finish()
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

fn ssh_err(what: &str, e: ssh2::Error) -> NcError {
    if e.code() == ssh2::ErrorCode::Session(-9) {
        // LIBSSH2_ERROR_TIMEOUT
        NcError::Timeout(what.to_owned())
    } else {
        NcError::Ssh(format!("{what}: {}", e.message()))
    }
}

impl Session {
    /// Opens a session; on success the hello exchange is done and the framing chosen.
    pub fn connect(t: &Target) -> Result<Session, NcError> {
        let tcp = TcpStream::connect_timeout(&t.addr, t.timeout).map_err(|e| {
            if let Some(why) = crate::model::starved(&e) {
                NcError::Starved(why)
            } else if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock {
                NcError::Timeout(format!("TCP connect to {}", t.addr))
            } else {
                NcError::Connect(format!("{}: {e}", t.addr))
            }
        })?;
        let _ = tcp.set_nodelay(true);
        let mut ssh = ssh2::Session::new().map_err(|e| ssh_err("libssh2 init", e))?;
        ssh.set_timeout(millis(t.timeout));
        ssh.set_tcp_stream(tcp);
        ssh.handshake().map_err(|e| ssh_err("SSH handshake", e))?;
        check_host_key(&ssh, t)?;
        authenticate(&ssh, &t.credential)?;
        if !t.keepalive.is_zero() {
            ssh.set_keepalive(
                true,
                t.keepalive.as_secs().clamp(2, u64::from(u32::MAX)) as u32,
            );
        }
        let mut channel = ssh
            .channel_session()
            .map_err(|e| ssh_err("opening an SSH channel", e))?;
        let _ = channel.handle_extended_data(ssh2::ExtendedData::Ignore);
        channel
            .subsystem("netconf")
            .map_err(|e| ssh_err("starting the netconf subsystem", e))?;
        let mut s = Session {
            ssh,
            channel,
            decoder: Decoder::new(t.max_reply),
            hello: Hello::default(),
            next_id: 1,
            settle_until: None,
            timeout: t.timeout,
        };
        // The server's hello is read before ours is written. Servers that send it as soon as
        // the channel opens (paramiko-based ones: before answering the subsystem request)
        // lost it about one time in three when we wrote first (libssh2 1.11, measured with
        // tests/it/common/ncserver.py); reading first lost none in 150 tries. RFC 6241 has both
        // sides send at once, so no server waits for ours.
        let deadline = Instant::now() + t.timeout;
        let raw = s.read_message(deadline, "the server <hello>")?;
        s.send(xml::client_hello().as_bytes(), Framing::Eom)?;
        s.hello = xml::parse_hello(&raw)?;
        s.settle_until = Some(Instant::now() + HELLO_SETTLE);
        if s.hello.has(xml::CAP_BASE_11) {
            s.decoder.set_framing(Framing::Chunked);
        } else if !s.hello.has(xml::CAP_BASE_10) {
            return Err(NcError::Protocol(
                "the server offers neither base:1.0 nor base:1.1".into(),
            ));
        }
        Ok(s)
    }

    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    #[cfg(any(test, feature = "testing"))]
    pub fn framing(&self) -> Framing {
        self.decoder.framing()
    }

    fn send(&mut self, msg: &[u8], framing: Framing) -> Result<(), NcError> {
        let bytes = framing::encode(msg, framing);
        self.channel
            .write_all(&bytes)
            .and_then(|_| self.channel.flush())
            .map_err(|e| io_err("writing", e))
    }

    /// Reads until one whole message is buffered, or the deadline passes.
    fn read_message(&mut self, deadline: Instant, what: &str) -> Result<Vec<u8>, NcError> {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            if let Some(m) = self.decoder.next_message()? {
                return Ok(m);
            }
            if Instant::now() >= deadline {
                return Err(NcError::Timeout(format!("waiting for {what}")));
            }
            match self.channel.read(&mut buf) {
                Ok(0) => return Err(NcError::Closed),
                Ok(n) => self.decoder.feed(&buf[..n])?,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    return Err(NcError::Timeout(format!(
                        "waiting for {what} (nothing for {:?})",
                        self.timeout
                    )));
                }
                Err(e) => return Err(io_err("reading", e)),
            }
        }
    }

    /// Sends one operation and waits for its reply, streaming `<data>` to `data`.
    /// Notifications that arrive meanwhile (on a subscribed session) are skipped.
    pub fn rpc(
        &mut self,
        operation: &str,
        data: &mut impl DataVisit,
        deadline: Instant,
    ) -> Result<Reply, NcError> {
        if let Some(t) = self.settle_until.take() {
            let now = Instant::now();
            if t > now {
                std::thread::sleep(t - now);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let framing = self.decoder.framing();
        self.send(xml::rpc(id, operation).as_bytes(), framing)?;
        loop {
            let raw = self.read_message(deadline, "the rpc-reply")?;
            if is_notification(&raw) {
                continue;
            }
            let reply = xml::parse_reply(&raw, data)?;
            match reply.message_id.as_deref() {
                Some(m) if m == id.to_string() => return Ok(reply),
                // Some servers leave message-id out of error replies to malformed rpcs.
                None if reply.failed() => return Ok(reply),
                other => {
                    return Err(NcError::Protocol(format!(
                        "reply message-id {other:?}, expected \"{id}\""
                    )));
                }
            }
        }
    }

    /// `<close-session>` and a clean SSH shutdown, bounded by `grace`; errors are ignored
    /// (the session is going away either way).
    pub fn close(mut self, grace: Duration) {
        self.ssh.set_blocking(true);
        self.ssh.set_timeout(millis(grace));
        let deadline = Instant::now() + grace;
        let _ = self.rpc(xml::CLOSE_SESSION, &mut xml::NoData, deadline);
        let _ = self.channel.send_eof();
        let _ = self.channel.close();
        let _ = self.ssh.disconnect(None, "bye", None);
    }

    /// Turns this session into a notification stream (after `<create-subscription>`): reads
    /// no longer block.
    pub fn into_stream(self) -> NotificationStream {
        self.ssh.set_blocking(false);
        NotificationStream {
            session: Some(self),
            next_keepalive: Instant::now(),
        }
    }
}

fn is_notification(raw: &[u8]) -> bool {
    // Cheap pre-check; parse_incoming decides for real.
    let head = &raw[..raw.len().min(256)];
    head.windows(13).any(|w| w == b"notification ")
        && matches!(xml::parse_incoming(raw), Ok(Incoming::Notification(_)))
}

fn io_err(what: &str, e: std::io::Error) -> NcError {
    match e.kind() {
        ErrorKind::TimedOut => NcError::Timeout(what.to_owned()),
        _ => NcError::Ssh(format!("{what}: {e}")),
    }
}

fn check_host_key(ssh: &ssh2::Session, t: &Target) -> Result<(), NcError> {
    let c = &t.credential;
    let Some((key, _)) = ssh.host_key() else {
        return Err(NcError::HostKey("the server sent no host key".into()));
    };
    let seen = ssh
        .host_key_hash(ssh2::HashType::Sha256)
        .map(fingerprint_sha256)
        .unwrap_or_default();
    if c.insecure_accept_any_host_key {
        return Ok(());
    }
    if let Some(pinned) = &c.host_key_sha256 {
        let want = parse_sha256_fingerprint(pinned);
        let got = ssh.host_key_hash(ssh2::HashType::Sha256);
        return match (want, got) {
            (Some(w), Some(g)) if w.as_slice() == g => Ok(()),
            _ => Err(NcError::HostKey(format!(
                "host key {seen} does not match the pinned {pinned}"
            ))),
        };
    }
    if let Some(file) = &c.known_hosts {
        let mut kh = ssh
            .known_hosts()
            .map_err(|e| NcError::Config(format!("known_hosts: {}", e.message())))?;
        kh.read_file(file, ssh2::KnownHostFileKind::OpenSSH)
            .map_err(|e| {
                NcError::Config(format!(
                    "cannot read known_hosts {}: {}",
                    file.display(),
                    e.message()
                ))
            })?;
        return match kh.check_port(&t.host, t.addr.port(), key) {
            ssh2::CheckResult::Match => Ok(()),
            ssh2::CheckResult::Mismatch => Err(NcError::HostKey(format!(
                "host key {seen} of {}:{} does NOT match {} (possible man-in-the-middle)",
                t.host,
                t.addr.port(),
                file.display()
            ))),
            ssh2::CheckResult::NotFound => Err(NcError::HostKey(format!(
                "{}:{} is not in {} (its key is {seen})",
                t.host,
                t.addr.port(),
                file.display()
            ))),
            ssh2::CheckResult::Failure => Err(NcError::HostKey(format!(
                "cannot check the host key against {}",
                file.display()
            ))),
        };
    }
    Err(NcError::HostKey("no host-key check configured".into()))
}

fn authenticate(ssh: &ssh2::Session, c: &NetconfCredential) -> Result<(), NcError> {
    let mut why = Vec::new();
    if let Some(key) = &c.private_key {
        if !key.exists() {
            return Err(NcError::Config(format!(
                "private key {} does not exist",
                key.display()
            )));
        }
        let pass = c.private_key_passphrase.as_ref().map(|s| s.expose());
        match ssh.userauth_pubkey_file(&c.user, None, key, pass) {
            Ok(()) if ssh.authenticated() => return Ok(()),
            Ok(()) => why.push("public key not accepted".to_owned()),
            Err(e) if e.code() == ssh2::ErrorCode::Session(-9) => {
                return Err(NcError::Timeout("public key authentication".into()));
            }
            Err(e) => why.push(format!("public key: {}", e.message())),
        }
    }
    if let Some(pw) = &c.password {
        match ssh.userauth_password(&c.user, pw.expose()) {
            Ok(()) if ssh.authenticated() => return Ok(()),
            Ok(()) => why.push("password not accepted".to_owned()),
            Err(e) if e.code() == ssh2::ErrorCode::Session(-9) => {
                return Err(NcError::Timeout("password authentication".into()));
            }
            Err(e) => why.push(format!("password: {}", e.message())),
        }
    }
    Err(NcError::Auth(format!(
        "user {:?} rejected ({})",
        c.user,
        why.join("; ")
    )))
}

/// A subscribed session read without blocking (by the notification reactor).
pub struct NotificationStream {
    session: Option<Session>,
    next_keepalive: Instant,
}

/// What one non-blocking read pass found.
pub enum Pumped {
    /// Zero or more whole messages; the session lives on.
    Messages(Vec<Vec<u8>>),
    /// The session ended (after these messages).
    Ended(Vec<Vec<u8>>, NcError),
}

impl NotificationStream {
    /// Reads what is there without waiting, through the caller's scratch `buf`; at most
    /// `budget` bytes per call so that one chatty device cannot starve the others.
    pub fn pump(&mut self, buf: &mut [u8], budget: usize) -> Pumped {
        let mut out = Vec::new();
        let Some(s) = self.session.as_mut() else {
            return Pumped::Ended(out, NcError::Closed);
        };
        let mut read = 0;
        loop {
            loop {
                match s.decoder.next_message() {
                    Ok(Some(m)) => out.push(m),
                    Ok(None) => break,
                    Err(e) => return Pumped::Ended(out, e.into()),
                }
            }
            if read >= budget {
                return Pumped::Messages(out);
            }
            match s.channel.read(buf) {
                Ok(0) => return Pumped::Ended(out, NcError::Closed),
                Ok(n) => {
                    read += n;
                    if let Err(e) = s.decoder.feed(&buf[..n]) {
                        return Pumped::Ended(out, e.into());
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Pumped::Ended(out, io_err("reading", e)),
            }
        }
        if s.channel.eof() {
            return Pumped::Ended(out, NcError::Closed);
        }
        let now = Instant::now();
        if now >= self.next_keepalive {
            match s.ssh.keepalive_send() {
                Ok(secs) => {
                    // 0: keepalives are off; look again in a minute.
                    let secs = if secs == 0 { 60 } else { secs };
                    self.next_keepalive = now + Duration::from_secs(u64::from(secs));
                }
                Err(e) if e.code() == ssh2::ErrorCode::Session(-37) => {
                    // EAGAIN: the socket is full; try again on the next pass.
                }
                Err(e) => return Pumped::Ended(out, ssh_err("keepalive", e)),
            }
        }
        Pumped::Messages(out)
    }

    pub fn session_id(&self) -> Option<u32> {
        self.session.as_ref().and_then(|s| s.hello.session_id)
    }

    /// Back to a blocking session (to close it cleanly).
    pub fn into_session(mut self) -> Option<Session> {
        let s = self.session.take()?;
        s.ssh.set_blocking(true);
        Some(s)
    }
}
