//! Strings that come from devices (sysName, sysDescr, interface names, NETCONF leaves): kept
//! as received but bounded, so an agent cannot make us store or print megabytes.

/// The most bytes of one device string kept.
pub const MAX_DEVICE_TEXT: usize = 1024;

/// `bytes` as text (invalid UTF-8 replaced), at most [`MAX_DEVICE_TEXT`] bytes of it.
pub fn device_bytes(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_DEVICE_TEXT)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    // A replacement character for a sequence cut in half can push it past the bound.
    cap(&mut s);
    s
}

/// `text`, cut to at most [`MAX_DEVICE_TEXT`] bytes on a character boundary.
pub fn device_str(text: &str) -> String {
    let mut s = text.to_owned();
    cap(&mut s);
    s
}

fn cap(s: &mut String) {
    if s.len() > MAX_DEVICE_TEXT {
        let mut end = MAX_DEVICE_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_30_kb_binary_sysname_keeps_1_kib() {
        let raw: Vec<u8> = (0..30_000u32).map(|i| (i % 256) as u8).collect();
        let s = device_bytes(&raw);
        assert!(s.len() <= MAX_DEVICE_TEXT, "{}", s.len());
        assert!(s.starts_with("\u{0}\u{1}\u{2}"), "kept as received");
        let long = "é".repeat(1000);
        let t = device_str(&long);
        assert!(t.len() <= MAX_DEVICE_TEXT && t.chars().all(|c| c == 'é'));
        assert_eq!(device_str("r1"), "r1");
    }
}
