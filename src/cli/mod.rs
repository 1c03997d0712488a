//! The `emspool` command line: the server, the simulator, the demo and the client commands.
//! `main.rs` only sets the allocator up and calls [`main`].

mod certs;
mod client;
mod credentials;
mod demo;
mod detail;
mod render;

use crate::api::client::{AlarmsAnswer, ElementsAnswer, EventsAnswer};
use crate::config::{Config, Secret};
use crate::model::Alarm;
use crate::server;
use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use client::Client;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "emspool",
    version,
    about = "A pool of element management servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one server of the pool (the systemd service).
    Serve {
        /// The configuration file (TOML; see /etc/emspool/emspool.toml).
        #[arg(long, default_value = INSTALLED_CONFIG)]
        config: PathBuf,
    },
    /// Validate a configuration file and exit.
    CheckConfig {
        /// The configuration file to check, e.g. /etc/emspool/emspool.toml.
        file: PathBuf,
    },
    /// Lab certificates for TLS and mutual TLS: a pool CA, member and client certificates.
    Certs {
        #[command(subcommand)]
        what: certs::CertsCommand,
    },
    /// The embedded default: simulated SNMP agents and a pool of servers on loopback.
    Demo(demo::DemoArgs),
    /// SNMP agent simulator on loopback ports (until SIGINT/SIGTERM).
    #[command(visible_alias = "sim")]
    Simulate(crate::sim::SimArgs),
    /// Show the pool: members, liveness, master, term, elements per member.
    Status {
        #[command(flatten)]
        conn: Conn,
    },
    /// Draw the pool: servers and the elements each one manages.
    View {
        /// Build it from the persisted assignment and event logs instead of live memory.
        #[arg(long)]
        from_db: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Add an element to the pool's inventory (the master assigns it).
    Add {
        /// Element name: 1-128 letters, digits, '-', '_' or '.'.
        name: String,
        /// host:port of the SNMP agent (UDP, usually 161) or NETCONF server (SSH, usually 830).
        #[arg(long)]
        address: String,
        /// Credential profile name, one of the pool's (`emspool credentials list`): an SNMP
        /// profile for snmp, a version = "netconf" profile for netconf.
        #[arg(long)]
        credential: String,
        /// How the element is polled.
        #[arg(long, value_enum, default_value = "snmp")]
        protocol: ProtocolArg,
        /// Poll interval of this element, e.g. 30s (default: [poll] interval).
        #[arg(long, value_parser = humantime::parse_duration)]
        interval: Option<Duration>,
        /// Keep the element on this server (a member id); it moves only while that one is dead.
        #[arg(long)]
        pin: Option<u32>,
        #[command(flatten)]
        conn: Conn,
    },
    /// The pool's credential profiles: list (never the secrets), set, remove.
    Credentials {
        #[command(subcommand)]
        what: credentials::CredentialsCommand,
    },
    /// Remove an element from the pool's inventory.
    Remove {
        /// The element's name.
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List elements with owner and live state; with NAME, one element in full (interfaces,
    /// alarms, owner, last poll).
    Elements {
        /// Show this element only, with its interfaces and active alarms.
        name: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List active alarms.
    Alarms {
        /// Only this element's alarms.
        #[arg(long)]
        element: Option<String>,
        /// Least severe level to show (critical, major, minor, warning, indeterminate).
        #[arg(long)]
        severity: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Acknowledge an alarm.
    Ack {
        /// The alarm id (ID column of `emspool alarms`).
        id: u64,
        /// Who acknowledges (default: $USER).
        #[arg(long, default_value_t = default_user())]
        by: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Read the event log, newest first.
    Events {
        /// Only this element's events.
        #[arg(long)]
        element: Option<String>,
        /// Event kind, exact (element.state) or a prefix with `.*` (alarm.*).
        #[arg(long)]
        kind: Option<String>,
        /// Unix ms, RFC 3339 time, or a duration ago such as 1h.
        #[arg(long)]
        since: Option<String>,
        /// Unix ms, RFC 3339 time, or a duration ago such as 15m.
        #[arg(long)]
        until: Option<String>,
        /// At most this many events, newest first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        conn: Conn,
    },
}

fn default_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "cli".into())
}

/// Where the package installs the configuration; the client commands read its `[client]`
/// when neither `--server` nor `--config` (or their variables) says otherwise.
const INSTALLED_CONFIG: &str = "/etc/emspool/emspool.toml";

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    /// Human-readable tables.
    Table,
    /// The API's JSON answer, for scripts.
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ProtocolArg {
    /// SNMP v2c/v3 over UDP.
    Snmp,
    /// NETCONF over SSH (RFC 6242).
    Netconf,
}

/// How client commands reach the pool.
#[derive(Args)]
struct Conn {
    /// Server URL; repeat to give several (one is picked at random, the others are fallbacks).
    #[arg(long = "server", env = "EMSPOOL_SERVER", value_delimiter = ',')]
    servers: Vec<String>,
    /// Read [client] servers, token, ca, cert and key from this config file (default:
    /// /etc/emspool/emspool.toml when it exists and no --server is given).
    #[arg(long, env = "EMSPOOL_CONFIG")]
    config: Option<PathBuf>,
    /// API token (or EMSPOOL_TOKEN).
    #[arg(long, env = "EMSPOOL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM CA to trust for https servers (or [client] ca; default: the system's roots).
    #[arg(long, env = "EMSPOOL_CA")]
    ca: Option<PathBuf>,
    /// PEM client certificate and key, for pools with client_auth = "required".
    #[arg(long, env = "EMSPOOL_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, env = "EMSPOOL_KEY", requires = "cert")]
    key: Option<PathBuf>,
    /// How to print the answer.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    /// Per request to one server (the next one is tried after it).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// The config whose `[client]` a client command reads: the one given (`--config` or
/// `EMSPOOL_CONFIG`), else `installed` when it exists and no server was given.
fn client_config(
    given: Option<&std::path::Path>,
    servers_given: bool,
    installed: &std::path::Path,
) -> Option<PathBuf> {
    match given {
        Some(p) => Some(p.to_path_buf()),
        None if !servers_given && installed.exists() => Some(installed.to_path_buf()),
        None => None,
    }
}

impl Conn {
    fn client(&self) -> anyhow::Result<Client> {
        let mut servers = self.servers.clone();
        let mut token = self.token.clone().map(Secret::new);
        let mut ca = self.ca.clone();
        let mut identity = self.cert.clone().zip(self.key.clone());
        let installed = std::path::Path::new(INSTALLED_CONFIG);
        if let Some(path) = client_config(self.config.as_deref(), !servers.is_empty(), installed) {
            let c = Config::load(&path)?;
            if servers.is_empty() {
                servers = c.client.servers.clone();
            }
            if token.is_none() {
                token = c.client.token.clone();
            }
            if ca.is_none() {
                ca = c.client.ca.clone();
            }
            if identity.is_none() {
                identity = c.client.cert.clone().zip(c.client.key.clone());
            }
        }
        let tls = crate::tls::ClientTls {
            ca: ca.as_deref(),
            identity: identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        };
        Ok(Client::new(servers, token, self.timeout, &tls)?)
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let cfg = Config::load(&config)?;
            crate::logging::init(&cfg.server.log_level, cfg.server.log_format);
            server::serve_file(config, cfg, server::signal()).await
        }
        Command::Demo(args) => {
            init_logging("warn");
            demo::run(args, server::signal()).await
        }
        Command::Simulate(args) => {
            init_logging("info");
            crate::sim::run(args, server::signal()).await
        }
        Command::Certs { what } => certs::run(what),
        Command::Credentials { what } => credentials::run(what).await,
        Command::CheckConfig { file } => {
            let c = Config::load(&file)?;
            for w in crate::config::hidden_from_unit(&c) {
                eprintln!("emspool: warning: {w}");
            }
            println!(
                "{}: ok (server {}, {} element(s), {} credential profile(s))",
                file.display(),
                c.server.id,
                c.elements.len(),
                c.credentials.len()
            );
            Ok(())
        }
        Command::Status { conn } => {
            let v: crate::cluster::PoolView = conn.client()?.get("/api/v1/pool").await?;
            if conn.output == Output::Json {
                return print_json(&v);
            }
            print!("{}", render::pool(&v));
            Ok(())
        }
        Command::View { from_db, conn } => {
            let path = if from_db {
                "/api/v1/view?source=db"
            } else {
                "/api/v1/view"
            };
            let v: crate::api::view::ViewAnswer = conn.client()?.get(path).await?;
            if conn.output == Output::Json {
                return print_json(&v);
            }
            print!("{}", render::view(&v));
            Ok(())
        }
        Command::Add {
            name,
            address,
            credential,
            protocol,
            interval,
            pin,
            conn,
        } => {
            let protocol = match protocol {
                ProtocolArg::Snmp => "snmp",
                ProtocolArg::Netconf => "netconf",
            };
            let mut body = serde_json::json!({
                "name": name, "address": address, "credential": credential,
                "protocol": protocol,
            });
            if let Some(i) = interval {
                body["interval"] = humantime::format_duration(i).to_string().into();
            }
            if let Some(p) = pin {
                body["pin"] = p.into();
            }
            // The element and the `applied` assignment id (null while only accepted).
            let e: serde_json::Value = conn.client()?.post("/api/v1/elements", body).await?;
            if conn.output == Output::Json {
                return print_json(&e);
            }
            match e["applied"].as_object() {
                Some(_) => println!("element {} added", name),
                None => println!("element {} added (accepted, not yet distributed)", name),
            }
            Ok(())
        }
        Command::Remove { name, conn } => {
            conn.client()?
                .delete_empty(&format!("/api/v1/elements/{}", encode(&name)))
                .await?;
            println!("element {name} removed");
            Ok(())
        }
        Command::Elements { name, conn } => {
            let client = conn.client()?;
            if let Some(name) = name {
                let view: crate::model::ElementView = client
                    .get(&format!("/api/v1/elements/{}", encode(&name)))
                    .await?;
                let a: AlarmsAnswer = client
                    .get(&format!("/api/v1/alarms?element={}", encode(&name)))
                    .await?;
                let d = detail::Detail {
                    view,
                    alarms: a.alarms,
                    alarms_missing: a.missing,
                };
                if conn.output == Output::Json {
                    return print_json(&d);
                }
                print!("{}", detail::text(&d));
                return Ok(());
            }
            let a: ElementsAnswer = client.get("/api/v1/elements").await?;
            if conn.output == Output::Json {
                return print_json(&a);
            }
            print!("{}", render::elements(&a.elements));
            print!("{}", render::partial_note(a.partial, &a.missing));
            Ok(())
        }
        Command::Alarms {
            element,
            severity,
            conn,
        } => {
            let q = query_string(&[("element", element), ("severity", severity)]);
            let a: AlarmsAnswer = conn.client()?.get(&format!("/api/v1/alarms{q}")).await?;
            if conn.output == Output::Json {
                return print_json(&a);
            }
            print!("{}", render::alarms(&a.alarms));
            print!("{}", render::partial_note(a.partial, &a.missing));
            Ok(())
        }
        Command::Ack { id, by, conn } => {
            let a: Alarm = conn
                .client()?
                .post(
                    &format!("/api/v1/alarms/{id}/ack"),
                    serde_json::json!({ "by": by }),
                )
                .await?;
            if conn.output == Output::Json {
                return print_json(&a);
            }
            println!("alarm {} ({}) acknowledged by {by}", a.id, a.key);
            Ok(())
        }
        Command::Events {
            element,
            kind,
            since,
            until,
            limit,
            conn,
        } => {
            let q = query_string(&[
                ("element", element),
                ("kind", kind),
                ("since", since),
                ("until", until),
                ("limit", Some(limit.to_string())),
            ]);
            let a: EventsAnswer = conn.client()?.get(&format!("/api/v1/events{q}")).await?;
            if conn.output == Output::Json {
                return print_json(&a);
            }
            print!("{}", render::events(&a.events));
            print!("{}", render::partial_note(a.partial, &a.missing));
            Ok(())
        }
    }
}

/// Logging for the commands other than `serve` (plain text on stderr); `demo` and `simulate`
/// call it on their branches.
#[allow(dead_code)]
fn init_logging(level: &str) {
    crate::logging::init(level, crate::config::LogFormat::Text);
}

/// Parses the command line and runs the command; the exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new().context("cannot start the async runtime") {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("emspool: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(cli));
    // Dropping a runtime waits for every blocking task without a bound: one getaddrinfo
    // behind a name server that never answers (reqwest resolves member URLs that way) made a
    // SIGTERM take 47 s. What is still blocked after this is abandoned; the work is done.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("emspool: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every subcommand says what it is in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "emspool", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn client_commands_read_the_installed_config_unless_told_otherwise() {
        let dir = crate::support::TempDir::new("cli-config").expect("tempdir");
        let installed = dir.path().join("emspool.toml");
        let given = dir.path().join("other.toml");
        // Not installed: nothing to read.
        assert_eq!(client_config(None, false, &installed), None);
        std::fs::write(&installed, "").expect("write");
        assert_eq!(
            client_config(None, false, &installed),
            Some(installed.clone())
        );
        // --server given: the installed file is not needed (and may be unreadable).
        assert_eq!(client_config(None, true, &installed), None);
        // --config / EMSPOOL_CONFIG always wins.
        assert_eq!(
            client_config(Some(&given), true, &installed),
            Some(given.clone())
        );
    }

    #[test]
    fn emspool_config_names_the_client_config() {
        let cli =
            Cli::try_parse_from(["emspool", "status", "--config", "/x/e.toml"]).expect("parse");
        let Command::Status { conn } = cli.command else {
            panic!("not status")
        };
        assert_eq!(
            conn.config.as_deref(),
            Some(std::path::Path::new("/x/e.toml"))
        );
        let a = Cli::command();
        let status = a.find_subcommand("status").expect("status");
        let config = status
            .get_arguments()
            .find(|a| a.get_id() == "config")
            .expect("--config");
        assert_eq!(
            config.get_env().and_then(|e| e.to_str()),
            Some("EMSPOOL_CONFIG")
        );
    }
}
