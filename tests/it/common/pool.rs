//! A pool of `emspool serve` processes on loopback, ids 1..=n, sharing one inventory.

use super::emspool::Emspool;
use super::free_port;
use std::time::Duration;

pub const SECRET: &str = "test-pool-secret";

pub struct Pool {
    /// `servers[i]` has id `i + 1`.
    pub servers: Vec<Emspool>,
}

impl Pool {
    /// `body` holds poll settings, credentials and elements; `pool_extra` more `[pool]` keys.
    pub fn start(n: usize, body: &str, pool_extra: &str) -> Pool {
        Pool::start_with_server(n, "", body, pool_extra)
    }

    /// [`Pool::start`] with more `[server]` keys (`server_extra`) for every member.
    pub fn start_with_server(n: usize, server_extra: &str, body: &str, pool_extra: &str) -> Pool {
        let hosts = vec!["127.0.0.1".to_owned(); n];
        Pool::start_on(&hosts, server_extra, body, pool_extra)
    }

    /// A pool whose member `i + 1` listens on, and connects to its peers from, `hosts[i]`
    /// (loopback addresses): the kernel can then cut one member off (`faults::Cut`).
    pub fn start_on(hosts: &[String], server_extra: &str, body: &str, pool_extra: &str) -> Pool {
        let ports: Vec<u16> = hosts.iter().map(|_| free_port()).collect();
        let mut members = String::new();
        for (i, (h, p)) in hosts.iter().zip(&ports).enumerate() {
            members.push_str(&format!(
                "\n[[pool.members]]\nid = {}\nurl = \"http://{h}:{p}\"\n",
                i + 1
            ));
        }
        let mut servers: Vec<Emspool> = hosts
            .iter()
            .zip(&ports)
            .enumerate()
            .map(|(i, (h, &p))| {
                let source = if h == "127.0.0.1" {
                    String::new()
                } else {
                    format!("source_address = \"{h}\"")
                };
                let pool = format!(
                    "[pool]\nsecret = \"{SECRET}\"\nfault_injection = true\n{source}\n\
                     {pool_extra}\n{members}\n"
                );
                Emspool::configure_at(
                    i as u32 + 1,
                    h,
                    p,
                    &format!("{server_extra}\n{pool}\n{body}"),
                )
            })
            .collect();
        for s in &mut servers {
            s.spawn();
        }
        Pool { servers }
    }

    pub fn server(&self, id: u32) -> &Emspool {
        &self.servers[id as usize - 1]
    }

    pub fn server_mut(&mut self, id: u32) -> &mut Emspool {
        &mut self.servers[id as usize - 1]
    }

    /// `/api/v1/pool` of every running server, by id.
    pub fn views(&self) -> Vec<(u32, serde_json::Value)> {
        let ids: Vec<u32> = (1..=self.servers.len() as u32).collect();
        self.views_of(&ids)
    }

    /// `/api/v1/pool` of the running servers among `ids` (leave out one that is stopped: it
    /// would only time out).
    pub fn views_of(&self, ids: &[u32]) -> Vec<(u32, serde_json::Value)> {
        self.servers
            .iter()
            .enumerate()
            .filter(|(i, s)| s.is_running() && ids.contains(&(*i as u32 + 1)))
            .filter_map(|(i, s)| {
                let url = format!("{}/api/v1/pool", s.url);
                let mut r = ureq::get(&url)
                    .config()
                    .timeout_global(Some(Duration::from_secs(2)))
                    .build()
                    .call()
                    .ok()?;
                Some((i as u32 + 1, r.body_mut().read_json().ok()?))
            })
            .collect()
    }

    /// Every running server agrees that `master` is master and sees `loads` (by id) assigned.
    pub fn agrees(&self, master: u32, loads: &[(u32, u64)]) -> bool {
        let ids: Vec<u32> = (1..=self.servers.len() as u32).collect();
        self.agrees_among(&ids, master, loads)
    }

    /// [`Pool::agrees`] asked of the running servers among `ids` only.
    pub fn agrees_among(&self, ids: &[u32], master: u32, loads: &[(u32, u64)]) -> bool {
        let views = self.views_of(ids);
        let running = self
            .servers
            .iter()
            .enumerate()
            .filter(|(i, s)| s.is_running() && ids.contains(&(*i as u32 + 1)))
            .count();
        views.len() == running
            && views.iter().all(|(_, v)| {
                v["master"] == master
                    && loads.iter().all(|(id, n)| {
                        v["members"]
                            .as_array()
                            .and_then(|ms| ms.iter().find(|m| m["id"] == *id))
                            .is_some_and(|m| m["elements"] == *n)
                    })
            })
    }

    /// Sets the peers each server can neither reach nor hear (fault injection).
    pub fn block(&self, id: u32, blocked: &[u32]) {
        let url = format!("{}/peer/v1/fault", self.server(id).url);
        let body = serde_json::json!({ "blocked": blocked }).to_string();
        ureq::post(&url)
            .header("authorization", &format!("Bearer {SECRET}"))
            .header("content-type", "application/json")
            .send(&body)
            .unwrap_or_else(|e| panic!("fault injection on server {id}: {e}"));
    }

    /// Element names each running server polls right now (its own local view).
    pub fn local_elements(&self, id: u32) -> Vec<String> {
        let v = self.server(id).get("/api/v1/elements?scope=local");
        super::json_array(&v, "elements")
            .iter()
            .map(|e| match e["name"].as_str() {
                Some(n) => n.to_owned(),
                None => panic!("an element without a name in {v}"),
            })
            .collect()
    }
}
