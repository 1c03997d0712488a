//! Pool-wide credential profiles (set through the API or the CLI, replicated with the
//! inventory) and the `CredentialRejected` alarm, against real peers: Net-SNMP's snmpd with
//! its v3 user, and netconfd behind a private sshd.

use crate::common;

use common::emspool::Emspool;
use common::pool::Pool;
use common::{Netconfd, Snmpd, wait_until};
use std::process::Command;
use std::time::Duration;

const TIMINGS: &str =
    "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"";
const POLL: &str = "[poll]\ninterval = \"1s\"\ntimeout = \"400ms\"\nretries = 0\n\n\
                    [credentials.public]\nversion = \"v2c\"\ncommunity = \"public\"\n";

/// The v3 profile of the test snmpd, as the API takes it, with `auth` as auth password.
fn v3_profile(auth: &str) -> String {
    serde_json::json!({
        "version": "v3",
        "user": Snmpd::V3_USER,
        "auth_protocol": "sha",
        "auth_password": auth,
        "priv_protocol": "aes",
        "priv_password": Snmpd::V3_PRIV_PASS,
    })
    .to_string()
}

/// No secret of these tests in `text` (an API answer, CLI output, events).
fn assert_no_secret(text: &str, what: &str) {
    for s in [
        Snmpd::V3_AUTH_PASS,
        Snmpd::V3_PRIV_PASS,
        "wrong-auth-pass",
        "not-the-password",
        common::NETCONF_PASSWORD,
    ] {
        assert!(!text.contains(s), "{what} shows a secret ({s}): {text}");
    }
}

/// A change through member `id`, sent again while the pool answers 503 (electing, or a new
/// master that has not made its first assignment yet: "not accepted, try again").
fn change(pool: &Pool, id: u32, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        let r = pool.server(id).raw(method, path, body);
        (r.0 != 503).then_some(r)
    })
    .unwrap_or_else(|e| panic!("{method} {path} through server {id}: {e}"))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn wait_up_on(pool: &Pool, via: u32, name: &str, not_owner: Option<u64>) -> u64 {
    wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        let v = pool.server(via).element(name)?;
        let o = v["owner"].as_u64()?;
        (v["status"]["state"] == "up" && Some(o) != not_owner).then_some(o)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{name} not up through server {via}: {e}\n{:?}\n{}",
            pool.server(via).element(name),
            pool.server(via).log_tail()
        )
    })
}

#[test]
fn a_credential_set_through_one_member_follows_its_element_and_survives_restarts() {
    let snmpd = Snmpd::start();
    let mut pool = Pool::start(3, POLL, TIMINGS);
    wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
        pool.agrees(3, &[]).then_some(())
    })
    .expect("pool agrees on server 3 as master");

    // An element naming a profile the pool does not know is refused, by name.
    let element = serde_json::json!({
        "name": "snmpd-v3", "address": snmpd.addr().to_string(), "credential": "lab-v3",
    })
    .to_string();
    let (code, text) = change(&pool, 1, "POST", "/api/v1/elements", Some(&element));
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("no credential profile named \\\"lab-v3\\\""),
        "{text}"
    );

    // The profile through member 1 (not the master), then the element through member 1.
    let (code, text) = change(
        &pool,
        1,
        "PUT",
        "/api/v1/credentials/lab-v3",
        Some(&v3_profile(Snmpd::V3_AUTH_PASS)),
    );
    assert!(code == 201 || code == 202, "{code} {text}");
    assert_no_secret(&text, "the PUT answer");
    let (code, text) = change(&pool, 1, "POST", "/api/v1/elements", Some(&element));
    assert!(code == 201 || code == 202, "{code} {text}");
    let first = wait_up_on(&pool, 1, "snmpd-v3", None);

    // Every member lists it, without secrets, in the raw JSON and in the CLI's table.
    for id in 1..=3 {
        let (code, raw) = pool.server(id).raw("GET", "/api/v1/credentials", None);
        assert_eq!(code, 200, "{raw}");
        assert_no_secret(&raw, "GET /api/v1/credentials");
        let v: serde_json::Value = serde_json::from_str(&raw).expect("json");
        let p = v["credentials"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == "lab-v3").cloned())
            .unwrap_or_else(|| panic!("server {id} lacks lab-v3: {raw}"));
        assert_eq!(p["user"], Snmpd::V3_USER, "{p}");
        assert_eq!(
            p["secrets"],
            serde_json::json!(["auth_password", "priv_password"])
        );
    }
    let table = pool.server(2).cli(&["credentials", "list"]);
    assert!(
        table.contains("lab-v3") && table.contains("authuser"),
        "{table}"
    );
    assert_no_secret(&table, "emspool credentials list");
    let json = pool
        .server(2)
        .cli(&["credentials", "list", "--output", "json"]);
    assert_no_secret(&json, "emspool credentials list --output json");

    // The owner dies: another member takes the element over and polls it up with the
    // profile it only ever got from the pool.
    pool.server_mut(first as u32).kill9();
    let via = if first == 1 { 2 } else { 1 };
    let second = wait_up_on(&pool, via, "snmpd-v3", Some(first));
    assert_ne!(second, first);

    // Every member restarts: the profile is still the pool's, and used.
    pool.server_mut(first as u32).spawn();
    for s in &mut pool.servers {
        if s.is_running() {
            let st = s.terminate();
            assert!(st.success(), "{st:?}");
        }
    }
    for s in &mut pool.servers {
        s.spawn();
    }
    wait_up_on(&pool, 2, "snmpd-v3", None);
    let (_, raw) = pool.server(3).raw("GET", "/api/v1/credentials", None);
    assert!(raw.contains("\"lab-v3\""), "{raw}");
    assert_no_secret(&raw, "GET /api/v1/credentials after restarts");

    // Nothing a member wrote (its redb file with the persisted assignment and journal, its
    // log at debug level) holds a secret in the clear.
    for (i, s) in pool.servers.iter().enumerate() {
        let files = files_under(s.dir.path());
        assert!(
            files.iter().any(|f| f.ends_with("emspool.redb")),
            "server {}: no redb file in {files:?}",
            i + 1
        );
        for f in files {
            let Ok(bytes) = std::fs::read(&f) else {
                continue;
            };
            for secret in [Snmpd::V3_AUTH_PASS, Snmpd::V3_PRIV_PASS] {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "server {}: {} holds {secret}",
                    i + 1,
                    f.display()
                );
            }
        }
    }

    // Who changed what is in the events (of the member that took the request, back now),
    // never the secret.
    // Server 1 may not answer the fan-out yet just after its restart (`partial`): ask again.
    let want = "credential profile lab-v3 (v3, user authuser) set by api (from 127.0.0.1 through server 1)";
    let mut text = String::new();
    let found = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        text = pool
            .server(via)
            .get("/api/v1/events?kind=credential.set&limit=100")
            .to_string();
        text.contains(want).then_some(())
    });
    assert!(found.is_ok(), "{want:?} not in {text}");
    assert_no_secret(&text, "events");

    // A profile in use cannot be removed; once unused it can, and lists no more. (Just after
    // the restarts the pool may still be electing: 503 says "not accepted, try again".)
    let (code, text) = change(&pool, 2, "DELETE", "/api/v1/credentials/lab-v3", None);
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("snmpd-v3"), "{text}");
    let (code, text) = change(&pool, 2, "DELETE", "/api/v1/elements/snmpd-v3", None);
    assert!(code == 204 || code == 202, "{code} {text}");
    let (code, text) = change(&pool, 2, "DELETE", "/api/v1/credentials/lab-v3", None);
    assert!(code == 204 || code == 202, "{code} {text}");
    wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let (_, raw) = pool.server(1).raw("GET", "/api/v1/credentials", None);
        (!raw.contains("lab-v3")).then_some(())
    })
    .expect("lab-v3 gone from server 1");
    // Written by server 2 (group-committed): asked through server 1 until it is there.
    let mut removed = String::new();
    let found = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        removed = pool
            .server(1)
            .get("/api/v1/events?kind=credential.removed&limit=100")
            .to_string();
        removed
            .contains("credential profile lab-v3 removed by api")
            .then_some(())
    });
    assert!(found.is_ok(), "no credential.removed event: {removed}");
}

fn has_alarm(e: &Emspool, key: &str) -> bool {
    e.alarms().iter().any(|a| a["key"] == key)
}

fn wait_alarm(e: &Emspool, key: &str, present: bool) {
    wait_until(Duration::from_secs(15), Duration::from_millis(200), || {
        (has_alarm(e, key) == present).then_some(())
    })
    .unwrap_or_else(|err| {
        panic!(
            "alarm {key} {}: {err}\n{:?}\n{}",
            if present { "not raised" } else { "not cleared" },
            e.alarms(),
            e.log_tail()
        )
    });
}

#[test]
fn a_wrong_v3_password_raises_credential_rejected_until_the_cli_corrects_it() {
    let snmpd = Snmpd::start();
    let config = format!(
        "[poll]\ninterval = \"1s\"\ntimeout = \"400ms\"\nretries = 0\n\n\
         [credentials.v3]\nversion = \"v3\"\nuser = \"{user}\"\nauth_protocol = \"sha\"\n\
         auth_password = \"wrong-auth-pass\"\npriv_protocol = \"aes\"\n\
         priv_password = \"{pp}\"\n\n\
         [[elements]]\nname = \"snmpd-v3\"\naddress = \"{addr}\"\ncredential = \"v3\"\n",
        user = Snmpd::V3_USER,
        pp = Snmpd::V3_PRIV_PASS,
        addr = snmpd.addr(),
    );
    let ems = Emspool::start(1, &config);
    wait_alarm(&ems, "CredentialRejected:snmpd-v3", true);
    let a = ems.alarm("CredentialRejected:snmpd-v3").expect("alarm");
    assert_eq!(a["severity"], "major", "{a}");
    assert!(
        a["text"]
            .as_str()
            .is_some_and(|t| t.contains("authentication")),
        "{a}"
    );
    assert_no_secret(&a.to_string(), "the alarm");
    assert_eq!(ems.state("snmpd-v3").as_deref(), Some("unknown"));
    assert!(
        !has_alarm(&ems, "NodeDown:snmpd-v3"),
        "it answered: not down"
    );

    // Refused bodies do not echo what they were given.
    for body in [
        r#"{"version":"v3","user":"authuser","auth_protocol":"sha","auth_password":"wrong-auth-pass","bogus":"wrong-priv-pass"}"#,
        r#"{"version":"v3","user":"authuser","auth_protocol":"sha","auth_password":["wrong-auth-pass"]}"#,
        r#"{"version":"v3","user":"authuser","auth_protocol":"sha","auth_password":"wrong-auth-pass","#,
        r#"{"version":"v2c","community":"wrong-priv-pass"}x"#,
    ] {
        let (code, text) = ems.raw("PUT", "/api/v1/credentials/v3", Some(body));
        assert_eq!(code, 400, "{text}");
        assert_no_secret(&text, "a refused PUT");
    }
    let short = v3_profile("short").replace(Snmpd::V3_PRIV_PASS, "wrong-priv-pass");
    let (code, text) = ems.raw("PUT", "/api/v1/credentials/v3", Some(&short));
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("credentials.v3.auth_password: must be at least 8 characters"),
        "{text}"
    );
    assert_no_secret(&text, "a refused PUT");

    // Corrected through the CLI, the secrets from the environment (never argv).
    let out = Command::new(common::emspool_bin())
        .args([
            "credentials",
            "set",
            "v3",
            "--version",
            "v3",
            "--user",
            Snmpd::V3_USER,
            "--auth-protocol",
            "sha",
            "--priv-protocol",
            "aes",
            "--by",
            "alice",
            "--server",
            &ems.url,
        ])
        .env("EMSPOOL_AUTH_PASSWORD", Snmpd::V3_AUTH_PASS)
        .env("EMSPOOL_PRIV_PASSWORD", Snmpd::V3_PRIV_PASS)
        .output()
        .expect("emspool credentials set");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("credential profile v3 set"), "{stdout}");
    assert_no_secret(&format!("{stdout}{stderr}"), "the CLI");
    wait_alarm(&ems, "CredentialRejected:snmpd-v3", false);
    assert_eq!(ems.state("snmpd-v3").as_deref(), Some("up"));
    let mut events = String::new();
    let found = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        events = ems.get("/api/v1/events?limit=1000").to_string();
        events
            .contains("set by alice (from 127.0.0.1 through server 1)")
            .then_some(())
    });
    assert!(found.is_ok(), "no credential.set event by alice: {events}");
    assert_no_secret(&events, "events");
    assert_no_secret(&ems.log_tail(), "the server's log");
}

#[test]
fn a_wrong_netconf_password_or_host_key_raises_credential_rejected_until_corrected() {
    let nc = Netconfd::start();
    let config = format!(
        r#"
[poll]
interval = "2s"
timeout = "1s"

[credentials.nc-badpw]
version = "netconf"
user = "{user}"
password = "not-the-password"
insecure_accept_any_host_key = true

[credentials.nc-badkey]
version = "netconf"
user = "{user}"
password = "{pw}"
host_key_sha256 = "SHA256:{pin}"

[[elements]]
name = "ncd-badpw"
address = "{addr}"
protocol = "netconf"
credential = "nc-badpw"

[[elements]]
name = "ncd-badkey"
address = "{addr}"
protocol = "netconf"
credential = "nc-badkey"
"#,
        user = nc.user(),
        pw = nc.password(),
        addr = nc.addr(),
        pin = "A".repeat(43),
    );
    let ems = Emspool::start(1, &config);
    for (name, why) in [
        ("ncd-badpw", "authentication failed"),
        ("ncd-badkey", "host key rejected"),
    ] {
        let key = format!("CredentialRejected:{name}");
        wait_alarm(&ems, &key, true);
        let a = ems.alarm(&key).expect("alarm");
        assert!(a["text"].as_str().is_some_and(|t| t.contains(why)), "{a}");
        assert_no_secret(&a.to_string(), "the alarm");
        assert!(!has_alarm(&ems, &format!("NodeDown:{name}")));
    }
    let good = |check: serde_json::Value| {
        let mut p = serde_json::json!({
            "version": "netconf", "user": nc.user(), "password": nc.password(),
        });
        if let (Some(p), Some(c)) = (p.as_object_mut(), check.as_object()) {
            p.extend(c.clone());
        }
        p.to_string()
    };
    let pubkey = nc.dir().join("hostkey.pub");
    let fp = String::from_utf8_lossy(
        &Command::new(common::find_tool("ssh-keygen"))
            .arg("-lf")
            .arg(&pubkey)
            .output()
            .expect("ssh-keygen -lf")
            .stdout,
    )
    .split_whitespace()
    .nth(1)
    .expect("fingerprint")
    .to_owned();
    // One through the API, the other through the CLI from a TOML file.
    let (code, text) = ems.raw(
        "PUT",
        "/api/v1/credentials/nc-badpw",
        Some(&good(
            serde_json::json!({ "insecure_accept_any_host_key": true }),
        )),
    );
    assert!(code == 201 || code == 202, "{code} {text}");
    assert_no_secret(&text, "the PUT answer");
    let file = nc.dir().join("nc-badkey.toml");
    std::fs::write(
        &file,
        format!(
            "version = \"netconf\"\nuser = \"{}\"\npassword = \"{}\"\nhost_key_sha256 = \"{fp}\"\n",
            nc.user(),
            nc.password()
        ),
    )
    .expect("profile file");
    let out = ems.cli(&[
        "credentials",
        "set",
        "nc-badkey",
        "--file",
        &file.display().to_string(),
    ]);
    assert!(out.contains("credential profile nc-badkey set"), "{out}");
    assert_no_secret(&out, "the CLI");
    for name in ["ncd-badpw", "ncd-badkey"] {
        wait_alarm(&ems, &format!("CredentialRejected:{name}"), false);
        assert_eq!(ems.state(name).as_deref(), Some("up"), "{name}");
    }
    let (_, raw) = ems.raw("GET", "/api/v1/credentials", None);
    assert_no_secret(&raw, "GET /api/v1/credentials");
    assert!(
        raw.contains("\"host_key_check\":\"host_key_sha256\""),
        "{raw}"
    );
}
