//! The TAG and VALUE fields of one `.snmprec` record, read the way snmpsim reads them
//! (`snmpsim/record/snmprec.py`, `grammar/snmprec.py`): bytes, not UTF-8 text (snmpsim decodes
//! lines as ISO-8859-1, so every byte is one octet of the value).
//!
//! Tags are the sum of the ASN.1 tag's class and number: 2 Integer32, 4 OCTET STRING, 5 NULL,
//! 6 OBJECT IDENTIFIER, 64 IpAddress, 65 Counter32, 66 Gauge32, 67 TimeTicks, 68 Opaque,
//! 70 Counter64, 128 noSuchObject, 129 noSuchInstance, 130 endOfMibView. A suffix says how the
//! value is written: `x` hex of the content octets (what snmpsim's recorder writes for any
//! string that is not plain alphanumeric, and always for IpAddress), `e` a Python-escaped
//! string (`\n`, `\x00`...). Without a suffix, an IpAddress is either dotted (`192.0.2.1`) or
//! its 4 raw octets, as in snmpsim's own recorded walks.

use std::net::Ipv4Addr;

use super::Value;

/// Why a tag or value was refused; the caller adds the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    Tag,
    /// `TAG:MODULE`: snmpsim computes the value with a variation module at request time.
    Variation(String),
    Value(&'static str),
}

enum Encoding {
    Plain,
    Hex,
    Escaped,
}

/// Parses one record's tag and value.
pub(crate) fn parse(tag: &[u8], value: &[u8]) -> Result<Value, Refusal> {
    if let Some(colon) = tag.iter().position(|&b| b == b':') {
        let module = String::from_utf8_lossy(&tag[colon + 1..]).into_owned();
        return Err(Refusal::Variation(module));
    }
    let (num, encoding) = match tag.split_last() {
        Some((b'x', n)) => (n, Encoding::Hex),
        Some((b'e', n)) => (n, Encoding::Escaped),
        _ => (tag, Encoding::Plain),
    };
    let num: u8 = std::str::from_utf8(num)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Refusal::Tag)?;
    let bad = Refusal::Value;
    // The octets a string type carries; numbers read their hex big-endian like BER content.
    let octets = match encoding {
        Encoding::Plain => None,
        Encoding::Hex => Some(decode_hex(trim(value)).ok_or(bad("not an even-length hex string"))?),
        Encoding::Escaped => match num {
            4 | 64 | 68 => Some(unescape(value)?),
            _ => return Err(bad("the e (escaped) form is for string types only")),
        },
    };
    let text = || std::str::from_utf8(trim(value)).map_err(|_| bad("not ASCII"));
    Ok(match num {
        2 => Value::Integer(match &octets {
            Some(b) => i32::try_from(be_signed(b).ok_or(bad("too long"))?)
                .map_err(|_| bad("outside Integer32"))?,
            None => text()?.parse().map_err(|_| bad("not an Integer32"))?,
        }),
        4 => Value::OctetString(octets.unwrap_or_else(|| value.to_vec())),
        5 => Value::Null,
        6 => match &octets {
            Some(_) => return Err(bad("hex OIDs are not supported")),
            None => Value::ObjectId(super::parse_oid(text()?).ok_or(bad("not an OID"))?),
        },
        64 => Value::IpAddress(match octets {
            Some(b) => ipv4(&b).ok_or(bad("need 4 octets"))?,
            // A dotted address has at least 7 characters, so 4 octets can only be raw.
            None => match ipv4(value) {
                Some(ip) => ip,
                None => text()?.parse().map_err(|_| bad("not an IPv4 address"))?,
            },
        }),
        65..=67 => {
            let n = match &octets {
                Some(b) => u32::try_from(be_unsigned(b).ok_or(bad("too long"))?)
                    .map_err(|_| bad("outside 0..2^32"))?,
                None => text()?.parse().map_err(|_| bad("not a 32-bit unsigned"))?,
            };
            match num {
                65 => Value::Counter32(n),
                66 => Value::Gauge32(n),
                _ => Value::TimeTicks(n),
            }
        }
        68 => Value::Opaque(octets.unwrap_or_else(|| value.to_vec())),
        70 => Value::Counter64(match &octets {
            Some(b) => be_unsigned(b).ok_or(bad("too long"))?,
            None => text()?.parse().map_err(|_| bad("not a 64-bit unsigned"))?,
        }),
        128 => Value::NoSuchObject,
        129 => Value::NoSuchInstance,
        130 => Value::EndOfMibView,
        _ => return Err(Refusal::Tag),
    })
}

fn ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let octets: [u8; 4] = b.try_into().ok()?;
    Some(Ipv4Addr::from(octets))
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn decode_hex(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks(2)
        .map(|h| {
            let h = std::str::from_utf8(h).ok()?;
            u8::from_str_radix(h, 16).ok()
        })
        .collect()
}

/// snmpsim's `evaluate_raw_string`: Python string escapes, each other byte as itself.
fn unescape(s: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter().copied();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let unknown = Refusal::Value(
            "unknown escape (known: \\\\ \\' \\\" \\a \\b \\f \\n \\r \\t \\v \\xHH)",
        );
        out.push(match it.next().ok_or(unknown.clone())? {
            b'\\' => b'\\',
            b'\'' => b'\'',
            b'"' => b'"',
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 11,
            b'x' => {
                let hex = [it.next(), it.next()];
                let [Some(h), Some(l)] = hex else {
                    return Err(Refusal::Value("\\x needs two hex digits"));
                };
                decode_hex(&[h, l])
                    .and_then(|v| v.first().copied())
                    .ok_or(Refusal::Value("\\x needs two hex digits"))?
            }
            _ => return Err(unknown),
        });
    }
    Ok(out)
}

pub(super) fn be_unsigned(b: &[u8]) -> Option<u64> {
    // A leading zero octet is how BER keeps a high bit unsigned, so allow one extra.
    let b = match b {
        [0, rest @ ..] if rest.len() == 8 => rest,
        _ => b,
    };
    (b.len() <= 8).then(|| b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

fn be_signed(b: &[u8]) -> Option<i64> {
    if b.len() > 8 {
        return None;
    }
    if b.is_empty() {
        return Some(0);
    }
    let neg = b[0] & 0x80 != 0;
    let init: i64 = if neg { -1 } else { 0 };
    Some(b.iter().fold(init, |acc, &x| (acc << 8) | i64::from(x)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(tag: &str, value: &[u8]) -> Value {
        parse(tag.as_bytes(), value).unwrap_or_else(|e| panic!("{tag}|{value:?}: {e:?}"))
    }

    #[test]
    fn ip_address_in_every_form_snmpsim_writes() {
        let want = Value::IpAddress(Ipv4Addr::new(74, 125, 77, 125));
        // linux-full-walk.snmprec: `...|64|J}M}`, the raw octets.
        assert_eq!(ok("64", b"J}M}"), want);
        assert_eq!(ok("64", b"74.125.77.125"), want);
        assert_eq!(ok("64x", b"4a7d4d7d"), want);
        assert_eq!(ok("64e", b"J}\\x4d}"), want);
        // Raw octets need not be text: 192.168.200.255.
        assert_eq!(
            ok("64", &[192, 168, 200, 255]),
            Value::IpAddress(Ipv4Addr::new(192, 168, 200, 255))
        );
        for (tag, v) in [("64", &b"J}M"[..]), ("64", b"1.2.3"), ("64x", b"4a7d4d")] {
            assert!(parse(tag.as_bytes(), v).is_err(), "{tag}|{v:?}");
        }
    }

    #[test]
    fn strings_keep_their_octets() {
        // ISO-8859-1, as snmpsim decodes them: bytes, whatever they are.
        assert_eq!(ok("4", b"caf\xe9"), Value::OctetString(b"caf\xe9".to_vec()));
        assert_eq!(
            ok("4e", b"a\\tb\\n\\x00\\\\\\'\\\""),
            Value::OctetString(b"a\tb\n\0\\'\"".to_vec())
        );
        assert_eq!(
            ok("68x", b"9f780441"),
            Value::Opaque(vec![0x9f, 0x78, 4, 0x41])
        );
        assert_eq!(ok("68e", b"\\x01\\x02"), Value::Opaque(vec![1, 2]));
        assert!(parse(b"4e", b"\\q").is_err());
        assert!(parse(b"4e", b"\\x4").is_err());
        assert!(parse(b"2e", b"1").is_err(), "e is for strings");
    }

    #[test]
    fn exceptions_and_variations() {
        assert_eq!(ok("128", b""), Value::NoSuchObject);
        assert_eq!(ok("129", b""), Value::NoSuchInstance);
        assert_eq!(ok("130", b""), Value::EndOfMibView);
        assert_eq!(
            parse(b"65:numeric", b"min=1,max=2"),
            Err(Refusal::Variation("numeric".into()))
        );
        assert_eq!(parse(b":sql", b"x"), Err(Refusal::Variation("sql".into())));
        assert_eq!(parse(b"4q", b"x"), Err(Refusal::Tag));
        assert_eq!(parse(b"71", b"1"), Err(Refusal::Tag));
    }

    #[test]
    fn numbers_trim_spaces_and_read_hex_big_endian() {
        assert_eq!(ok("2", b" -5 "), Value::Integer(-5));
        assert_eq!(ok("2x", b"ff"), Value::Integer(-1));
        assert_eq!(ok("65x", b"00ffffffff"), Value::Counter32(u32::MAX));
        assert_eq!(ok("70x", b"00ffffffffffffffff"), Value::Counter64(u64::MAX));
        assert!(parse(b"65x", b"0100000000").is_err());
        assert!(parse(b"67", b"\xe9").is_err());
    }
}
