//! SIGHUP: read the configuration file again and apply what may change at run time.

use super::notify;
use crate::api::AppState;
use crate::cluster::ClusterError;
use crate::config::Config;
use crate::logging;
use crate::model::{NewEvent, Severity};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::signal::unix::Signal;

pub(super) async fn on_hangup(
    mut hangups: Signal,
    path: PathBuf,
    mut running: Config,
    state: Arc<AppState>,
) {
    let status = format!(
        "server {} listening on http://{}",
        running.server.id, running.server.listen
    );
    while hangups.recv().await.is_some() {
        notify::reloading();
        let ok = match reload(&path, &mut running, &state) {
            Ok(summary) => {
                tracing::info!("configuration reloaded from {}: {summary}", path.display());
                state.events.append(NewEvent::now(
                    None,
                    "config.reloaded",
                    Severity::Info,
                    format!("configuration reloaded: {summary}"),
                ));
                true
            }
            Err(e) => {
                // One line naming the file, the key and the problem; secrets never appear.
                tracing::error!("configuration reload refused, running configuration kept: {e}");
                state.events.append(NewEvent::now(
                    None,
                    "config.reload_failed",
                    Severity::Warning,
                    format!("configuration reload refused: {e}"),
                ));
                false
            }
        };
        state.metrics.config_reloaded(ok);
        notify::ready(&status);
    }
}

/// Reads `path` again and applies what may change at run time: the inventory and the
/// credential profiles (`[[elements]]`, `[credentials.*]`: see `Cluster::reload_inventory`),
/// and `server.log_level`. Polls in progress go on. Other changed settings are reported as
/// needing a restart and stay as they run. Returns a summary for the log.
pub(crate) fn reload(
    path: &Path,
    running: &mut Config,
    state: &AppState,
) -> Result<String, crate::config::ConfigError> {
    let new = Config::load(path)?;
    let mut done = Vec::new();
    if new.elements != running.elements || new.credentials != running.credentials {
        // Profiles are the pool's now: the file seeds them like the inventory.
        match state
            .cluster
            .reload_inventory(new.elements.clone(), new.credentials.clone())
        {
            Ok((elements, profiles)) => {
                if profiles > 0 {
                    done.push(format!("{profiles} credential profile change(s)"));
                }
                done.push(format!(
                    "inventory ({elements} element change(s) from the file)"
                ));
            }
            Err(ClusterError::NotMaster) => done.push(
                "inventory (this server is not the master: the file's elements and credentials \
                 apply when it is)"
                    .to_owned(),
            ),
            Err(e) => done.push(format!("inventory not applied: {e}")),
        }
        running.elements = new.elements.clone();
        running.credentials = new.credentials.clone();
    }
    if new.server.log_level != running.server.log_level {
        match logging::set_level(&new.server.log_level) {
            Ok(logging::LevelChange::Overridden) => {
                done.push("log_level (RUST_LOG is set and wins)".to_owned())
            }
            Ok(_) => done.push(format!("log_level {:?}", new.server.log_level)),
            Err(e) => done.push(format!("log_level not applied: {e}")),
        }
        running.server.log_level = new.server.log_level.clone();
    }
    let restart: Vec<&str> = [
        ("server.id", new.server.id != running.server.id),
        ("server.listen", new.server.listen != running.server.listen),
        (
            "server.data_dir",
            new.server.data_dir != running.server.data_dir,
        ),
        (
            "server.log_format",
            new.server.log_format != running.server.log_format,
        ),
        (
            "server.tls_cert/tls_key",
            new.server.tls_cert != running.server.tls_cert
                || new.server.tls_key != running.server.tls_key,
        ),
        ("poll", new.poll != running.poll),
        ("events", new.events != running.events),
        ("api", new.api != running.api),
        ("pool", new.pool != running.pool),
        ("traps", new.traps != running.traps),
    ]
    .into_iter()
    .filter_map(|(k, changed)| changed.then_some(k))
    .collect();
    if !restart.is_empty() {
        tracing::warn!(
            "changed in {} but applied only at restart: {}",
            path.display(),
            restart.join(", ")
        );
        done.push(format!("needs a restart: {}", restart.join(", ")));
    }
    if done.is_empty() {
        done.push("nothing changed that applies at run time".to_owned());
    }
    Ok(done.join("; "))
}
