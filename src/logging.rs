//! Logging with `tracing`, to stderr.
//!
//! - Under systemd (stderr is the journal stream named by `$JOURNAL_STREAM`): one line per event
//!   with a `<N>` syslog priority prefix that journald turns into the entry's priority; no
//!   timestamps (journald adds them) and no colours.
//! - Otherwise `text` (timestamps; colours only on a terminal) or `json` (one object per line).
//!
//! The filter is `[server] log_level`, unless `RUST_LOG` is set: then `RUST_LOG` wins, also
//! over a level changed by a reload.

pub(crate) mod throttle;

use crate::config::LogFormat;
use std::io::IsTerminal;
use std::sync::OnceLock;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{self, FmtContext};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

struct Installed {
    filter: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` was set at start: it keeps precedence over the config's level.
    env_override: bool,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the global subscriber; a second call (or another subscriber) leaves it alone.
pub(crate) fn init(level: &str, format: LogFormat) {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let filter = env
        .as_deref()
        .and_then(|s| match EnvFilter::try_new(s) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("emspool: ignoring RUST_LOG: {e}");
                None
            }
        })
        .unwrap_or_else(|| EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")));
    let (filter, handle) = reload::Layer::new(filter);
    let journald = stderr_is_journal();
    type Boxed = Box<
        dyn Layer<tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>>
            + Send
            + Sync,
    >;
    let output: Boxed = match format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text if journald => fmt::layer()
            .with_ansi(false)
            .event_format(journald_format())
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    if tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok()
    {
        let _ = INSTALLED.set(Installed {
            filter: handle,
            env_override: env.is_some(),
        });
    }
}

/// What [`set_level`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LevelChange {
    Applied,
    /// `RUST_LOG` is set and wins.
    Overridden,
    /// No subscriber of ours is installed (library use, tests).
    NotInstalled,
}

/// Replaces the filter (a SIGHUP reload); `level` was validated with the config.
pub(crate) fn set_level(level: &str) -> Result<LevelChange, String> {
    let Some(installed) = INSTALLED.get() else {
        return Ok(LevelChange::NotInstalled);
    };
    if installed.env_override {
        return Ok(LevelChange::Overridden);
    }
    let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    installed.filter.reload(filter).map_err(|e| e.to_string())?;
    Ok(LevelChange::Applied)
}

/// systemd sets `JOURNAL_STREAM=<dev>:<inode>` for a service whose stderr is the journal; a
/// child that inherited the variable but writes elsewhere (a shell redirect) must not use the
/// journal format, hence the comparison with stderr's own device and inode.
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// `sd-daemon(3)` priority prefix for a level: error 3, warning 4, info 6, debug 7.
pub(crate) fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Prefixes another format's line with the event's `<N>` priority.
struct Journald<F>(F);

/// journald stamps time and takes the level from the `<N>` prefix: the line carries neither.
fn journald_format() -> Journald<fmt::format::Format<fmt::format::Full, ()>> {
    Journald(
        fmt::format()
            .without_time()
            .with_level(false)
            .with_ansi(false),
    )
}

impl<S, N, F> FormatEvent<S, N> for Journald<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_sd_daemon() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::DEBUG), 7);
        assert_eq!(syslog_priority(&Level::TRACE), 7);
    }

    #[test]
    fn level_validation() {
        assert!(crate::config::validate_level("info").is_ok());
        assert!(crate::config::validate_level("info,emspool=debug").is_ok());
        assert!(crate::config::validate_level("emspool=loud").is_err());
    }

    #[test]
    fn journald_format_has_priority_and_no_time() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::registry().with(
            fmt::layer()
                .with_ansi(false)
                .event_format(journald_format())
                .with_writer(move || out.clone()),
        );
        tracing::subscriber::with_default(sub, || {
            tracing::warn!("disk almost full");
            tracing::info!(element = "r1", "polled");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("<4>"), "{text}");
        assert!(lines[0].ends_with("disk almost full"), "{text}");
        assert!(lines[1].starts_with("<6>"), "{text}");
        assert!(lines[1].contains("element=\"r1\""), "{text}");
        assert!(!text.contains('\u{1b}'), "ANSI escapes: {text:?}");
        assert!(!text.contains("WARN"), "{text}");
    }
}
