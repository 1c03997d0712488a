//! `GET /api/v1/sd/devices`: Prometheus HTTP service discovery (`http_sd_configs`) of the pool.
//!
//! Every server answers with the members it sees alive, one target group per member, so a
//! Prometheus needs one URL of the pool to find all of them; each member then serves its own
//! `/metrics` and the `/metrics/devices` of the elements it owns. A dead member drops out at
//! the next refresh; its elements show up on their new owners.
//!
//! Labels per group: `__meta_emspool_server_id` (the member's id) and `__scheme__` (from the
//! member's configured URL).

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct TargetGroup {
    pub(crate) targets: Vec<String>,
    pub(crate) labels: BTreeMap<&'static str, String>,
}

/// `http://host:port/...` -> (`http`, `host:port`); `None` for anything else.
pub(crate) fn split_url(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split('/').next().unwrap_or("");
    (!host.is_empty()).then_some((scheme, host))
}

pub(crate) fn groups(members: impl IntoIterator<Item = (u32, String)>) -> Vec<TargetGroup> {
    members
        .into_iter()
        .filter_map(|(id, url)| {
            let (scheme, host) = split_url(&url)?;
            Some(TargetGroup {
                targets: vec![host.to_owned()],
                labels: BTreeMap::from([
                    ("__meta_emspool_server_id", id.to_string()),
                    ("__scheme__", scheme.to_owned()),
                ]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_group_per_member_in_http_sd_format() {
        let g = groups([
            (1, "http://127.0.0.1:8080".to_string()),
            (2, "https://ems-2.example:9443/".to_string()),
            (3, "ems-3:8080".to_string()),
        ]);
        let v = serde_json::to_value(&g).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"targets": ["127.0.0.1:8080"],
                 "labels": {"__meta_emspool_server_id": "1", "__scheme__": "http"}},
                {"targets": ["ems-2.example:9443"],
                 "labels": {"__meta_emspool_server_id": "2", "__scheme__": "https"}},
            ])
        );
    }
}
