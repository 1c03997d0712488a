//! Net-SNMP command-line tools (`snmpget`, `snmpwalk`, `snmptrap`...) as a reference client
//! and trap sender. Output is numeric (`-On`); no MIB files are loaded.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Credentials for the CLI tools.
#[derive(Clone, Debug)]
pub enum SnmpAuth {
    V2c {
        community: String,
    },
    /// USM authPriv.
    V3 {
        user: String,
        /// `MD5`, `SHA`, `SHA-256`...
        auth_proto: String,
        auth_pass: String,
        /// `DES`, `AES`...
        priv_proto: String,
        priv_pass: String,
    },
}

impl SnmpAuth {
    pub fn v2c(community: &str) -> SnmpAuth {
        SnmpAuth::V2c {
            community: community.to_string(),
        }
    }

    /// The tool arguments for these credentials (`-v2c -c X` or `-v3 -l authPriv ...`).
    pub fn args(&self) -> Vec<String> {
        match self {
            SnmpAuth::V2c { community } => vec!["-v2c".into(), "-c".into(), community.clone()],
            SnmpAuth::V3 {
                user,
                auth_proto,
                auth_pass,
                priv_proto,
                priv_pass,
            } => [
                "-v3", "-l", "authPriv", "-u", user, "-a", auth_proto, "-A", auth_pass, "-x",
                priv_proto, "-X", priv_pass,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }
}

/// Run a Net-SNMP tool (`snmpget`, `snmpbulkwalk`, `snmptrap`, ...) with `args`, killed
/// after 15 s. Returns stdout on exit status 0, else an error with stderr.
pub fn snmp_tool(tool: &str, args: &[String]) -> Result<String, String> {
    let bin = super::try_find_tool(tool)
        .ok_or_else(|| format!("`{tool}` not found: run tests/install-peers.sh"))?;
    let dir = std::env::temp_dir();
    let mut cmd = Command::new(&bin);
    cmd.args(args)
        // No MIB loading: numeric OIDs only, and no "Cannot find module" noise.
        .env("MIBS", "")
        .env("MIBDIRS", "/nonexistent")
        // Keep the tools away from root's ~/.snmp and /var/lib/snmp.
        .env("SNMP_PERSISTENT_DIR", dir.join("emspool-snmp-cli"))
        .env("SNMPCONFPATH", "/nonexistent")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("spawn {tool}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{tool} {args:?}: no exit within 15 s"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("wait {tool}: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{tool}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{tool} {}: {} {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            stdout.trim()
        ))
    }
}

/// GET one OID with `snmpget` (1 s timeout, 1 retry). Returns the value as the tool prints
/// it with `-Oqv`, surrounding double quotes removed (`emspool-snmpd`, `42`,
/// `.1.3.6.1.4.1.8072.3.2.10`, `0:0:00:00.48` for TimeTicks). `noSuchObject` and friends
/// are errors.
pub fn snmp_get(addr: SocketAddr, auth: &SnmpAuth, oid: &str) -> Result<String, String> {
    snmp_get_with(addr, auth, oid, Duration::from_secs(1), 1)
}

/// [`snmp_get`] with a chosen per-try timeout and number of retries.
pub fn snmp_get_with(
    addr: SocketAddr,
    auth: &SnmpAuth,
    oid: &str,
    timeout: Duration,
    retries: u32,
) -> Result<String, String> {
    let mut args = auth.args();
    args.extend([
        "-On".into(),
        "-Oqv".into(),
        "-t".into(),
        format!("{:.3}", timeout.as_secs_f64()),
        "-r".into(),
        retries.to_string(),
        format!("udp:{addr}"),
        oid.into(),
    ]);
    let out = snmp_tool("snmpget", &args)?;
    let v = out.trim();
    if v.starts_with("No Such") || v.starts_with("No more variables") {
        return Err(format!("{oid} at {addr}: {v}"));
    }
    Ok(v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .to_string())
}

/// Whether `oid` answers right now (one try, 300 ms): for readiness probes.
pub fn snmp_responds(addr: SocketAddr, auth: &SnmpAuth, oid: &str) -> bool {
    snmp_get_with(addr, auth, oid, Duration::from_millis(300), 0).is_ok()
}
