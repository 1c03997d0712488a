//! TLS and mutual TLS between real pool members on loopback, with certificates made by
//! `emspool certs`, and curl as the outside client (a stranger, a sniffer replaying the pool
//! secret, a member forging what only the master may say).

use crate::common;

use common::emspool::Emspool;
use common::pool::SECRET;
use common::{TempDir, free_port, wait_until};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const ELEMENTS: usize = 6;

fn body() -> String {
    let mut s = String::from(
        "[poll]\ninterval = \"60s\"\ntimeout = \"1s\"\nretries = 0\n\n\
         [credentials.lab]\nversion = \"v2c\"\ncommunity = \"public\"\n",
    );
    for i in 0..ELEMENTS {
        // Port 9 on loopback: nobody answers, the elements stay in the inventory all the same.
        s.push_str(&format!(
            "\n[[elements]]\nname = \"ne-{i}\"\naddress = \"127.0.0.1:9\"\ncredential = \"lab\"\n"
        ));
    }
    s
}

fn emspool(args: &[&str]) {
    let out = Command::new(common::emspool_bin())
        .args(args)
        .output()
        .expect("run emspool");
    assert!(
        out.status.success(),
        "emspool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A pool CA, member certificates 1..=n, a client certificate, and a second, unrelated CA
/// with a certificate for member 1.
struct Certs {
    dir: TempDir,
}

impl Certs {
    fn new(n: u32) -> Certs {
        let dir = common::peer_tempdir("certs");
        let d = dir.path().to_str().expect("utf-8 path").to_owned();
        emspool(&["certs", "ca", "--dir", &d]);
        for id in 1..=n {
            emspool(&[
                "certs",
                "member",
                "--id",
                &id.to_string(),
                "--host",
                "127.0.0.1",
                "--dir",
                &d,
            ]);
        }
        emspool(&["certs", "client", "--name", "ops", "--dir", &d]);
        let other = format!("{d}/other");
        emspool(&["certs", "ca", "--dir", &other, "--name", "another CA"]);
        emspool(&[
            "certs",
            "member",
            "--id",
            "1",
            "--host",
            "127.0.0.1",
            "--dir",
            &other,
        ]);
        Certs { dir }
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn arg(&self, f: &str) -> String {
        self.path(f).display().to_string()
    }

    /// curl arguments: trust the pool CA, show `cert` (`member-1`, `client-ops`, `other/member-1`).
    fn curl(&self, cert: Option<&str>) -> Vec<String> {
        let mut v = vec!["--cacert".to_owned(), self.arg("ca.pem")];
        if let Some(c) = cert {
            v.extend([
                "--cert".to_owned(),
                self.arg(&format!("{c}.pem")),
                "--key".to_owned(),
                self.arg(&format!("{c}.key")),
            ]);
        }
        v
    }
}

/// A pool of `n` HTTPS members with mutual TLS (`client_auth` as given).
struct TlsPool {
    certs: Certs,
    servers: Vec<Emspool>,
}

impl TlsPool {
    fn start(n: u32, client_auth: &str) -> TlsPool {
        let certs = Certs::new(n);
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut members = String::new();
        for (i, p) in ports.iter().enumerate() {
            members.push_str(&format!(
                "\n[[pool.members]]\nid = {}\nurl = \"https://127.0.0.1:{p}\"\n",
                i + 1
            ));
        }
        // The readiness check needs a client certificate when the pool requires one.
        let ready = certs.curl(Some("client-ops"));
        let mut servers: Vec<Emspool> = (1..=n)
            .zip(&ports)
            .map(|(id, &port)| {
                let text = format!(
                    "tls_cert = \"{}\"\ntls_key = \"{}\"\n\n\
                     [pool]\nsecret = \"{SECRET}\"\nca = \"{}\"\nclient_auth = \"{client_auth}\"\n\
                     heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"\n\
                     {members}\n{}",
                    certs.arg(&format!("member-{id}.pem")),
                    certs.arg(&format!("member-{id}.key")),
                    certs.arg("ca.pem"),
                    body()
                );
                Emspool::configure_https(id, port, &text, ready.clone())
            })
            .collect();
        for s in &mut servers {
            s.spawn();
        }
        TlsPool { certs, servers }
    }

    fn server(&self, id: u32) -> &Emspool {
        &self.servers[id as usize - 1]
    }

    /// GET as the operator's CLI would (pool CA, client certificate): the JSON, or None.
    fn get(&self, id: u32, path: &str) -> Option<serde_json::Value> {
        let r = curl(
            &self.certs.curl(Some("client-ops")),
            "GET",
            &format!("{}{path}", self.server(id).url),
            None,
            &[],
        );
        (r.status == Some(200)).then(|| serde_json::from_str(&r.body).ok())?
    }

    fn views(&self) -> Vec<serde_json::Value> {
        (1..=self.servers.len() as u32)
            .filter(|&id| self.server(id).is_running())
            .filter_map(|id| self.get(id, "/api/v1/pool"))
            .collect()
    }

    /// Every running member sees `master` and the whole inventory assigned, in equal shares
    /// to the running members.
    fn settled_on(&self, master: u32) -> bool {
        let running = self.servers.iter().filter(|s| s.is_running()).count();
        let share = (ELEMENTS / running) as u64;
        let up = |m: &serde_json::Value| {
            let id = m["id"].as_u64().unwrap_or(0) as usize;
            id >= 1 && self.servers.get(id - 1).is_some_and(|s| s.is_running())
        };
        let views = self.views();
        views.len() == running
            && views.iter().all(|v| {
                v["master"] == master
                    && v["members"].as_array().is_some_and(|ms| {
                        ms.iter()
                            .filter(|m| up(m))
                            .all(|m| m["elements"].as_u64() == Some(share))
                    })
            })
    }

    fn wait_settled(&self, master: u32) {
        wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
            self.settled_on(master).then_some(())
        })
        .unwrap_or_else(|e| panic!("pool did not settle on {master}: {e}: {:?}", self.views()));
    }

    fn metric(&self, id: u32, series: &str) -> f64 {
        let r = curl(
            &self.certs.curl(Some("client-ops")),
            "GET",
            &format!("{}/metrics", self.server(id).url),
            None,
            &[],
        );
        r.body
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

struct Answer {
    /// None when no HTTP answer came (the TLS handshake failed, or nothing listened).
    status: Option<u16>,
    body: String,
    curl_exit: i32,
}

fn curl(tls: &[String], method: &str, url: &str, body: Option<&str>, headers: &[String]) -> Answer {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-m", "5", "-X", method, "-w", "\n%{http_code}"]);
    cmd.args(tls);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = code.trim().parse::<u16>().ok().filter(|&c| c != 0);
    Answer {
        status,
        body: body.to_owned(),
        curl_exit: out.status.code().unwrap_or(-1),
    }
}

fn bearer() -> String {
    format!("authorization: Bearer {SECRET}")
}

fn from(id: u32) -> String {
    format!("x-emspool-from: {id}")
}

/// A forged `delta::Push` that would empty the inventory, claiming to come from the term's
/// claimant (its low 32 bits).
fn push_json(term: u64) -> String {
    format!(
        r#"{{"from":{},"base":{{"term":0,"version":0}},"id":{{"term":{term},"version":999999}},"deltas":[],"handover":{{}}}}"#,
        term & 0xffff_ffff
    )
}

fn owned_by(pool: &TlsPool, id: u32) -> Vec<String> {
    let r = curl(
        &pool.certs.curl(Some(&format!("member-{id}"))),
        "GET",
        &format!("{}/peer/v1/local/elements", pool.server(id).url),
        None,
        &[bearer()],
    );
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    let mut names: Vec<String> = v["elements"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn won(pool: &TlsPool, id: u32) -> usize {
    pool.get(id, "/api/v1/events?kind=election.won&limit=1000")
        .and_then(|v| v["events"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// `client_auth = "required"`: no certificate, or one of another CA, ends in the handshake.
#[test]
fn required_mtls_refuses_strangers_in_the_handshake() {
    let pool = TlsPool::start(3, "required");
    pool.wait_settled(3);
    let url = format!("{}/api/v1/pool", pool.server(2).url);
    let none = curl(&pool.certs.curl(None), "GET", &url, None, &[]);
    assert_eq!(none.status, None, "no certificate: {}", none.body);
    let other = curl(
        &pool.certs.curl(Some("other/member-1")),
        "GET",
        &url,
        None,
        &[],
    );
    assert_eq!(other.status, None, "another CA's certificate");
    assert_ne!(other.curl_exit, 0);
    // Plain HTTP on the TLS port gets no HTTP answer either.
    let plain = curl(
        &[],
        "GET",
        &format!("http://127.0.0.1:{}/api/v1/pool", pool.server(2).port),
        None,
        &[],
    );
    assert!(
        plain.status.is_none() || plain.status == Some(400),
        "{:?}",
        plain.status
    );
    let ok = curl(&pool.certs.curl(Some("client-ops")), "GET", &url, None, &[]);
    assert_eq!(ok.status, Some(200), "{}", ok.body);
    assert!(pool.metric(2, "emspool_tls_handshake_failures_total") >= 2.0);
    // The CLI speaks HTTPS with the pool CA and its certificate.
    let out = Command::new(common::emspool_bin())
        .args([
            "status",
            "--server",
            &pool.server(1).url,
            "--ca",
            &pool.certs.arg("ca.pem"),
        ])
        .args([
            "--cert",
            &pool.certs.arg("client-ops.pem"),
            "--key",
            &pool.certs.arg("client-ops.key"),
        ])
        .output()
        .expect("emspool status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("master"));
}

/// `client_auth = "optional"` (the default): browsers and the CLI need only the CA, but a peer
/// request replayed with a sniffed secret and no certificate changes nothing.
#[test]
fn sniffed_secret_without_a_certificate_changes_nothing() {
    let pool = TlsPool::start(3, "optional");
    pool.wait_settled(3);
    let term = pool.get(1, "/api/v1/pool").expect("pool")["term"]
        .as_u64()
        .expect("term");
    let before = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        Some(owned_by(&pool, 1)).filter(|v| !v.is_empty())
    })
    .expect("server 1 polls a share");
    let stranger = pool.certs.curl(None);
    let url = |p: &str| format!("{}{p}", pool.server(1).url);
    for (path, body) in [
        ("/peer/v1/assignment", push_json(term + 1)),
        (
            "/peer/v1/release",
            format!(r#"{{"term":{term},"elements":{before:?}}}"#),
        ),
        (
            "/peer/v1/election",
            format!(
                r#"{{"from":3,"msg":{{"kind":"coordinator","term":{}}}}}"#,
                term + 1
            ),
        ),
    ] {
        let r = curl(
            &stranger,
            "POST",
            &url(path),
            Some(&body),
            &[bearer(), from(3)],
        );
        assert_eq!(r.status, Some(401), "{path}: {}", r.body);
    }
    // Another CA's certificate is refused in the handshake even when certificates are optional.
    let other = curl(
        &pool.certs.curl(Some("other/member-1")),
        "POST",
        &url("/peer/v1/assignment"),
        Some(&push_json(term + 1)),
        &[bearer()],
    );
    assert_eq!(other.status, None);
    // The API itself answers without a client certificate.
    let api = curl(&stranger, "GET", &url("/api/v1/elements"), None, &[]);
    assert_eq!(api.status, Some(200));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(owned_by(&pool, 1), before);
    assert!(pool.settled_on(3));
    assert!(pool.metric(1, "emspool_peer_refused_total{reason=\"no_certificate\"}") >= 3.0);
    // A client's change on a non-master travels to the master over mutual TLS, and the
    // peered answers of another member (fan-out over mutual TLS) include it.
    let add = curl(
        &stranger,
        "POST",
        &url("/api/v1/elements"),
        Some(r#"{"name":"ne-new","address":"127.0.0.1:9","credential":"lab"}"#),
        &[],
    );
    assert!(
        matches!(add.status, Some(201 | 202)),
        "{:?} {}",
        add.status,
        add.body
    );
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let v = pool.get(2, "/api/v1/elements")?;
        let names: Vec<&str> = v["elements"]
            .as_array()?
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        (names.len() == ELEMENTS + 1 && names.contains(&"ne-new")).then_some(())
    })
    .expect("the new element in every member's answer");
}

/// A member with a valid certificate that is not the master forges a push (term+1, empty
/// inventory), a push under a term of its own, a release, an impersonation and terms of
/// u64::MAX: all refused, no election, and after a fail-over every member has the inventory.
#[test]
fn forged_commands_from_a_member_are_refused_and_the_inventory_survives_fail_over() {
    let mut pool = TlsPool::start(3, "optional");
    pool.wait_settled(3);
    let view = pool.get(2, "/api/v1/pool").expect("pool");
    let term = view["term"].as_u64().expect("term");
    let owned2 = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        Some(owned_by(&pool, 2)).filter(|v| !v.is_empty())
    })
    .expect("server 2 polls a share");
    let won_before: Vec<usize> = (1..=3).map(|id| won(&pool, id)).collect();
    let member1 = pool.certs.curl(Some("member-1"));
    let at = |id: u32, p: &str| format!("{}{p}", pool.server(id).url);
    // A term member 1 would claim next: it names 1 as claimant, yet 1 is not master here.
    let own_term = (((term >> 32) + 1) << 32) | 1;
    let hostile: Vec<(&str, String, Vec<String>, u16)> = vec![
        (
            "/peer/v1/assignment",
            push_json(term + 1),
            vec![bearer(), from(1)],
            403,
        ),
        (
            "/peer/v1/assignment",
            push_json(own_term),
            vec![bearer(), from(1)],
            403,
        ),
        (
            "/peer/v1/assignment",
            push_json(term),
            vec![bearer(), from(3)],
            403,
        ),
        (
            "/peer/v1/release",
            format!(r#"{{"term":{term},"elements":{owned2:?}}}"#),
            vec![bearer(), from(1)],
            403,
        ),
        (
            "/peer/v1/assignment",
            push_json(u64::MAX),
            vec![bearer(), from(1)],
            403,
        ),
        (
            "/peer/v1/release",
            format!(r#"{{"term":{},"elements":{owned2:?}}}"#, u64::MAX),
            vec![bearer(), from(1)],
            403,
        ),
        (
            "/peer/v1/election",
            format!(
                r#"{{"from":1,"msg":{{"kind":"election","term":{}}}}}"#,
                u64::MAX
            ),
            vec![bearer(), from(1)],
            403,
        ),
        (
            "/peer/v1/election",
            format!(
                r#"{{"from":1,"msg":{{"kind":"coordinator","term":{}}}}}"#,
                u64::MAX
            ),
            vec![bearer(), from(1)],
            403,
        ),
        (
            "/peer/v1/heartbeat",
            format!(
                r#"{{"from":1,"term":{},"master":1,"applied":{{"term":0,"version":0}},"known":{{"term":0,"version":0}}}}"#,
                u64::MAX
            ),
            vec![bearer(), from(1)],
            403,
        ),
        (
            "/peer/v1/inventory",
            r#"{"change":{"add":{"name":"../../x","address":"1","credential":"nope"}}}"#.to_owned(),
            vec![bearer(), from(1)],
            400,
        ),
    ];
    for target in [2u32, 3] {
        for (path, body, headers, want) in &hostile {
            let r = curl(&member1, "POST", &at(target, path), Some(body), headers);
            assert_eq!(
                r.status,
                Some(*want),
                "to {target} {path} {body}: {}",
                r.body
            );
        }
    }
    // Nothing changed: same term, same master, nobody won an election, 2 still polls its share.
    std::thread::sleep(Duration::from_secs(2));
    for id in 1..=3 {
        let v = pool.get(id, "/api/v1/pool").expect("pool");
        assert_eq!(
            (v["term"].as_u64(), v["master"].as_u64()),
            (Some(term), Some(3)),
            "{id}: {v}"
        );
    }
    let won_after: Vec<usize> = (1..=3).map(|id| won(&pool, id)).collect();
    assert_eq!(won_before, won_after);
    assert_eq!(owned_by(&pool, 2), owned2);
    assert!(pool.metric(2, "emspool_peer_refused_total{reason=\"not_master\"}") >= 2.0);
    assert!(pool.metric(2, "emspool_peer_refused_total{reason=\"term_range\"}") >= 3.0);
    assert!(pool.metric(2, "emspool_peer_refused_total{reason=\"impersonation\"}") >= 1.0);
    assert!(pool.metric(2, "emspool_peer_refused_total{reason=\"invalid\"}") >= 1.0);
    // Fail-over: the new master distributes the whole inventory, nothing of the forgeries.
    pool.servers[2].kill9();
    pool.wait_settled(2);
    for id in 1..=2 {
        let v = pool.get(id, "/api/v1/elements").expect("elements");
        let n = v["elements"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(n, ELEMENTS, "server {id}: {v}");
    }
}

/// `check-config` refuses inconsistent TLS settings with one line each.
#[test]
fn check_config_refuses_inconsistent_tls() {
    let certs = Certs::new(1);
    let dir = common::peer_tempdir("tlsconf");
    let c = |f: &str| certs.arg(f);
    let server = |extra: &str| format!("[server]\nid = 1\ndata_dir = \"/tmp/x\"\n{extra}\n");
    let pool = |url: &str, extra: &str| {
        format!(
            "[pool]\nsecret = \"{SECRET}\"\n{extra}\n[[pool.members]]\nid = 1\nurl = \"{url}\"\n"
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            server(&format!("tls_cert = \"{}\"", c("member-1.pem"))),
            "server.tls_key",
        ),
        (
            server(&format!("tls_key = \"{}\"", c("member-1.key"))),
            "server.tls_cert",
        ),
        (
            server("tls_cert = \"/nonexistent.pem\"\ntls_key = \"/nonexistent.key\""),
            "cannot read",
        ),
        (
            server(&format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"",
                c("member-1.key"),
                c("member-1.key")
            )),
            "no PEM certificate",
        ),
        (
            server("") + &pool("https://127.0.0.1:1", ""),
            "server.tls_cert",
        ),
        (
            server(&format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"",
                c("member-1.pem"),
                c("member-1.key")
            )) + &pool("https://127.0.0.1:1", ""),
            "pool.ca",
        ),
        (
            server(&format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"",
                c("member-1.pem"),
                c("member-1.key")
            )) + &pool("http://127.0.0.1:1", &format!("ca = \"{}\"", c("ca.pem"))),
            "pool.members.url",
        ),
        (
            server("") + &pool("http://127.0.0.1:1", "client_auth = \"required\""),
            "pool.client_auth",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&f, text).expect("write");
        let out = Command::new(common::emspool_bin())
            .args(["check-config"])
            .arg(&f)
            .output()
            .expect("check-config");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} accepted:\n{text}");
        assert!(err.contains(want), "case {i}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "case {i}: {err}");
    }
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        server(&format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"",
            c("member-1.pem"),
            c("member-1.key")
        )) + &pool("https://127.0.0.1:1", &format!("ca = \"{}\"", c("ca.pem"))),
    )
    .expect("write");
    let out = Command::new(common::emspool_bin())
        .arg("check-config")
        .arg(&good)
        .output()
        .expect("check-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Without TLS (a lab pool, pool secret only) the same checks hold for what a member claims:
/// `u64::MAX` in any message is refused and starts no election; a push or a release from a
/// member that is not master is refused.
#[test]
fn lab_pool_refuses_out_of_range_terms_and_commands_from_non_masters() {
    let pool = common::pool::Pool::start(
        3,
        &body(),
        "heartbeat = \"250ms\"\nfailure_timeout = \"1s\"\nlease = \"800ms\"\nhold_down = \"1s\"",
    );
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        pool.agrees(3, &[(1, 2), (2, 2), (3, 2)]).then_some(())
    })
    .unwrap_or_else(|e| panic!("pool did not settle: {e}: {:?}", pool.views()));
    let term = pool.server(2).get("/api/v1/pool")["term"]
        .as_u64()
        .expect("term");
    let won = |id: u32| pool.server(id).events("kind=election.won&limit=1000").len();
    let won_before: Vec<usize> = (1..=3).map(won).collect();
    let owned2 = pool.local_elements(2);
    let max = u64::MAX;
    let zero = r#"{"term":0,"version":0}"#;
    let cases = [
        (
            "/peer/v1/election",
            format!(r#"{{"from":1,"msg":{{"kind":"election","term":{max}}}}}"#),
        ),
        (
            "/peer/v1/election",
            format!(r#"{{"from":1,"msg":{{"kind":"answer","term":{max}}}}}"#),
        ),
        (
            "/peer/v1/election",
            format!(r#"{{"from":1,"msg":{{"kind":"coordinator","term":{max}}}}}"#),
        ),
        (
            "/peer/v1/election",
            format!(r#"{{"from":1,"msg":{{"kind":"heartbeat","term":{max}}}}}"#),
        ),
        (
            "/peer/v1/heartbeat",
            format!(r#"{{"from":1,"term":{max},"master":1,"applied":{zero},"known":{zero}}}"#),
        ),
        ("/peer/v1/assignment", push_json(max)),
        ("/peer/v1/assignment", push_json(term + 1)),
        (
            "/peer/v1/release",
            format!(r#"{{"term":{term},"elements":{owned2:?}}}"#),
        ),
        (
            "/peer/v1/release",
            format!(r#"{{"term":{max},"elements":{owned2:?}}}"#),
        ),
    ];
    for (path, body) in &cases {
        let url = format!("{}{path}", pool.server(2).url);
        let r = curl(&[], "POST", &url, Some(body), &[bearer(), from(1)]);
        assert_eq!(r.status, Some(403), "{path} {body}: {}", r.body);
    }
    std::thread::sleep(Duration::from_secs(2));
    for (id, v) in pool.views() {
        assert_eq!(
            (v["term"].as_u64(), v["master"].as_u64()),
            (Some(term), Some(3)),
            "{id}: {v}"
        );
    }
    assert_eq!((1..=3).map(won).collect::<Vec<_>>(), won_before);
    assert_eq!(pool.local_elements(2), owned2);
}
