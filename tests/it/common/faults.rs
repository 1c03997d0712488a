//! Faults of the machine, caused for real for the tests of `robust`: a small tmpfs (as root)
//! to fill and grow, and a name server that never answers.

use super::is_root;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A tmpfs mounted for one test; unmounted (lazily, so a process still inside cannot block
/// it) when dropped, also when the test fails.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        assert!(is_root(), "mounting a tmpfs needs root");
        std::fs::create_dir_all(dir).expect("mount point");
        run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir));
        Tmpfs {
            dir: dir.to_owned(),
        }
    }

    /// Grows (or shrinks) the filesystem in place: what an operator does to free space.
    pub fn resize(&self, size: &str) {
        run(Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir));
    }

    /// Fills every free byte with one file.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.dir.join("filler")).expect("filler");
        let chunk = vec![0u8; 4096];
        for _ in 0..100_000 {
            if f.write_all(&chunk).and_then(|_| f.flush()).is_err() {
                return;
            }
        }
        panic!("the tmpfs never filled up");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A name server that reads every query and never answers (UDP and TCP on port 53 of a
/// loopback address of its own), until dropped.
pub struct SilentNameServer {
    pub ip: &'static str,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<u64>>,
    _tcp: TcpListener,
}

impl SilentNameServer {
    pub fn start(ip: &'static str) -> SilentNameServer {
        let udp = UdpSocket::bind((ip, 53)).expect("bind udp/53 (root needed)");
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        // Listening but never accepting: the kernel completes handshakes, nobody answers.
        let tcp = TcpListener::bind((ip, 53)).expect("bind tcp/53");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut queries = 0u64;
            while !flag.load(Ordering::Relaxed) {
                if udp.recv(&mut buf).is_ok() {
                    queries += 1;
                }
            }
            queries
        });
        SilentNameServer {
            ip,
            stop,
            reader: Some(reader),
            _tcp: tcp,
        }
    }

    pub fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.reader
            .take()
            .map_or(0, |r| r.join().expect("reader thread"))
    }
}

impl Drop for SilentNameServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Loopback addresses `127.77.X.1..=n` for the members of one pool, `X` from this process
/// and a counter, so that two runs (or two tests) never cut each other's servers.
pub fn member_hosts(n: usize) -> Vec<String> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    let x = (std::process::id().wrapping_mul(7).wrapping_add(k) % 250) + 1;
    (1..=n).map(|i| format!("127.77.{x}.{i}")).collect()
}

/// A silent partition made by the kernel: nftables drops every TCP segment from and to one
/// loopback address, so the server there and its peers see nothing, not an error. Removed
/// (its own table deleted) when dropped, also when the test fails.
pub struct Cut {
    table: String,
}

impl Cut {
    pub fn isolate(addr: &str) -> Cut {
        assert!(is_root(), "nftables rules need root");
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let table = format!(
            "emspool_cut_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let rules = format!(
            "table ip {table} {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n  \
             ip saddr {addr} meta l4proto tcp drop\n  ip daddr {addr} meta l4proto tcp drop\n }}\n}}\n"
        );
        let mut child = Command::new(super::find_tool("nft"))
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("nft (tests/install-peers.sh installs nftables)");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("nft stdin");
            stdin.write_all(rules.as_bytes()).expect("nft rules");
        }
        let status = child.wait().expect("nft");
        assert!(status.success(), "nft -f refused the rules:\n{rules}");
        Cut { table }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let _ = Command::new(super::find_tool("nft"))
            .args(["delete", "table", "ip", &self.table])
            .status();
    }
}
