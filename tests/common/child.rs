//! A child process that is always cleaned up.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Grace between SIGTERM and SIGKILL when a guard is dropped.
const DROP_GRACE: Duration = Duration::from_secs(3);
/// Grace between SIGTERM and SIGKILL for [`ChildGuard::terminate`].
const TERMINATE_GRACE: Duration = Duration::from_secs(10);

/// A spawned process whose stdout/stderr go to `<name>.stdout` / `<name>.stderr` in a log
/// dir. On drop (also when the test panics) it gets SIGTERM, then SIGKILL after a grace
/// period, and is reaped.
///
/// Signals go only to the PID this guard spawned, and only while that child has not been
/// reaped (so the PID cannot have been reused by another process).
pub struct ChildGuard {
    name: String,
    child: Child,
    pid: u32,
    status: Option<ExitStatus>,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
    extra_logs: Vec<PathBuf>,
}

impl ChildGuard {
    /// Spawn `cmd` with stdin from /dev/null and stdout/stderr to files in `log_dir`.
    /// Panics when it cannot be spawned (e.g. the program is missing).
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> ChildGuard {
        let stdout_log = log_dir.join(format!("{name}.stdout"));
        let stderr_log = log_dir.join(format!("{name}.stderr"));
        let out = File::create(&stdout_log)
            .unwrap_or_else(|e| panic!("create {}: {e}", stdout_log.display()));
        let err = File::create(&stderr_log)
            .unwrap_or_else(|e| panic!("create {}: {e}", stderr_log.display()));
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        let pid = child.id();
        ChildGuard {
            name: name.to_string(),
            child,
            pid,
            status: None,
            stdout_log,
            stderr_log,
            extra_logs: Vec::new(),
        }
    }

    /// Also show this file (e.g. a daemon's own log file) in [`ChildGuard::log_tail`].
    pub fn add_log(&mut self, path: impl Into<PathBuf>) {
        self.extra_logs.push(path.into());
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn stdout_path(&self) -> &Path {
        &self.stdout_log
    }

    pub fn stderr_path(&self) -> &Path {
        &self.stderr_log
    }

    /// The exit status if it has exited (reaps it), `None` while running.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("try_wait {}: {e}", self.name));
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Wait up to `timeout` for it to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send a signal by name (`"TERM"`, `"INT"`, `"HUP"`, `"STOP"`, `"CONT"`, `"KILL"`...).
    /// Returns false (and sends nothing) when the child has already exited.
    pub fn signal(&mut self, sig: &str) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => {}
            Ok(Some(st)) => {
                self.status = Some(st);
                return false;
            }
            Err(_) => return false,
        }
        // `kill` builtin of /bin/sh: no libc needed. The PID is still our unreaped child.
        let ok = Command::new("/bin/sh")
            .args(["-c", "kill -s \"$0\" \"$1\"", sig, &self.pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        // A failure here means it exited meanwhile; the caller sees that via try_wait.
        ok
    }

    /// SIGTERM, then wait for it to exit (SIGKILL after 10 s). Returns its exit status: use
    /// it to check a graceful shutdown (`status.code() == Some(0)`). A process that had to be
    /// SIGKILLed shows no exit code.
    pub fn terminate(&mut self) -> ExitStatus {
        self.terminate_within(TERMINATE_GRACE)
    }

    /// [`ChildGuard::terminate`] with a chosen grace period before SIGKILL.
    pub fn terminate_within(&mut self, grace: Duration) -> ExitStatus {
        if let Some(st) = self.try_wait() {
            return st;
        }
        self.signal("TERM");
        self.signal("CONT"); // a stopped process only acts on TERM once continued
        if let Some(st) = self.wait_timeout(grace) {
            return st;
        }
        eprintln!(
            "[common] {} (pid {}) ignored SIGTERM for {grace:?}: SIGKILL",
            self.name, self.pid
        );
        self.kill9()
    }

    /// SIGKILL and reap it. Returns its exit status.
    pub fn kill9(&mut self) -> ExitStatus {
        if let Some(st) = self.try_wait() {
            return st;
        }
        let _ = self.child.kill();
        let st = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("wait {}: {e}", self.name));
        self.status = Some(st);
        st
    }

    /// The last lines of stdout, stderr and extra logs, for assertion messages.
    pub fn log_tail(&self) -> String {
        self.log_tail_lines(40)
    }

    pub fn log_tail_lines(&self, lines: usize) -> String {
        let mut s = format!("--- {} (pid {}) ---", self.name, self.pid);
        if let Some(st) = self.status {
            s.push_str(&format!(" exited: {st}"));
        }
        for p in [&self.stdout_log, &self.stderr_log]
            .into_iter()
            .chain(self.extra_logs.iter())
        {
            let tail = super::file_tail(p, lines);
            if !tail.trim().is_empty() {
                s.push_str(&format!("\n[{}]\n{tail}", p.display()));
            }
        }
        s
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        // Never panic in drop (we may already be unwinding).
        if let Ok(Some(st)) = self.child.try_wait() {
            self.status = Some(st);
            return;
        }
        self.signal("TERM");
        self.signal("CONT");
        let deadline = Instant::now() + DROP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
