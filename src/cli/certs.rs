//! `emspool certs`: a lab pool CA and its member and client certificates, as PEM files.
//! Keys are written mode 0600 and nothing is overwritten.

use crate::tls::certs::{Leaf, Pem, new_ca, new_leaf};
use anyhow::Context;
use clap::Subcommand;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub(crate) enum CertsCommand {
    /// Create a pool CA: DIR/ca.pem (give it to every member as [pool] ca and to clients as
    /// [client] ca) and DIR/ca.key (keep it off the servers).
    Ca {
        /// Directory to write ca.pem and ca.key into (created if missing).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The CA certificate's subject common name.
        #[arg(long, default_value = "emspool pool CA")]
        name: String,
    },
    /// Create DIR/member-ID.pem and .key, signed by DIR/ca.pem: the member id in a SAN URI
    /// (urn:emspool:member:ID), each --host (the host of its member URL) as a SAN.
    Member {
        /// The member's [server] id (bound in the certificate: it speaks for that member).
        #[arg(long)]
        id: u32,
        /// Host name or IP address in the member's URL; repeat for several.
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Directory holding ca.pem and ca.key; the member's files are written there.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Create DIR/client-NAME.pem and .key, signed by DIR/ca.pem, for a CLI of a pool with
    /// client_auth = "required".
    Client {
        /// The client's name (letters, digits, '-', '_' or '.'), its certificate's subject.
        #[arg(long)]
        name: String,
        /// Directory holding ca.pem and ca.key; the client's files are written there.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

pub(crate) fn run(cmd: CertsCommand) -> anyhow::Result<()> {
    match cmd {
        CertsCommand::Ca { dir, name } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let ca = new_ca(&name)?;
            write_pair(&dir, "ca", &ca)
        }
        CertsCommand::Member { id, hosts, dir } => {
            let ca = read_ca(&dir)?;
            let leaf = new_leaf(&ca, Leaf::Member { id, hosts: &hosts })?;
            write_pair(&dir, &format!("member-{id}"), &leaf)
        }
        CertsCommand::Client { name, dir } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                anyhow::bail!("--name: letters, digits, '-', '_' or '.'");
            }
            let ca = read_ca(&dir)?;
            let leaf = new_leaf(&ca, Leaf::Client { name: &name })?;
            write_pair(&dir, &format!("client-{name}"), &leaf)
        }
    }
}

fn read_ca(dir: &Path) -> anyhow::Result<Pem> {
    let read = |f: &str| {
        let p = dir.join(f);
        std::fs::read_to_string(&p)
            .with_context(|| format!("cannot read {} (run `emspool certs ca` first)", p.display()))
    };
    Ok(Pem {
        cert: read("ca.pem")?,
        key: read("ca.key")?,
    })
}

fn write_pair(dir: &Path, stem: &str, pem: &Pem) -> anyhow::Result<()> {
    let cert = dir.join(format!("{stem}.pem"));
    let key = dir.join(format!("{stem}.key"));
    for p in [&cert, &key] {
        if p.exists() {
            anyhow::bail!("{} exists; not overwritten", p.display());
        }
    }
    write_new(&key, pem.key.as_bytes(), 0o600)?;
    write_new(&cert, pem.cert.as_bytes(), 0o644)?;
    println!("wrote {} and {}", cert.display(), key.display());
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
