//! The client commands as an operator uses them (issue 19): adding a NETCONF element from
//! the CLI, the element detail view, `--output json`, where `status` finds its servers, and
//! the one-line refusals of `check-config`; the API's JSON 413.

use crate::common;
use crate::netconf::{fingerprint, known_hosts, py_state};

use common::emspool::Emspool;
use common::pynetconf::{PY_PASSWORD, PY_USER, PyNetconf};
use common::{Netconfd, wait_until};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// `emspool ARGS` with nothing from the test's environment that would pick a server.
fn emspool(args: &[&str]) -> Command {
    let mut c = Command::new(common::emspool_bin());
    c.args(args)
        .env_remove("EMSPOOL_SERVER")
        .env_remove("EMSPOOL_CONFIG")
        .env_remove("EMSPOOL_TOKEN");
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("run emspool")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn wait_up(ems: &Emspool, name: &str, within: Duration) -> serde_json::Value {
    wait_until(within, Duration::from_millis(100), || {
        ems.element(name).filter(|v| v["status"]["state"] == "up")
    })
    .unwrap_or_else(|e| {
        panic!(
            "{name} not up: {e}: {:?}\n{}",
            ems.element(name),
            ems.log_tail()
        )
    })
}

/// What the README tells an operator to do for a NETCONF element, against netconfd behind
/// sshd: a key and a known_hosts file in a directory of their own (as /etc/emspool/netconf
/// under the unit), a `version = "netconf"` profile, then `emspool add --protocol netconf`.
#[test]
fn add_protocol_netconf_brings_a_netconfd_element_up() {
    let nc = Netconfd::start();
    let keys = common::peer_tempdir("cli-nc-keys");
    let key = keys.path().join("id_ed25519");
    std::fs::copy(nc.client_key(), &key).expect("copy key");
    common::set_mode(&key, 0o600);
    let kh = known_hosts(keys.path(), nc.port(), &nc.dir().join("hostkey.pub"));
    let ems = Emspool::start(
        1,
        &format!(
            "[poll]\ninterval = \"2s\"\ntimeout = \"1s\"\n\n\
             [credentials.lab-nc]\nversion = \"netconf\"\nuser = \"{user}\"\n\
             private_key = \"{key}\"\nknown_hosts = \"{kh}\"\n",
            user = nc.user(),
            key = key.display(),
            kh = kh.display(),
        ),
    );
    let addr = nc.addr().to_string();

    // Without --protocol the server says what to set, and the CLI has the flag it names.
    let o = run(emspool(&[
        "add",
        "ncd",
        "--address",
        &addr,
        "--credential",
        "lab-nc",
        "--server",
        &ems.url,
    ]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("NETCONF profile"), "{}", stderr(&o));

    // --output json prints the API's answer, and it is JSON.
    let out = ems.cli(&[
        "add",
        "ncd",
        "--address",
        &addr,
        "--credential",
        "lab-nc",
        "--protocol",
        "netconf",
        "--interval",
        "2s",
        "--output",
        "json",
    ]);
    let added: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_eq!(added["name"], "ncd", "{added}");
    assert_eq!(added["protocol"], "netconf", "{added}");
    assert!(added.get("applied").is_some(), "{added}");

    let up = wait_up(&ems, "ncd", Duration::from_secs(15));
    assert!(
        up["status"]["sys_descr"]
            .as_str()
            .is_some_and(|d| d.starts_with("Linux")),
        "{up}"
    );

    // The list has the protocol; the detail view has the rest.
    let list = ems.cli(&["elements"]);
    let row = list
        .lines()
        .find(|l| l.starts_with("ncd "))
        .unwrap_or_else(|| panic!("no row: {list}"));
    assert!(
        list.starts_with("NAME") && list.contains("PROTOCOL"),
        "{list}"
    );
    assert!(row.contains("netconf") && row.contains(" up "), "{row}");
    let detail = ems.cli(&["elements", "ncd"]);
    for want in [
        "protocol",
        "netconf",
        "owner",
        "server 1",
        "last poll",
        "capabilities",
        "interfaces (0)",
        "ietf-interfaces",
        "active alarms (0)",
    ] {
        assert!(detail.contains(want), "{want:?} missing:\n{detail}");
    }
}

/// The detail view of an element with interfaces and an alarm, text and JSON (the scripted
/// NETCONF server reports eth1 down while enabled: LinkDown).
#[test]
fn elements_name_shows_interfaces_alarms_owner_and_last_poll() {
    let py = PyNetconf::start(
        &py_state(&[("eth0", "up", "up"), ("eth1", "up", "down")], None),
        false,
    );
    let ems = Emspool::start(
        1,
        &format!(
            "[poll]\ninterval = \"2s\"\ntimeout = \"1s\"\n\n\
             [credentials.py]\nversion = \"netconf\"\nuser = \"{PY_USER}\"\n\
             password = \"{PY_PASSWORD}\"\nhost_key_sha256 = \"{fp}\"\n",
            fp = fingerprint(&py.host_public_key()),
        ),
    );
    let addr = py.addr().to_string();
    // A pin to a server that is not a member is refused, as by check-config.
    let o = run(emspool(&[
        "add",
        "py1",
        "--address",
        &addr,
        "--credential",
        "py",
        "--protocol",
        "netconf",
        "--pin",
        "7",
        "--server",
        &ems.url,
    ]));
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("elements[py1].pin"), "{}", stderr(&o));
    ems.cli(&[
        "add",
        "py1",
        "--address",
        &addr,
        "--credential",
        "py",
        "--protocol",
        "netconf",
        "--pin",
        "1",
    ]);
    wait_up(&ems, "py1", Duration::from_secs(15));
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        ems.alarm("LinkDown:py1:2")
    })
    .unwrap_or_else(|e| panic!("no LinkDown: {e}\n{}", ems.log_tail()));

    let text = ems.cli(&["elements", "py1"]);
    for want in [
        "protocol",
        "netconf",
        "owner          server 1",
        "pinned to      server 1",
        "last poll",
        " ms)",
        "interfaces (2):",
        "eth0",
        "active alarms (1):",
        "LinkDown",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    let eth1 = text
        .lines()
        .find(|l| l.starts_with("2 ") && l.contains("eth1"))
        .unwrap_or_else(|| panic!("no eth1 row:\n{text}"));
    assert!(eth1.contains("up") && eth1.contains("down"), "{eth1}");

    let json = ems.cli(&["elements", "py1", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON detail");
    assert_eq!(v["owner"], 1, "{v}");
    assert_eq!(v["protocol"], "netconf", "{v}");
    assert!(v["status"]["last_poll"].is_i64(), "{v}");
    assert_eq!(v["status"]["interfaces"].as_array().map(Vec::len), Some(2));
    let alarms = v["alarms"].as_array().expect("alarms");
    assert!(alarms.iter().any(|a| a["key"] == "LinkDown:py1:2"), "{v}");
}

/// `status` with neither --server nor --config reads [client] of the file EMSPOOL_CONFIG
/// names; the term is one human form in text (EPOCH.OWNER) and a number in JSON.
#[test]
fn status_reads_client_servers_from_emspool_config() {
    let ems = Emspool::start(1, "");
    let dir = common::peer_tempdir("cli-client");
    let client = dir.path().join("client.toml");
    std::fs::write(
        &client,
        format!(
            "[server]\nid = 9\n\n[client]\nservers = [\"{}\"]\n",
            ems.url
        ),
    )
    .expect("write client config");
    let read = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let mut c = emspool(&["status"]);
        c.env("EMSPOOL_CONFIG", &client);
        let o = run(c);
        // Once elected: before that the term is 0.0 and there is no master.
        (o.status.success() && stdout(&o).contains("master 1,")).then(|| stdout(&o))
    })
    .unwrap_or_else(|e| panic!("status via EMSPOOL_CONFIG: {e}"));
    assert!(read.contains("answered by server 1"), "{read}");
    let term = read
        .split("term ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .unwrap_or_else(|| panic!("no term in {read}"));
    let (epoch, owner) = term.split_once('.').unwrap_or_else(|| panic!("{term}"));
    assert!(epoch.parse::<u64>().is_ok() && owner == "1", "{term}");

    let mut c = emspool(&["status", "--output", "json"]);
    c.env("EMSPOOL_CONFIG", &client);
    let o = run(c);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON status");
    let n = v["term"].as_u64().expect("term is a number in JSON");
    assert_eq!(format!("{}.{}", n >> 32, n & 0xffff_ffff), term);

    // Events say the same form: "server 1 is master for term E.1".
    let won = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        ems.events("kind=election.won&limit=1").into_iter().next()
    })
    .expect("election.won event");
    let text = won["text"].as_str().unwrap_or_default();
    assert!(text.ends_with(&format!("term {term}")), "{text}");
}

fn check_config(dir: &Path, name: &str, text: &str) -> Output {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    run(emspool(&[
        "check-config",
        path.to_str().expect("utf-8 path"),
    ]))
}

/// Values that parse but cannot work are refused by `check-config` with one line naming the
/// key; a missing file says so once.
#[test]
fn check_config_refuses_port_zero_unknown_pins_and_unusable_tokens() {
    let dir = common::peer_tempdir("cli-check");
    let base = "[server]\nid = 1\n";
    let element = "[credentials.c]\nversion = \"v2c\"\ncommunity = \"public\"\n\
        [[elements]]\nname = \"r1\"\ncredential = \"c\"\n";
    for (file, text, key) in [
        (
            "port0.toml",
            format!("{base}{element}address = \"127.0.0.1:0\"\n"),
            "elements[r1].address",
        ),
        (
            "pin.toml",
            format!("{base}{element}address = \"127.0.0.1:161\"\npin = 99\n"),
            "elements[r1].pin",
        ),
        (
            "short.toml",
            format!("{base}[api]\ntoken = \"abcde\"\n"),
            "api.token",
        ),
        (
            "spaces.toml",
            format!("{base}[api]\ntoken = \"                    \"\n"),
            "api.token",
        ),
        (
            "accents.toml",
            format!("{base}[api]\ntoken = \"jéton-secret-très-long\"\n"),
            "api.token",
        ),
    ] {
        let o = check_config(dir.path(), file, &text);
        let err = stderr(&o);
        assert!(!o.status.success(), "{file} accepted: {}", stdout(&o));
        assert!(err.contains(key), "{file}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{file}: {err}");
        assert!(!err.contains("abcde") && !err.contains("jéton"), "{err}");
    }
    let ok = check_config(
        dir.path(),
        "ok.toml",
        &format!("{base}{element}address = \"127.0.0.1:161\"\npin = 1\n"),
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stderr(&ok).is_empty(), "{}", stderr(&ok));
    // A NETCONF key where the unit's ProtectHome hides it: valid, with a warning.
    let home = check_config(
        dir.path(),
        "home.toml",
        &format!(
            "{base}[credentials.nc]\nversion = \"netconf\"\nuser = \"u\"\n\
             private_key = \"/root/.ssh/id_ed25519\"\nknown_hosts = \"/etc/emspool/netconf/known_hosts\"\n"
        ),
    );
    assert!(home.status.success(), "{}", stderr(&home));
    let warn = stderr(&home);
    assert!(
        warn.contains("warning") && warn.contains("credentials.nc.private_key"),
        "{warn}"
    );
    assert!(!warn.contains("known_hosts"), "{warn}");

    let missing = dir.path().join("missing.toml");
    let o = run(emspool(&["check-config", missing.to_str().unwrap()]));
    let err = stderr(&o);
    assert!(!o.status.success());
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    assert!(err.contains("missing.toml"), "{err}");
    // The same for a client command's --config.
    let o = run(emspool(&["status", "--config", missing.to_str().unwrap()]));
    assert_eq!(
        stderr(&o).matches("os error 2").count(),
        1,
        "{}",
        stderr(&o)
    );
}

/// Bodies over the 2 MiB limit are refused with 413 and the API's JSON error, like every
/// other API error.
#[test]
fn oversized_bodies_get_a_json_413() {
    let ems = Emspool::start(1, "");
    let dir = common::peer_tempdir("cli-413");
    for (mb, path) in [(10, "/api/v1/elements"), (100, "/api/v1/alarms/1/ack")] {
        let file = dir.path().join(format!("body{mb}"));
        let f = std::fs::File::create(&file).expect("create");
        f.set_len(mb << 20).expect("size");
        let o = Command::new(common::find_tool("curl"))
            .args(["-s", "-X", "POST", "-H", "content-type: application/json"])
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .args(["-w", "\n%{http_code} %{content_type}"])
            .arg(format!("{}{path}", ems.url))
            .output()
            .expect("curl");
        let out = stdout(&o);
        let (body, tail) = out.rsplit_once('\n').unwrap_or_else(|| panic!("{out:?}"));
        assert!(
            tail.starts_with("413 application/json"),
            "{mb} MB {path}: {out}"
        );
        let v: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("too large") || e.contains("length limit")),
            "{v}"
        );
    }
    // And a wrong method: JSON too.
    let (status, body) = ems.raw("DELETE", "/api/v1/pool", None);
    assert_eq!(status, 405, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON 405");
    assert!(v["error"].is_string(), "{v}");
}
