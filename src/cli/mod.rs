//! The `emspool` command line: the server, the simulator, the demo and the client commands.
//! `main.rs` only sets the allocator up and calls [`main`].

mod certs;
mod client;
mod credentials;
mod demo;
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
        #[arg(long, default_value = "/etc/emspool/emspool.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file and exit.
    CheckConfig { file: PathBuf },
    /// Lab certificates for TLS and mutual TLS: a pool CA, member and client certificates.
    Certs {
        #[command(subcommand)]
        what: certs::CertsCommand,
    },
    /// The embedded default: simulated SNMP agents and a pool of servers on loopback.
    Demo(demo::DemoArgs),
    /// SNMP agent simulator on loopback ports (until SIGINT/SIGTERM).
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
        name: String,
        /// host:port of the agent.
        #[arg(long)]
        address: String,
        /// Credential profile name (the pool's: `emspool credentials list`).
        #[arg(long)]
        credential: String,
        #[arg(long, value_parser = humantime::parse_duration)]
        interval: Option<Duration>,
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
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List elements with owner and live state.
    Elements {
        name: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List active alarms.
    Alarms {
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
        id: u64,
        #[arg(long, default_value_t = default_user())]
        by: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Read the event log, newest first.
    Events {
        #[arg(long)]
        element: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        /// Unix ms, RFC 3339 time, or a duration ago such as 1h.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        conn: Conn,
    },
}

fn default_user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "cli".into())
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Table,
    Json,
}

/// How client commands reach the pool.
#[derive(Args)]
struct Conn {
    /// Server URL; repeat to give several (one is picked at random, the others are fallbacks).
    #[arg(long = "server", env = "EMSPOOL_SERVER", value_delimiter = ',')]
    servers: Vec<String>,
    /// Read [client] servers and token from this config file.
    #[arg(long)]
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
    #[arg(long, env = "EMSPOOL_KEY", requires = "cert")]
    key: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

impl Conn {
    fn client(&self) -> anyhow::Result<Client> {
        let mut servers = self.servers.clone();
        let mut token = self.token.clone().map(Secret::new);
        let mut ca = self.ca.clone();
        let mut identity = self.cert.clone().zip(self.key.clone());
        if let Some(path) = &self.config {
            let c = Config::load(path)?;
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
            interval,
            conn,
        } => {
            let mut body = serde_json::json!({
                "name": name, "address": address, "credential": credential,
            });
            if let Some(i) = interval {
                body["interval"] = humantime::format_duration(i).to_string().into();
            }
            // The element and the `applied` assignment id (null while only accepted).
            let e: serde_json::Value = conn.client()?.post("/api/v1/elements", body).await?;
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
                let v: crate::model::ElementView = client
                    .get(&format!("/api/v1/elements/{}", encode(&name)))
                    .await?;
                return if conn.output == Output::Json {
                    print_json(&v)
                } else {
                    print!("{}", render::elements(std::slice::from_ref(&v)));
                    Ok(())
                };
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
