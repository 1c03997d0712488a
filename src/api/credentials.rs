//! The pool's credential profiles through the API: listed without their secrets, set and
//! removed through the master's one writer like any inventory change (`api::inventory`).
//! Every change is an audit event (`credential.set`, `credential.removed`) naming who made
//! it, from where, and through which server; never the secret.

use super::Shared;
use super::error::ApiError;
use super::inventory::forward;
use crate::cluster::InventoryChange;
use crate::cluster::protocol::AssignmentId;
use crate::config::Credential;
use crate::model::{NewEvent, Severity};
use crate::tls::Remote;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Who makes a change, as the client says (the CLI sends the login name).
pub(crate) const BY_HEADER: &str = "x-emspool-by";

/// A profile as the API shows it: what it is, never a secret (only whether one is set).
#[derive(Debug, Serialize)]
pub(crate) struct View {
    name: String,
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priv_protocol: Option<String>,
    /// NETCONF: how the host key is checked (`known_hosts`, `host_key_sha256`, `any`).
    #[serde(skip_serializing_if = "Option::is_none")]
    host_key_check: Option<&'static str>,
    /// NETCONF: the private key file on each member, when one is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
    /// Names of the secrets the profile holds (`community`, `auth_password`...), not their values.
    secrets: Vec<&'static str>,
}

fn lower<T: std::fmt::Debug>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(|p| format!("{p:?}").to_lowercase())
}

pub(crate) fn view(name: &str, c: &Credential) -> View {
    let mut v = View {
        name: name.to_owned(),
        version: "v2c",
        user: None,
        auth_protocol: None,
        priv_protocol: None,
        host_key_check: None,
        private_key: None,
        secrets: Vec::new(),
    };
    match c {
        Credential::V2c { .. } => v.secrets.push("community"),
        Credential::V3 {
            user,
            auth_protocol,
            auth_password,
            priv_protocol,
            priv_password,
        } => {
            v.version = "v3";
            v.user = Some(user.clone());
            v.auth_protocol = lower(auth_protocol);
            v.priv_protocol = lower(priv_protocol);
            if auth_password.is_some() {
                v.secrets.push("auth_password");
            }
            if priv_password.is_some() {
                v.secrets.push("priv_password");
            }
        }
        Credential::Netconf(nc) => {
            v.version = "netconf";
            v.user = Some(nc.user.clone());
            v.host_key_check = Some(if nc.known_hosts.is_some() {
                "known_hosts"
            } else if nc.host_key_sha256.is_some() {
                "host_key_sha256"
            } else {
                "any"
            });
            v.private_key = nc.private_key.as_ref().map(|p| p.display().to_string());
            if nc.password.is_some() {
                v.secrets.push("password");
            }
            if nc.private_key_passphrase.is_some() {
                v.secrets.push("private_key_passphrase");
            }
        }
    }
    v
}

/// `GET /api/v1/credentials`: the profiles this member holds (the pool's, as of its newest
/// assignment).
pub(crate) async fn list(State(s): State<Shared>) -> Json<serde_json::Value> {
    let views: Vec<View> = s
        .cluster
        .credentials()
        .iter()
        .map(|(n, c)| view(n, c))
        .collect();
    Json(serde_json::json!({ "credentials": views, "server": s.id }))
}

#[derive(Serialize)]
pub(crate) struct Set {
    #[serde(flatten)]
    credential: View,
    applied: Option<AssignmentId>,
}

fn who(headers: &HeaderMap, remote: Option<&Remote>, s: &Shared) -> Result<String, ApiError> {
    let by = match headers.get(BY_HEADER) {
        None => "api".to_owned(),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|b| !b.is_empty() && b.len() <= 128 && !b.chars().any(char::is_control))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("{BY_HEADER}: 1-128 printable characters"))
            })?
            .to_owned(),
    };
    let from = remote.map_or("?".to_owned(), |r| r.addr.ip().to_string());
    Ok(format!("{by} (from {from} through server {})", s.id))
}

/// `PUT /api/v1/credentials/{name}`: the profile as the file would give it (`version` =
/// `v2c`, `v3` or `netconf`, and its keys). 201 once distributed, 202 once persisted.
pub(crate) async fn set(
    State(s): State<Shared>,
    name: Result<Path<String>, PathRejection>,
    remote: Option<axum::Extension<ConnectInfo<Remote>>>,
    headers: HeaderMap,
    body: Result<Json<Credential>, JsonRejection>,
) -> Result<(StatusCode, Json<Set>), ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    // serde's message quotes what it could not parse, which may be a secret: say only where.
    let Json(credential) = body.map_err(|e| {
        ApiError::BadRequest(format!(
            "body: not a credential profile ({}); keys as in [credentials.NAME] of the config \
             file, with version = \"v2c\", \"v3\" or \"netconf\"",
            match e {
                JsonRejection::JsonDataError(_) => "unknown key, missing key or wrong type",
                JsonRejection::JsonSyntaxError(_) => "invalid JSON",
                JsonRejection::MissingJsonContentType(_) => "content-type is not application/json",
                _ => "unreadable",
            }
        ))
    })?;
    crate::cluster::credentials::validate(&name, &credential)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let by = who(&headers, remote.as_ref().map(|r| &r.0.0), &s)?;
    let shown = view(&name, &credential);
    let a = forward(
        &s,
        InventoryChange::SetCredential {
            name: name.clone(),
            credential,
        },
    )
    .await?;
    let kind = shown.version;
    let user = shown
        .user
        .as_deref()
        .map_or(String::new(), |u| format!(", user {u}"));
    s.events.append(NewEvent::now(
        None,
        "credential.set",
        Severity::Info,
        format!("credential profile {name} ({kind}{user}) set by {by}"),
    ));
    tracing::info!("credential profile {name} ({kind}{user}) set by {by}");
    Ok((
        if a.applied.is_some() {
            StatusCode::CREATED
        } else {
            StatusCode::ACCEPTED
        },
        Json(Set {
            credential: shown,
            applied: a.applied,
        }),
    ))
}

/// `DELETE /api/v1/credentials/{name}`: 409 while an element names it.
pub(crate) async fn remove(
    State(s): State<Shared>,
    name: Result<Path<String>, PathRejection>,
    remote: Option<axum::Extension<ConnectInfo<Remote>>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let by = who(&headers, remote.as_ref().map(|r| &r.0.0), &s)?;
    let a = forward(&s, InventoryChange::RemoveCredential(name.clone())).await?;
    s.events.append(NewEvent::now(
        None,
        "credential.removed",
        Severity::Info,
        format!("credential profile {name} removed by {by}"),
    ));
    tracing::info!("credential profile {name} removed by {by}");
    Ok(if a.applied.is_some() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "name": name, "applied": null })),
        )
            .into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthProtocol, NetconfCredential, PrivProtocol, Secret};

    #[test]
    fn views_name_secrets_but_never_show_them() {
        let profiles = [
            Credential::V2c {
                community: Secret::new("SECRET-community"),
            },
            Credential::V3 {
                user: "authuser".into(),
                auth_protocol: Some(AuthProtocol::Sha),
                auth_password: Some(Secret::new("SECRET-auth")),
                priv_protocol: Some(PrivProtocol::Aes),
                priv_password: Some(Secret::new("SECRET-priv")),
            },
            Credential::Netconf(NetconfCredential {
                user: "admin".into(),
                password: Some(Secret::new("SECRET-password")),
                private_key: None,
                private_key_passphrase: None,
                known_hosts: None,
                host_key_sha256: Some("SHA256:abc".into()),
                insecure_accept_any_host_key: false,
            }),
        ];
        for c in &profiles {
            let json = serde_json::to_string(&view("p", c)).expect("json");
            assert!(!json.contains("SECRET"), "{json}");
            assert!(json.contains("\"secrets\":[\""), "{json}");
        }
        let v3 = serde_json::to_value(view("p", &profiles[1])).expect("json");
        assert_eq!(v3["auth_protocol"], "sha");
        assert_eq!(v3["priv_protocol"], "aes");
        assert_eq!(v3["user"], "authuser");
        let nc = serde_json::to_value(view("p", &profiles[2])).expect("json");
        assert_eq!(nc["host_key_check"], "host_key_sha256");
    }
}
