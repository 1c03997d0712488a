//! snmpsim's `.snmprec` format: one `OID|TAG|VALUE` line per object (tags and value forms in
//! [`value`]).
//!
//! The parsed [`Dataset`] is immutable and meant to be shared (`Arc`) by every simulated agent, so
//! each value is converted to its wire form once, here, instead of on every request.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use rasn::types::{ObjectIdentifier, OctetString};
use rasn_snmp::v2::{ObjectSyntax, TimeTicks, VarBind, VarBindValue};

use super::codec::varbind_len;

mod value;

/// The router template shipped with emspool: system group, 24-row ifTable and ifXTable.
pub const ROUTER24: &str = include_str!("../../../tests/data/router24.snmprec");

/// A typed SNMP value as written in a `.snmprec` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Integer(i32),
    OctetString(Vec<u8>),
    Null,
    ObjectId(Vec<u32>),
    IpAddress(Ipv4Addr),
    Counter32(u32),
    Gauge32(u32),
    TimeTicks(u32),
    Opaque(Vec<u8>),
    Counter64(u64),
    /// Tags 128-130: a Get of the OID answers this exception; GetNext and GetBulk pass over it.
    NoSuchObject,
    NoSuchInstance,
    EndOfMibView,
}

impl Value {
    /// The snmprec tag (which is also the BER tag number for application types).
    pub fn tag(&self) -> u8 {
        match self {
            Value::Integer(_) => 2,
            Value::OctetString(_) => 4,
            Value::Null => 5,
            Value::ObjectId(_) => 6,
            Value::IpAddress(_) => 64,
            Value::Counter32(_) => 65,
            Value::Gauge32(_) => 66,
            Value::TimeTicks(_) => 67,
            Value::Opaque(_) => 68,
            Value::Counter64(_) => 70,
            Value::NoSuchObject => 128,
            Value::NoSuchInstance => 129,
            Value::EndOfMibView => 130,
        }
    }

    /// An exception (tags 128-130) stands for the absence of a value.
    pub fn is_exception(&self) -> bool {
        matches!(
            self,
            Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView
        )
    }
}

/// Why a `.snmprec` line (1-based `line`) was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SnmprecError {
    #[error("line {line}: expected OID|TAG|VALUE")]
    MissingField { line: usize },
    #[error("line {line}: bad OID {oid:?} (want dotted decimal, first arc 0-2, at least 2 arcs)")]
    BadOid { line: usize, oid: String },
    #[error(
        "line {line}: unsupported tag {tag:?} (supported: 2 4 5 6 64 65 66 67 68 70 128 129 130, \
         optionally with an x (hex) or e (escaped) suffix)"
    )]
    BadTag { line: usize, tag: String },
    #[error(
        "line {line}: tag {tag:?} asks for snmpsim's variation module {module:?}, which emspool \
         sim does not run: it serves each record's value as written"
    )]
    Variation {
        line: usize,
        tag: String,
        module: String,
    },
    #[error("line {line}: bad value {value:?} for tag {tag}: {why}")]
    BadValue {
        line: usize,
        tag: String,
        value: String,
        why: &'static str,
    },
    #[error("line {line}: OID {oid} already defined on line {first}")]
    DuplicateOid {
        line: usize,
        first: usize,
        oid: String,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// One object of the dataset.
#[derive(Debug, Clone)]
pub struct Entry {
    oid: ObjectIdentifier,
    value: Value,
    wire: VarBindValue,
    /// Encoded size of the whole varbind; lets GetBulk stop generating near the size limit.
    ber_len: usize,
}

impl Entry {
    pub fn oid(&self) -> &[u32] {
        self.oid.as_ref()
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    pub(crate) fn name(&self) -> &ObjectIdentifier {
        &self.oid
    }

    pub(crate) fn wire(&self) -> &VarBindValue {
        &self.wire
    }

    pub(crate) fn ber_len(&self) -> usize {
        self.ber_len
    }
}

/// An immutable MIB: entries sorted by OID (arc by arc), looked up by binary search.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    entries: Vec<Entry>,
}

impl Dataset {
    /// Parses `.snmprec` text; lines need not be sorted.
    pub fn parse(text: &str) -> Result<Dataset, SnmprecError> {
        Dataset::parse_bytes(text.as_bytes())
    }

    /// Parses a `.snmprec` file's bytes. Values are octets, not UTF-8: snmpsim reads its files
    /// as ISO-8859-1, and its recordings hold raw IpAddress octets and Latin-1 strings.
    pub fn parse_bytes(text: &[u8]) -> Result<Dataset, SnmprecError> {
        let mut rows: Vec<(usize, Entry)> = Vec::new();
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            // One CR of a CRLF ending; more would eat a raw IpAddress octet 13.
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let content = raw.trim_ascii();
            if content.is_empty() || content.starts_with(b"#") {
                continue;
            }
            rows.push((line, parse_line(line, raw)?));
        }
        rows.sort_by(|a, b| a.1.oid().cmp(b.1.oid()).then(a.0.cmp(&b.0)));
        for pair in rows.windows(2) {
            if pair[0].1.oid() == pair[1].1.oid() {
                return Err(SnmprecError::DuplicateOid {
                    line: pair[1].0,
                    first: pair[0].0,
                    oid: dotted(pair[1].1.oid()),
                });
            }
        }
        Ok(Dataset {
            entries: rows.into_iter().map(|(_, e)| e).collect(),
        })
    }

    pub fn load(path: &Path) -> Result<Dataset, SnmprecError> {
        let text = std::fs::read(path).map_err(|source| SnmprecError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Dataset::parse_bytes(&text)
    }

    /// The embedded [`ROUTER24`] template.
    pub fn router24() -> Result<Dataset, SnmprecError> {
        Dataset::parse(ROUTER24)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Position of the exact `oid`.
    pub fn find(&self, oid: &[u32]) -> Option<usize> {
        self.entries.binary_search_by(|e| e.oid().cmp(oid)).ok()
    }

    /// Position of the first entry strictly after `oid` (GETNEXT order) that has a value: an
    /// exception record (tags 128-130) answers a Get of its own OID, not a walk.
    pub fn next_after(&self, oid: &[u32]) -> Option<usize> {
        self.next_from(self.entries.partition_point(|e| e.oid() <= oid))
    }

    /// Position of the first entry at `i` or after that has a value.
    pub fn next_from(&self, i: usize) -> Option<usize> {
        let rest = self.entries.get(i..)?;
        rest.iter()
            .position(|e| !e.value.is_exception())
            .map(|k| i + k)
    }

    pub fn get(&self, oid: &[u32]) -> Option<&Value> {
        self.find(oid).map(|i| &self.entries[i].value)
    }
}

/// Formats arcs as `1.3.6.1`.
pub fn dotted(oid: &[u32]) -> String {
    struct D<'a>(&'a [u32]);
    impl fmt::Display for D<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for (i, arc) in self.0.iter().enumerate() {
                if i > 0 {
                    f.write_str(".")?;
                }
                write!(f, "{arc}")?;
            }
            Ok(())
        }
    }
    D(oid).to_string()
}

/// Parses `1.3.6.1` (a leading dot is tolerated); `None` unless it is encodable in BER.
pub fn parse_oid(s: &str) -> Option<Vec<u32>> {
    let s = s.strip_prefix('.').unwrap_or(s);
    let arcs: Vec<u32> = s
        .split('.')
        .map(|a| a.parse::<u32>().ok())
        .collect::<Option<_>>()?;
    let valid = arcs.len() >= 2 && arcs[0] <= 2 && (arcs[0] == 2 || arcs[1] < 40);
    valid.then_some(arcs)
}

fn parse_line(line: usize, raw: &[u8]) -> Result<Entry, SnmprecError> {
    let mut fields = raw.splitn(3, |&b| b == b'|');
    let (Some(oid_b), Some(tag_b), Some(value_b)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(SnmprecError::MissingField { line });
    };
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let bad_oid = || SnmprecError::BadOid {
        line,
        oid: lossy(oid_b),
    };
    let arcs = std::str::from_utf8(oid_b.trim_ascii())
        .ok()
        .and_then(parse_oid)
        .ok_or_else(bad_oid)?;
    let tag = lossy(tag_b.trim_ascii());
    let value = value::parse(tag_b.trim_ascii(), value_b).map_err(|r| match r {
        value::Refusal::Tag => SnmprecError::BadTag {
            line,
            tag: tag.clone(),
        },
        value::Refusal::Variation(module) => SnmprecError::Variation {
            line,
            tag: tag.clone(),
            module,
        },
        value::Refusal::Value(why) => SnmprecError::BadValue {
            line,
            tag: tag.clone(),
            value: value_b.escape_ascii().to_string(),
            why,
        },
    })?;
    let wire = to_wire(&value).ok_or_else(|| SnmprecError::BadValue {
        line,
        tag,
        value: value_b.escape_ascii().to_string(),
        why: "not encodable",
    })?;
    let oid = ObjectIdentifier::new(arcs).ok_or_else(bad_oid)?;
    let ber_len = varbind_len(&VarBind {
        name: oid.clone(),
        value: wire.clone(),
    });
    Ok(Entry {
        oid,
        value,
        wire,
        ber_len,
    })
}

/// The rasn form of a value. rasn-snmp does not re-export the application types (Counter32,
/// Gauge32, Counter64, Opaque), so those are built by decoding their BER encoding, once per
/// dataset entry.
pub(crate) fn to_wire(value: &Value) -> Option<VarBindValue> {
    let syntax: ObjectSyntax = match value {
        Value::Integer(n) => (*n).into(),
        Value::OctetString(b) => OctetString::from(b.clone()).into(),
        Value::Null => return Some(VarBindValue::Unspecified),
        Value::ObjectId(arcs) => ObjectIdentifier::new(arcs.clone())?.into(),
        Value::TimeTicks(t) => ticks_syntax(*t),
        Value::IpAddress(ip) => from_ber(0x40, &ip.octets())?,
        Value::Counter32(n) => from_ber(0x41, &uint_content(u64::from(*n)))?,
        Value::Gauge32(n) => from_ber(0x42, &uint_content(u64::from(*n)))?,
        Value::Opaque(b) => from_ber(0x44, b)?,
        Value::Counter64(n) => from_ber(0x46, &uint_content(*n))?,
        Value::NoSuchObject => return Some(VarBindValue::NoSuchObject),
        Value::NoSuchInstance => return Some(VarBindValue::NoSuchInstance),
        Value::EndOfMibView => return Some(VarBindValue::EndOfMibView),
    };
    Some(VarBindValue::Value(syntax))
}

/// `TimeTicks` is re-exported only as a type alias, which cannot be called as a constructor.
pub(crate) fn ticks_syntax(ticks: u32) -> ObjectSyntax {
    #[allow(clippy::init_numbered_fields)]
    TimeTicks { 0: ticks }.into()
}

fn from_ber(tag: u8, content: &[u8]) -> Option<ObjectSyntax> {
    let mut ber = vec![tag];
    let len = content.len();
    if len < 0x80 {
        ber.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        ber.push(0x80 | (bytes.len() - skip) as u8);
        ber.extend_from_slice(&bytes[skip..]);
    }
    ber.extend_from_slice(content);
    rasn::ber::decode::<ObjectSyntax>(&ber).ok()
}

/// Minimal two's-complement content octets of an unsigned number.
fn uint_content(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(7);
    let mut out = Vec::with_capacity(9);
    if bytes[skip] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&bytes[skip..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_tag() {
        let text = "\
# comment

1.3.6.1.2|2|-5
1.3.6.1.3|4|hello | world
1.3.6.1.4|4x|00005e005301
1.3.6.1.5|5|
1.3.6.1.6|6|1.3.6.1.4.1.8072
1.3.6.1.7|64|192.0.2.1
1.3.6.1.7.1|64x|c0000202
1.3.6.1.8|65|4294967295
1.3.6.1.9|66|7
1.3.6.1.10|67|123456
1.3.6.1.11|68x|0102
1.3.6.1.12|70|18446744073709551615
1.3.6.1.13|2x|ff
";
        let d = Dataset::parse(text).expect("parses");
        assert_eq!(d.len(), 13);
        assert_eq!(d.get(&[1, 3, 6, 1, 2]), Some(&Value::Integer(-5)));
        assert_eq!(
            d.get(&[1, 3, 6, 1, 3]),
            Some(&Value::OctetString(b"hello | world".to_vec()))
        );
        assert_eq!(
            d.get(&[1, 3, 6, 1, 4]),
            Some(&Value::OctetString(vec![0, 0, 0x5e, 0, 0x53, 1]))
        );
        assert_eq!(d.get(&[1, 3, 6, 1, 5]), Some(&Value::Null));
        assert_eq!(
            d.get(&[1, 3, 6, 1, 7, 1]),
            Some(&Value::IpAddress(Ipv4Addr::new(192, 0, 2, 2)))
        );
        assert_eq!(d.get(&[1, 3, 6, 1, 8]), Some(&Value::Counter32(u32::MAX)));
        assert_eq!(d.get(&[1, 3, 6, 1, 11]), Some(&Value::Opaque(vec![1, 2])));
        assert_eq!(d.get(&[1, 3, 6, 1, 12]), Some(&Value::Counter64(u64::MAX)));
        assert_eq!(d.get(&[1, 3, 6, 1, 13]), Some(&Value::Integer(-1)));
        for e in d.entries() {
            assert!(matches!(
                (e.value(), e.wire()),
                (Value::Null, VarBindValue::Unspecified) | (_, VarBindValue::Value(_))
            ));
        }
    }

    #[test]
    fn sorts_numerically_not_textually() {
        let d = Dataset::parse("1.3.6.1.10|2|1\n1.3.6.1.9|2|1\n1.3.6.1.9.5|2|1\n1.3.6.1|2|1\n")
            .expect("parses");
        let oids: Vec<String> = d.entries().iter().map(|e| dotted(e.oid())).collect();
        assert_eq!(oids, ["1.3.6.1", "1.3.6.1.9", "1.3.6.1.9.5", "1.3.6.1.10"]);
        assert_eq!(d.next_after(&[1, 3]), Some(0));
        assert_eq!(d.next_after(&[1, 3, 6, 1, 9]), Some(2));
        assert_eq!(d.next_after(&[1, 3, 6, 1, 9, 4, 7]), Some(2));
        assert_eq!(d.next_after(&[1, 3, 6, 1, 10]), None);
        assert_eq!(d.find(&[1, 3, 6, 1, 9, 5]), Some(2));
        assert_eq!(d.find(&[1, 3, 6, 1, 9, 6]), None);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let cases: &[(&str, usize)] = &[
            ("1.3.6.1|2|1\n1.3.6.1.2|2\n", 2),
            ("\n#x\nfoo|2|1\n", 3),
            ("1.3.6.1|99|1\n", 1),
            ("1.3.6.1|2|abc\n", 1),
            ("1.3.6.1|2|3000000000\n", 1),
            ("1.3.6.1|4x|abc\n", 1),
            ("1.3.6.1|64|300.1.1.1\n", 1),
            ("1.3.6.1|65|-1\n", 1),
            ("1.3.6.1|6|banana\n", 1),
            ("5.3.6.1|2|1\n", 1),
            ("1.3.6.1|2|1\n1.3.6.1|2|2\n", 2),
            ("1.3.6.1|4q|1\n", 1),
            ("1.3.6.1|4e|\\q\n", 1),
            ("1.3.6.1|2|1\n1.3.6.2|65:numeric|min=1\n", 2),
            ("1.3.6.1|2|1\n1.3.6.2|64|J}M\n", 2),
        ];
        for (text, want) in cases {
            let err = Dataset::parse(text).expect_err(text);
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("line {want}:")),
                "{text:?} -> {msg}"
            );
        }
    }

    #[test]
    fn reads_bytes_as_snmpsim_does() {
        // CRLF endings, a raw IpAddress with octets above 127 and a Latin-1 string: not UTF-8.
        let mut text = b"# recorded\r\n1.3.6.1.2.1.4.22.1.3.2.10.0.0.1|64|".to_vec();
        text.extend_from_slice(&[192, 168, 0x0d, 0xff]);
        text.extend_from_slice(b"\r\n1.3.6.1.2.1.1.1.0|4|caf\xe9\r\n1.3.6.1.2.1.1.3.0|67|5\n");
        let d = Dataset::parse_bytes(&text).expect("parses");
        assert_eq!(
            d.get(&[1, 3, 6, 1, 2, 1, 4, 22, 1, 3, 2, 10, 0, 0, 1]),
            Some(&Value::IpAddress(Ipv4Addr::new(192, 168, 13, 255)))
        );
        assert_eq!(
            d.get(&[1, 3, 6, 1, 2, 1, 1, 1, 0]),
            Some(&Value::OctetString(b"caf\xe9".to_vec()))
        );
        let err = Dataset::parse("1.3.6.1|2|1\n1.3.6.2|67:numeric|rate=1\n").expect_err("numeric");
        let msg = err.to_string();
        assert!(
            msg.starts_with("line 2:") && msg.contains("\"numeric\""),
            "{msg}"
        );
    }

    #[test]
    fn walks_pass_over_exception_records() {
        let d = Dataset::parse(
            "1.3.6.1.1|2|1\n1.3.6.1.2|128|\n1.3.6.1.3|129|\n1.3.6.1.4|2|4\n1.3.6.1.5|130|\n",
        )
        .expect("parses");
        assert_eq!(d.get(&[1, 3, 6, 1, 2]), Some(&Value::NoSuchObject));
        assert_eq!(d.next_after(&[1, 3, 6, 1, 1]), d.find(&[1, 3, 6, 1, 4]));
        assert_eq!(d.next_after(&[1, 3, 6, 1, 4]), None);
        assert!(matches!(
            d.entries()[d.find(&[1, 3, 6, 1, 3]).unwrap()].wire(),
            VarBindValue::NoSuchInstance
        ));
    }

    #[test]
    fn template_parses() {
        let d = Dataset::router24().expect("embedded template parses");
        assert_eq!(d.len(), 536);
        assert_eq!(
            d.get(&[1, 3, 6, 1, 2, 1, 1, 5, 0]),
            Some(&Value::OctetString(b"router24".to_vec()))
        );
    }

    #[test]
    fn uint_content_is_minimal_and_unsigned() {
        assert_eq!(uint_content(0), [0]);
        assert_eq!(uint_content(0x7f), [0x7f]);
        assert_eq!(uint_content(0x80), [0, 0x80]);
        assert_eq!(
            uint_content(u64::MAX),
            [0, 255, 255, 255, 255, 255, 255, 255, 255]
        );
    }
}
