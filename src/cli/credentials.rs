//! `emspool credentials list|set|remove`: the pool's credential profiles. Secrets are read
//! from the environment or from a file, never from the command line (where `ps` shows them),
//! and never printed: the API does not return them.

use super::{Conn, Output, default_user, encode, print_json, render};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum CredentialsCommand {
    /// List the pool's profiles (what they are; which secrets they hold, not their values).
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Add or replace a profile for the whole pool; every member uses it at its next poll.
    Set(SetArgs),
    /// Remove a profile (refused while an element uses it).
    Remove {
        /// The profile's name.
        name: String,
        /// Who removes it, for the `credential.removed` event.
        #[arg(long, default_value_t = default_user())]
        by: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Args)]
pub(crate) struct SetArgs {
    /// The profile's name, as elements name it (`credential = NAME`).
    name: String,
    /// A TOML file with the profile's keys, as under [credentials.NAME] in the config
    /// (`-` for standard input). Without it, the flags below describe the profile.
    #[arg(long, conflicts_with_all = ["version", "user"])]
    file: Option<PathBuf>,
    /// v2c, v3 or netconf.
    #[arg(long)]
    version: Option<String>,
    /// v3: the USM user name; netconf: the SSH user.
    #[arg(long)]
    user: Option<String>,
    /// md5, sha, sha224, sha256, sha384, sha512.
    #[arg(long)]
    auth_protocol: Option<String>,
    /// des, aes, aes192, aes256.
    #[arg(long)]
    priv_protocol: Option<String>,
    /// NETCONF: OpenSSH known_hosts file (on every member).
    #[arg(long)]
    known_hosts: Option<PathBuf>,
    /// NETCONF: the host key's SHA-256 fingerprint (`SHA256:...`).
    #[arg(long)]
    host_key_sha256: Option<String>,
    /// NETCONF: accept any host key (labs only).
    #[arg(long)]
    insecure_accept_any_host_key: bool,
    /// NETCONF: private key file (on every member).
    #[arg(long)]
    private_key: Option<PathBuf>,
    /// Who sets it, for the `credential.set` event.
    #[arg(long, default_value_t = default_user())]
    by: String,
    #[command(flatten)]
    conn: Conn,
}

/// The secrets a profile may hold, and the environment variable each is read from.
const SECRETS: &[(&str, &str)] = &[
    ("community", "EMSPOOL_COMMUNITY"),
    ("auth_password", "EMSPOOL_AUTH_PASSWORD"),
    ("priv_password", "EMSPOOL_PRIV_PASSWORD"),
    ("password", "EMSPOOL_PASSWORD"),
    ("private_key_passphrase", "EMSPOOL_PRIVATE_KEY_PASSPHRASE"),
];

impl SetArgs {
    fn body(&self) -> anyhow::Result<serde_json::Value> {
        if let Some(path) = &self.file {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?
            };
            // toml's messages quote the offending line, which may hold a secret.
            let v: toml::Value = toml::from_str(&text).map_err(|e| {
                anyhow::anyhow!("{}: not a TOML profile (at {:?})", path.display(), e.span())
            })?;
            return serde_json::to_value(v).context("profile");
        }
        let Some(version) = &self.version else {
            anyhow::bail!("give --version (v2c, v3, netconf) or --file");
        };
        let mut m = serde_json::Map::new();
        m.insert("version".into(), version.clone().into());
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.into(), v.into());
            }
        };
        put("user", self.user.clone());
        put("auth_protocol", self.auth_protocol.clone());
        put("priv_protocol", self.priv_protocol.clone());
        put(
            "known_hosts",
            self.known_hosts.as_ref().map(|p| p.display().to_string()),
        );
        put("host_key_sha256", self.host_key_sha256.clone());
        put(
            "private_key",
            self.private_key.as_ref().map(|p| p.display().to_string()),
        );
        for (key, var) in SECRETS {
            put(key, std::env::var(var).ok().filter(|v| !v.is_empty()));
        }
        if self.insecure_accept_any_host_key {
            m.insert("insecure_accept_any_host_key".into(), true.into());
        }
        Ok(serde_json::Value::Object(m))
    }
}

pub(crate) async fn run(cmd: CredentialsCommand) -> anyhow::Result<()> {
    match cmd {
        CredentialsCommand::List { conn } => {
            let v: serde_json::Value = conn.client()?.get("/api/v1/credentials").await?;
            if conn.output == Output::Json {
                return print_json(&v);
            }
            let rows: Vec<Vec<String>> = v["credentials"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or("-").to_owned();
                    let secrets: Vec<&str> = c["secrets"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect();
                    vec![
                        s("name"),
                        s("version"),
                        s("user"),
                        s("auth_protocol"),
                        s("priv_protocol"),
                        s("host_key_check"),
                        secrets.join(","),
                    ]
                })
                .collect();
            print!(
                "{}",
                render::table(
                    &[
                        "NAME",
                        "VERSION",
                        "USER",
                        "AUTH",
                        "PRIV",
                        "HOST KEY",
                        "SECRETS SET"
                    ],
                    &rows
                )
            );
            Ok(())
        }
        CredentialsCommand::Set(args) => {
            let body = args.body()?;
            let path = format!("/api/v1/credentials/{}", encode(&args.name));
            let v: serde_json::Value = args.conn.client()?.put_by(&path, body, &args.by).await?;
            match v["applied"].as_object() {
                Some(_) => println!("credential profile {} set", args.name),
                None => println!(
                    "credential profile {} set (accepted, not yet distributed)",
                    args.name
                ),
            }
            Ok(())
        }
        CredentialsCommand::Remove { name, by, conn } => {
            let path = format!("/api/v1/credentials/{}", encode(&name));
            conn.client()?.delete_by(&path, &by).await?;
            println!("credential profile {name} removed");
            Ok(())
        }
    }
}
