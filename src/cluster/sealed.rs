//! The pool's credential profiles at rest: sealed (AES-256-GCM) before they reach redb, in the
//! persisted assignment and in the inventory journal, with a key derived (HKDF-SHA256) from
//! the pool secret. A copy of a member's redb file (a backup, a disk sent away) then shows no
//! secret without the config file. The key is only as secret as the pool secret: a pool of
//! one without `[pool] secret` seals with a key anyone can derive.
//!
//! Format: hex of nonce (12 bytes) || ciphertext || tag. A seal that does not open (the pool
//! secret changed, a damaged value) is logged and dropped: the member then uses the file's
//! profiles until the master distributes the pool's.

use super::protocol::{Assignment, Credentials};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// Key of the seal, derived once from the pool secret.
pub(crate) struct Sealer {
    key: Option<LessSafeKey>,
    rng: SystemRandom,
}

/// Where the sealed profiles go in the stored assignment's JSON.
const FIELD: &str = "sealed_credentials";

impl Sealer {
    pub(crate) fn new(pool_secret: &str) -> Sealer {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"emspool credentials at rest v1");
        let prk = salt.extract(pool_secret.as_bytes());
        let mut raw = [0u8; 32];
        // Fails only for an output longer than HKDF allows; 32 bytes never is.
        let key = prk
            .expand(&[b"aes-256-gcm"], &AES_256_GCM)
            .and_then(|okm| okm.fill(&mut raw))
            .ok()
            .and_then(|()| UnboundKey::new(&AES_256_GCM, &raw).ok())
            .map(LessSafeKey::new);
        Sealer {
            key,
            rng: SystemRandom::new(),
        }
    }

    pub(crate) fn seal(&self, plain: &[u8]) -> Option<String> {
        let key = self.key.as_ref()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut buf = plain.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .ok()?;
        let mut out = String::with_capacity((NONCE_LEN + buf.len()) * 2);
        for b in nonce.iter().chain(&buf) {
            out.push_str(&format!("{b:02x}"));
        }
        Some(out)
    }

    pub(crate) fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        let key = self.key.as_ref()?;
        let bytes = unhex(sealed)?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (n, ct) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).ok()?;
        let mut buf = ct.to_vec();
        let plain = key.open_in_place(nonce, Aad::empty(), &mut buf).ok()?;
        Some(plain.to_vec())
    }

    /// The assignment as redb keeps it: its profiles sealed.
    pub(crate) fn store_assignment(&self, a: &Assignment) -> Vec<u8> {
        let mut v = match serde_json::to_value(a) {
            Ok(v) => v,
            Err(_) => return Vec::new(),
        };
        if let (Some(obj), Some(creds)) = (v.as_object_mut(), &a.credentials) {
            obj.remove("credentials");
            let sealed = serde_json::to_vec(creds)
                .ok()
                .and_then(|plain| self.seal(&plain));
            match sealed {
                Some(s) => {
                    obj.insert(FIELD.into(), s.into());
                }
                // Never stored in the clear: without them the file's profiles apply here
                // until the master distributes the pool's again.
                None => tracing::error!("cannot seal the credential profiles; not persisted"),
            }
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// Reads back what [`Sealer::store_assignment`] wrote (or an assignment stored before
    /// profiles were sealed).
    pub(crate) fn load_assignment(&self, bytes: &[u8]) -> Assignment {
        let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            return Assignment::default();
        };
        let sealed = v
            .as_object_mut()
            .and_then(|o| o.remove(FIELD))
            .and_then(|s| s.as_str().map(str::to_owned));
        let mut a: Assignment = serde_json::from_value(v).unwrap_or_default();
        if let Some(s) = sealed {
            let creds: Option<Credentials> = self
                .open(&s)
                .and_then(|plain| serde_json::from_slice(&plain).ok());
            if creds.is_none() {
                tracing::error!(
                    "the persisted credential profiles do not open (was the pool secret \
                     changed?): using the config file's until the master distributes the pool's"
                );
            }
            a.credentials = creds;
        }
        a
    }

    /// A journal blob as redb keeps it (`{"sealed": HEX}`).
    pub(crate) fn store_blob(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let s = self.seal(plain)?;
        serde_json::to_vec(&serde_json::json!({ "sealed": s })).ok()
    }

    /// Reads back [`Sealer::store_blob`]; a blob stored before sealing passes as it is.
    pub(crate) fn load_blob(&self, stored: &[u8]) -> Option<Vec<u8>> {
        match serde_json::from_slice::<serde_json::Value>(stored) {
            Ok(serde_json::Value::Object(o)) => o
                .get("sealed")
                .and_then(|s| s.as_str())
                .and_then(|s| self.open(s)),
            _ => Some(stored.to_vec()),
        }
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Credential, Secret};

    #[test]
    fn profiles_are_stored_sealed_and_open_only_with_the_same_pool_secret() {
        let mut a = Assignment::default();
        let mut creds = Credentials::new();
        creds.insert(
            "lab".into(),
            Credential::V2c {
                community: Secret::new("SECRET-community"),
            },
        );
        a.credentials = Some(creds);
        let s = Sealer::new("pool-secret-1");
        let stored = s.store_assignment(&a);
        let text = String::from_utf8_lossy(&stored);
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains(FIELD), "{text}");
        assert_eq!(s.load_assignment(&stored), a);
        // Another pool secret: the profiles are dropped, the rest of the assignment stays.
        let other = Sealer::new("pool-secret-2").load_assignment(&stored);
        assert_eq!(other.credentials, None);
        assert_eq!(other.id, a.id);
        // An assignment stored before sealing still loads.
        let plain = serde_json::to_vec(&a).expect("json");
        assert_eq!(s.load_assignment(&plain), a);
        // Blobs (the journal), and a tampered seal.
        let blob = s.store_blob(b"[[1,\"SECRET\"]]").expect("sealed");
        assert!(!String::from_utf8_lossy(&blob).contains("SECRET"));
        assert_eq!(
            s.load_blob(&blob).as_deref(),
            Some(&b"[[1,\"SECRET\"]]"[..])
        );
        assert_eq!(s.load_blob(b"[]").as_deref(), Some(&b"[]"[..]));
        let mut sealed = s.seal(b"x").expect("sealed");
        let flipped = if sealed.ends_with('0') { "1" } else { "0" };
        sealed.replace_range(sealed.len() - 1.., flipped);
        assert!(s.open(&sealed).is_none(), "a changed tag must not open");
        assert!(s.open("zz").is_none());
    }
}
