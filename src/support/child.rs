//! A child process that is always stopped (tests and benches).

use super::{file_tail, signal_pid};
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Grace between SIGTERM and SIGKILL when a guard is dropped.
const DROP_GRACE: Duration = Duration::from_secs(3);
/// Grace between SIGTERM and SIGKILL for [`ChildGuard::terminate`].
const TERMINATE_GRACE: Duration = Duration::from_secs(10);
/// The raw wait status of a process killed by SIGKILL.
const KILLED: i32 = 9;

/// A spawned process whose stdout/stderr go to `<name>.stdout` / `<name>.stderr` in a log
/// dir. On drop (also when a test panics) it gets SIGTERM, then SIGKILL after a grace period,
/// and is reaped.
///
/// Signals go only to the PID this guard spawned, and only while that child has not been
/// reaped (so the PID cannot have been reused by another process).
#[derive(Debug)]
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
    /// Spawns `cmd` with stdin from /dev/null and stdout/stderr to files in `log_dir`.
    pub fn spawn(name: &str, cmd: Command, log_dir: &Path) -> io::Result<ChildGuard> {
        ChildGuard::spawn_with(name, cmd, log_dir, false)
    }

    /// Like [`ChildGuard::spawn`], but stdout is a pipe for [`ChildGuard::wait_line`].
    pub fn spawn_piped(name: &str, cmd: Command, log_dir: &Path) -> io::Result<ChildGuard> {
        ChildGuard::spawn_with(name, cmd, log_dir, true)
    }

    fn spawn_with(name: &str, mut cmd: Command, dir: &Path, piped: bool) -> io::Result<Self> {
        let stdout_log = dir.join(format!("{name}.stdout"));
        let stderr_log = dir.join(format!("{name}.stderr"));
        let create = |p: &Path| {
            File::create(p)
                .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", p.display())))
        };
        let out = if piped {
            Stdio::piped()
        } else {
            create(&stdout_log)?.into()
        };
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(create(&stderr_log)?);
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawn {name} ({cmd:?}): {e}")))?;
        Ok(ChildGuard {
            name: name.to_string(),
            pid: child.id(),
            child,
            status: None,
            stdout_log,
            stderr_log,
            extra_logs: Vec::new(),
        })
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
            // An error means it is not our unreaped child any more: nothing to wait for.
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Waits up to `timeout` for it to exit on its own.
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

    /// Waits up to `timeout` for a stdout line containing `needle` (the child must have been
    /// started by [`ChildGuard::spawn_piped`]; lines after it are no longer read).
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let out = self.child.stdout.take().ok_or("stdout not piped")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(_) => {}
                Err(_) => {
                    return Err(format!(
                        "{}: no line with {needle:?} within {timeout:?}:\n{}",
                        self.name,
                        self.log_tail_lines(20)
                    ));
                }
            }
        }
    }

    /// Sends a signal by name (`"TERM"`, `"INT"`, `"HUP"`, `"STOP"`, `"CONT"`, `"KILL"`...).
    /// Returns false (and sends nothing) when the child has already exited.
    pub fn signal(&mut self, sig: &str) -> bool {
        // Checked right before: the PID is still our unreaped child.
        self.try_wait().is_none() && signal_pid(self.pid, sig)
    }

    /// SIGTERM, then waits for it to exit (SIGKILL after 10 s). Returns its exit status: use
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
            "[support] {} (pid {}) ignored SIGTERM for {grace:?}: SIGKILL",
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
        // wait() fails only for a child already reaped, which try_wait above rules out.
        let st = self
            .child
            .wait()
            .unwrap_or_else(|_| ExitStatus::from_raw(KILLED));
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
            .filter(|p| p.exists())
        {
            let tail = file_tail(p, lines);
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
