//! SSH host key fingerprints in OpenSSH's `SHA256:<base64>` form (`ssh-keygen -lf`), as the
//! configuration pins them and as a NETCONF session reports a key it refused.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `SHA256:...` for a raw SHA-256 digest.
pub(crate) fn fingerprint_sha256(digest: &[u8]) -> String {
    let mut out = String::from("SHA256:");
    for chunk in digest.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The 32-byte digest of a `SHA256:...` fingerprint (padding optional), or None.
pub(crate) fn parse_sha256_fingerprint(s: &str) -> Option<Vec<u8>> {
    let b64 = s.trim().strip_prefix("SHA256:")?.trim_end_matches('=');
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in b64.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    (out.len() == 32).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_and_match_ssh_keygen() {
        // `ssh-keygen -lf` of a key whose SHA-256 digest is 0..32.
        let digest: Vec<u8> = (0u8..32).collect();
        let fp = fingerprint_sha256(&digest);
        assert_eq!(fp, "SHA256:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
        assert_eq!(parse_sha256_fingerprint(&fp), Some(digest.clone()));
        assert_eq!(parse_sha256_fingerprint(&format!("{fp}=")), Some(digest));
        assert_eq!(parse_sha256_fingerprint("SHA256:AAEC"), None);
        assert_eq!(parse_sha256_fingerprint("MD5:aa:bb"), None);
        assert_eq!(parse_sha256_fingerprint("SHA256:!!!"), None);
    }
}
