//! Values that parse but can never work (issue 19): API tokens too short to be a secret or
//! that no HTTP client can send, pins to servers that are not members, port 0.

use super::{ApiSection, ClientSection, Config, Secret};

/// Shortest API token accepted: a bearer token is the API's only secret.
pub(super) const MIN_TOKEN_CHARS: usize = 16;

/// `[api] token` and `[client] token`. Only visible ASCII: a header value with spaces around
/// it is trimmed by clients, and a non-ASCII one cannot be compared with what a client sends
/// (hyper refuses such a header value as text), so such a token could never match. Errors
/// never quote the token.
pub(super) fn tokens(api: &ApiSection, client: &ClientSection) -> Result<(), (String, String)> {
    for (key, t) in [("api.token", &api.token), ("client.token", &client.token)] {
        if let Some(t) = t {
            token(t).map_err(|m| (key.to_owned(), m))?;
        }
    }
    Ok(())
}

fn token(t: &Secret) -> Result<(), String> {
    let s = t.expose();
    if s.is_empty() {
        return Err("must not be empty (remove it to disable auth)".into());
    }
    if !s.chars().all(|c| c.is_ascii_graphic()) {
        return Err(
            "only visible ASCII characters (no spaces, no accents): other tokens cannot be sent in an HTTP header".into(),
        );
    }
    if s.len() < MIN_TOKEN_CHARS {
        return Err(format!(
            "must be at least {MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 24`)"
        ));
    }
    Ok(())
}

/// `pin` must name a member of the pool (this server when there is no `[pool]`): the master
/// would otherwise keep the element on a server that never exists.
pub(super) fn pins(c: &Config) -> Result<(), (String, String)> {
    let members: Vec<u32> = match &c.pool {
        Some(p) => p.members.iter().map(|m| m.id).collect(),
        None => vec![c.server.id],
    };
    for e in &c.elements {
        if let Some(pin) = e.pin
            && !members.contains(&pin.0)
        {
            let mut ids: Vec<String> = members.iter().map(u32::to_string).collect();
            ids.sort();
            return Err((
                format!("elements[{}].pin", e.name),
                format!(
                    "server {} is not a member of the pool (members: {})",
                    pin.0,
                    ids.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Port 0 binds a random port: the peers (for `listen` in a pool) or the agents (for the trap
/// listener) could never find it.
pub(super) fn ports(c: &Config) -> Result<(), (String, String)> {
    if c.pool.is_some() && c.server.listen.port() == 0 {
        return Err((
            "server.listen".into(),
            "port 0 picks a random port the other members cannot know".into(),
        ));
    }
    if let Some(t) = &c.traps
        && t.enabled
        && t.listen.port() == 0
    {
        return Err((
            "traps.listen".into(),
            "port 0 picks a random port no agent sends to".into(),
        ));
    }
    Ok(())
}

/// Directories the packaged unit hides from the server (`ProtectHome=yes`, `PrivateTmp=yes`).
const HIDDEN_BY_UNIT: [&str; 5] = ["/home/", "/root/", "/run/user/", "/tmp/", "/var/tmp/"];

/// Files the config names that the server would not see under the packaged systemd unit:
/// one line per file, for `check-config` to warn about (not an error: outside systemd, as in
/// the tests, such paths work).
pub(crate) fn hidden_from_unit(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (name, cred) in &c.credentials {
        let super::Credential::Netconf(nc) = cred else {
            continue;
        };
        for (key, path) in [
            ("private_key", &nc.private_key),
            ("known_hosts", &nc.known_hosts),
        ] {
            if let Some(p) = path
                && HIDDEN_BY_UNIT
                    .iter()
                    .any(|d| p.to_string_lossy().starts_with(d))
            {
                out.push(format!(
                    "`credentials.{name}.{key}` = {}: the systemd unit (ProtectHome, PrivateTmp) hides this from the server; keep it under /etc/emspool",
                    p.display()
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "[server]\nid = 1\n";

    fn err(text: &str) -> String {
        Config::parse(text, "t.toml")
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn tokens_that_cannot_work_are_refused_without_being_quoted() {
        for (token, why) in [
            ("abcde", "at least 16"),
            ("                    ", "visible ASCII"),
            ("ünïcödé-tøken-with-åccents", "visible ASCII"),
            ("a-long-token with-a-space", "visible ASCII"),
            ("", "must not be empty"),
        ] {
            for section in ["api", "client"] {
                let e = err(&format!("{BASE}[{section}]\ntoken = \"{token}\"\n"));
                assert!(e.contains(&format!("{section}.token")), "{e}");
                assert!(e.contains(why), "{token:?}: {e}");
                assert!(
                    token.is_empty() || !e.contains(token),
                    "quotes the token: {e}"
                );
            }
        }
        let ok = format!("{BASE}[api]\ntoken = \"client-token-123\"\n");
        Config::parse(&ok, "t.toml").expect("16 visible ASCII characters");
    }

    const ELEMENT: &str = "[credentials.c]\nversion = \"v2c\"\ncommunity = \"public\"\n\
        [[elements]]\nname = \"r1\"\naddress = \"127.0.0.1:161\"\ncredential = \"c\"\n";

    #[test]
    fn a_pin_to_a_server_outside_the_pool_is_refused() {
        let pool = "[pool]\nsecret = \"pool-secret\"\n[[pool.members]]\nid = 1\n\
            url = \"http://127.0.0.1:8780\"\n[[pool.members]]\nid = 2\nurl = \"http://127.0.0.1:8781\"\n";
        let e = err(&format!("{BASE}{pool}{ELEMENT}pin = 99\n"));
        assert!(
            e.contains("elements[r1].pin") && e.contains("server 99") && e.contains("1, 2"),
            "{e}"
        );
        Config::parse(&format!("{BASE}{pool}{ELEMENT}pin = 2\n"), "t.toml").expect("member");
        // Without [pool] this server is the pool.
        let e = err(&format!("{BASE}{ELEMENT}pin = 2\n"));
        assert!(e.contains("elements[r1].pin"), "{e}");
        Config::parse(&format!("{BASE}{ELEMENT}pin = 1\n"), "t.toml").expect("itself");
    }

    #[test]
    fn keys_the_unit_cannot_see_are_named() {
        let nc = |key: &str| {
            format!(
                "{BASE}[credentials.nc]\nversion = \"netconf\"\nuser = \"u\"\nprivate_key = \"{key}\"\n\
                 insecure_accept_any_host_key = true\n"
            )
        };
        let c = Config::parse(&nc("/home/ops/.ssh/id_ed25519"), "t.toml").expect("valid");
        let w = super::hidden_from_unit(&c);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("credentials.nc.private_key") && w[0].contains("/etc/emspool"));
        let c = Config::parse(&nc("/etc/emspool/netconf/id_ed25519"), "t.toml").expect("valid");
        assert!(super::hidden_from_unit(&c).is_empty());
    }

    #[test]
    fn port_zero_is_refused() {
        let e = err(&format!(
            "{BASE}{}",
            ELEMENT.replace("127.0.0.1:161", "127.0.0.1:0")
        ));
        assert!(e.contains("elements[r1].address"), "{e}");
        let e = err(&format!(
            "{BASE}{}",
            ELEMENT.replace("127.0.0.1:161", "r1.lab:0")
        ));
        assert!(e.contains("elements[r1].address"), "{e}");
        let e = err(&format!("{BASE}[traps]\nlisten = \"127.0.0.1:0\"\n"));
        assert!(e.contains("traps.listen"), "{e}");
        let pool = "[pool]\nsecret = \"pool-secret\"\n[[pool.members]]\nid = 1\nurl = \"http://127.0.0.1:8780\"\n";
        let e = err(&format!(
            "[server]\nid = 1\nlisten = \"127.0.0.1:0\"\n{pool}"
        ));
        assert!(e.contains("server.listen"), "{e}");
    }
}
