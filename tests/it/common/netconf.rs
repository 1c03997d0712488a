//! A NETCONF server: `netconfd` (yuma123) behind a private `sshd` on a free loopback port,
//! plus a reference client built on the `ssh` CLI.
//!
//! Needs root (creates the local user [`NETCONF_USER`] once, runs sshd). The user logs in
//! with [`NETCONF_PASSWORD`] or with the key at [`Netconfd::client_key`].
//!
//! netconfd 2.13 trap: it handles one message per socket read, so a client that sends
//! `<hello>` and an `<rpc>` back to back (one read on the server side) gets no reply until
//! its next write. Send each message only after the previous reply (as
//! [`Netconfd::exchange`] does).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ChildGuard, TempDir, wait_until};

/// Local account the tests log in as (created by the helper or tests/install-peers.sh).
pub const NETCONF_USER: &str = "emspoolnc";
pub const NETCONF_PASSWORD: &str = "emspool-nc-pass";

/// End-of-message marker of NETCONF 1.0 framing.
pub const EOM: &str = "]]>]]>";

/// A client `<hello>` offering base:1.0 only (keeps `]]>]]>` framing).
pub const CLIENT_HELLO: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><capabilities>\
<capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>";

/// How the reference client authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NcAuth {
    Password,
    Key,
}

pub struct Netconfd {
    // Field order: processes are stopped before the temp dir goes.
    sshd: Option<ChildGuard>,
    netconfd: Option<ChildGuard>,
    port: u16,
    starts: u32,
    dir: TempDir,
}

impl Netconfd {
    /// Start netconfd (module ietf-system, no startup config) and an sshd on a free port
    /// whose `netconf` subsystem bridges to it; wait until both are up (~10 s bound).
    pub fn start() -> Netconfd {
        assert!(
            super::is_root(),
            "Netconfd::start needs root (local user + sshd)"
        );
        for tool in ["netconfd", "netconf-subsystem", "sshd", "ssh-keygen"] {
            super::find_tool(tool);
        }
        ensure_user();
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        let dir = super::peer_tempdir("netconf");
        let d = dir.path();
        keygen(&d.join("hostkey"));
        keygen(&d.join("clientkey"));
        std::fs::copy(d.join("clientkey.pub"), d.join("authorized_keys")).expect("authorized_keys");
        super::set_mode(&d.join("authorized_keys"), 0o644);
        std::fs::create_dir(d.join("home")).expect("mkdir home");
        let mut s = Netconfd {
            sshd: None,
            netconfd: None,
            port: 0,
            starts: 0,
            dir,
        };
        let mut last_err = String::new();
        for _ in 0..3 {
            s.port = super::free_port();
            match s.launch() {
                Ok(()) => return s,
                Err(e) => {
                    last_err = e;
                    s.kill_all();
                }
            }
        }
        panic!("netconfd/sshd did not start: {last_err}");
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("ncxserver.sock")
    }

    fn launch(&mut self) -> Result<(), String> {
        self.starts += 1;
        let n = self.starts;
        let d = self.dir.path().to_path_buf();
        let sock = self.sock();
        let _ = std::fs::remove_file(&sock);
        let log = d.join(format!("netconfd.{n}.log"));
        let mut cmd = Command::new(super::find_tool("netconfd"));
        cmd.arg("--no-startup")
            .arg(format!("--superuser={NETCONF_USER}"))
            .arg(format!("--port={}", self.port))
            .arg("--module=ietf-system")
            .arg(format!("--ncxserver-sockname={}", sock.display()))
            .arg(format!("--log={}", log.display()))
            // netconfd keeps state in $HOME/.yuma and writes backup-cfg.xml into its working
            // directory on <commit>: keep both in the temp dir.
            .env("HOME", d.join("home"))
            .current_dir(&d);
        let mut nc = super::spawn(&format!("netconfd.{n}"), cmd, &d);
        nc.add_log(&log);
        self.netconfd = Some(nc);

        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {d}/hostkey\n\
                 PidFile {d}/sshd.pid\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PermitRootLogin no\n\
                 AllowUsers {user}\n\
                 PasswordAuthentication yes\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 AuthorizedKeysFile {d}/authorized_keys\n\
                 Subsystem netconf \"{sub} --ncxserver-sockname={port}@{sock}\"\n",
                port = self.port,
                d = d.display(),
                user = NETCONF_USER,
                sub = super::find_tool("netconf-subsystem").display(),
                sock = sock.display(),
            ),
        )
        .map_err(|e| format!("write sshd_config: {e}"))?;
        let mut cmd = Command::new(super::find_tool("sshd"));
        cmd.arg("-D").arg("-e").arg("-f").arg(&config);
        self.sshd = Some(super::spawn(&format!("sshd.{n}"), cmd, &d));

        let addr = self.addr();
        let res = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            for c in [self.netconfd.as_mut(), self.sshd.as_mut()]
                .into_iter()
                .flatten()
            {
                if let Some(st) = c.try_wait() {
                    return Some(Err(format!("{} exited: {st}", c.name())));
                }
            }
            (sock.exists() && ssh_banner(addr)).then_some(Ok(()))
        });
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{e}\n{}", self.log_tail())),
            Err(e) => Err(format!("not ready on {addr}: {e}\n{}", self.log_tail())),
        }
    }

    fn kill_all(&mut self) {
        for c in [self.sshd.take(), self.netconfd.take()]
            .into_iter()
            .flatten()
        {
            let mut c = c;
            c.kill9();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The SSH endpoint (NETCONF over SSH, subsystem `netconf`).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn user(&self) -> &'static str {
        NETCONF_USER
    }

    pub fn password(&self) -> &'static str {
        NETCONF_PASSWORD
    }

    /// Private key (OpenSSH format, no passphrase) authorized for [`NETCONF_USER`].
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("clientkey")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The netconfd process (e.g. `signal("STOP")` to make the NE hang).
    pub fn netconfd_mut(&mut self) -> Option<&mut ChildGuard> {
        self.netconfd.as_mut()
    }

    pub fn sshd_mut(&mut self) -> Option<&mut ChildGuard> {
        self.sshd.as_mut()
    }

    /// Stop both (SIGTERM, SIGKILL after 5 s); the port is then closed.
    pub fn stop(&mut self) {
        for c in [self.sshd.take(), self.netconfd.take()]
            .into_iter()
            .flatten()
        {
            let mut c = c;
            c.terminate_within(Duration::from_secs(5));
        }
    }

    /// Start both again on the same port (stops them first if running).
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.launch() {
            panic!("netconf restart on port {} failed: {e}", self.port);
        }
    }

    pub fn log_tail(&self) -> String {
        [self.netconfd.as_ref(), self.sshd.as_ref()]
            .into_iter()
            .flatten()
            .map(|c| c.log_tail())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Reference client: open a NETCONF session with the `ssh` CLI, send [`CLIENT_HELLO`],
    /// then each message in `rpcs` (without the `]]>]]>` marker), each after the previous
    /// reply. Returns everything the server sent (its hello and the replies, with markers).
    /// Bounded by `timeout` overall.
    pub fn exchange(
        &self,
        auth: NcAuth,
        rpcs: &[&str],
        timeout: Duration,
    ) -> Result<String, String> {
        let d = self.dir.path();
        let mut cmd = Command::new(super::find_tool("ssh"));
        cmd.args([
            "-q",
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            "-p",
        ])
        .arg(self.port.to_string());
        match auth {
            NcAuth::Key => {
                cmd.args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o"])
                    .arg("PreferredAuthentications=publickey")
                    .arg("-i")
                    .arg(self.client_key());
            }
            NcAuth::Password => {
                // OpenSSH >= 8.4: take the password from an askpass program, no tty needed.
                let askpass = d.join("askpass.sh");
                if !askpass.exists() {
                    std::fs::write(&askpass, format!("#!/bin/sh\necho '{NETCONF_PASSWORD}'\n"))
                        .map_err(|e| format!("askpass: {e}"))?;
                    super::set_mode(&askpass, 0o755);
                }
                cmd.args(["-o", "PreferredAuthentications=password", "-o"])
                    .arg("PubkeyAuthentication=no")
                    .env("SSH_ASKPASS", &askpass)
                    .env("SSH_ASKPASS_REQUIRE", "force")
                    .env("DISPLAY", ":0");
            }
        }
        cmd.arg("-s")
            .arg(format!("{NETCONF_USER}@127.0.0.1"))
            .arg("netconf")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("spawn ssh: {e}"))?;
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let err = Arc::new(Mutex::new(Vec::<u8>::new()));
        let readers = [
            pump(child.stdout.take().expect("stdout"), out.clone()),
            pump(child.stderr.take().expect("stderr"), err.clone()),
        ];
        let mut stdin = child.stdin.take().expect("stdin");
        let deadline = Instant::now() + timeout;
        let text =
            |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
        // Server hello first, then our hello (no reply to it), then one reply per rpc.
        let replies = |n: usize| {
            let out = out.clone();
            move || (text(&out).matches(EOM).count() >= n).then_some(())
        };
        let left = || deadline.saturating_duration_since(Instant::now());
        let mut send = |bytes: &[u8]| {
            stdin
                .write_all(bytes)
                .and_then(|_| stdin.flush())
                .map_err(|e| format!("write to ssh: {e}"))
        };
        let mut result = wait_until(left(), Duration::from_millis(5), replies(1))
            .map_err(|e| format!("waiting for the server hello: {e}"))
            .and_then(|_| send(format!("{CLIENT_HELLO}\n{EOM}\n").as_bytes()));
        // netconfd 2.13 leaves a message that arrived in the same read as <hello> unread
        // until more bytes come: keep them apart, and nudge with a newline (legal between
        // 1.0-framed messages) if a reply is late.
        std::thread::sleep(Duration::from_millis(50));
        for (i, rpc) in rpcs.iter().enumerate() {
            if result.is_err() {
                break;
            }
            let want = i + 2;
            result = send(format!("{rpc}\n{EOM}\n").as_bytes()).and_then(|_| {
                let quick = wait_until(
                    left().min(Duration::from_millis(500)),
                    Duration::from_millis(2),
                    replies(want),
                );
                if quick.is_ok() {
                    return Ok(());
                }
                eprintln!(
                    "[common] netconf: no reply to rpc {} in 500 ms: nudging",
                    i + 1
                );
                send(b"\n")?;
                wait_until(left(), Duration::from_millis(5), replies(want))
                    .map_err(|e| format!("waiting for the reply to rpc {}: {e}", i + 1))
            });
        }
        drop(stdin);
        let status = wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            child.try_wait().ok().flatten()
        });
        if status.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for r in readers {
            let _ = r.join();
        }
        match result {
            Ok(()) => Ok(text(&out)),
            Err(e) => Err(format!(
                "{e}\nssh stderr: {}\nreceived: {}",
                text(&err).trim(),
                text(&out)
            )),
        }
    }
}

fn pump(
    mut r: impl Read + Send + 'static,
    buf: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    })
}

/// Whether an SSH server greets on `addr`.
fn ssh_banner(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut b = [0u8; 8];
    s.read_exact(&mut b).is_ok() && b.starts_with(b"SSH-")
}

fn keygen(path: &Path) {
    let out = Command::new(super::find_tool("ssh-keygen"))
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn user_exists() -> bool {
    Command::new("id")
        .args(["-u", NETCONF_USER])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Create [`NETCONF_USER`] with [`NETCONF_PASSWORD`] when missing. Parallel test processes
/// may race on /etc/passwd's lock: retry for a few seconds.
fn ensure_user() {
    let res = wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        if user_exists() {
            return Some(());
        }
        let ok = Command::new(super::find_tool("useradd"))
            .args(["-M", "-d", "/", "-s", "/bin/sh", NETCONF_USER])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None; // locked, or created meanwhile by another process: look again
        }
        set_password().then_some(())
    });
    res.unwrap_or_else(|e| panic!("cannot create user {NETCONF_USER}: {e}"));
}

fn set_password() -> bool {
    for _ in 0..50 {
        let child = Command::new(super::find_tool("chpasswd"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else { return false };
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{NETCONF_USER}:{NETCONF_PASSWORD}\n").as_bytes());
        if child.wait().is_ok_and(|s| s.success()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
