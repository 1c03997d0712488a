//! NETCONF message framing over SSH (RFC 6242), sans-IO.
//!
//! Two framings exist: base:1.0 ends each message with `]]>]]>` (end-of-message, EOM);
//! base:1.1 sends chunks (`\n#<len>\n<bytes>`) ended by `\n##\n`. The `<hello>` exchange is
//! always EOM-framed; both sides switch to chunked framing when both offered base:1.1.
//!
//! [`Decoder`] takes bytes as they arrive and hands back whole messages. It never holds more
//! than the configured maximum message size plus one read, so a device that sends an endless
//! reply (or no end marker) costs a bounded amount of memory and ends in an error.

use std::fmt;

/// End-of-message marker of base:1.0 framing.
pub const EOM: &[u8] = b"]]>]]>";

/// Buffer capacity kept between messages; more is given back once drained.
const KEEP_CAPACITY: usize = 64 * 1024;

/// RFC 6242: chunk-size is 1..=4294967295, at most 10 digits.
const MAX_CHUNK_DIGITS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// base:1.0, `]]>]]>` after each message.
    Eom,
    /// base:1.1 chunked framing.
    Chunked,
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Framing::Eom => "base:1.0 end-of-message",
            Framing::Chunked => "base:1.1 chunked",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("message exceeds the {limit}-byte limit (netconf.max_reply_bytes)")]
    TooLarge { limit: usize },
    #[error("bad chunk header: {0}")]
    BadChunk(String),
}

/// Frames one message for sending.
pub fn encode(message: &[u8], framing: Framing) -> Vec<u8> {
    match framing {
        Framing::Eom => {
            let mut out = Vec::with_capacity(message.len() + EOM.len() + 1);
            out.extend_from_slice(message);
            out.push(b'\n');
            out.extend_from_slice(EOM);
            out
        }
        Framing::Chunked => {
            let mut out = Vec::with_capacity(message.len() + 20);
            if !message.is_empty() {
                out.extend_from_slice(format!("\n#{}\n", message.len()).as_bytes());
                out.extend_from_slice(message);
            }
            out.extend_from_slice(b"\n##\n");
            out
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting `\n#` then a size or `#`.
    Header,
    /// Inside a chunk with this many bytes left.
    Data(usize),
}

/// Splits a byte stream into messages.
#[derive(Debug)]
pub struct Decoder {
    framing: Framing,
    max: usize,
    /// Bytes received and not yet consumed.
    buf: Vec<u8>,
    /// EOM: how far `buf` has been searched for the marker already.
    scanned: usize,
    /// Chunked: the message assembled so far, and where we are.
    msg: Vec<u8>,
    chunk: ChunkState,
}

impl Decoder {
    /// `max` bounds a message's size (after removing framing).
    pub fn new(max: usize) -> Decoder {
        Decoder {
            framing: Framing::Eom,
            max: max.max(1),
            buf: Vec::new(),
            scanned: 0,
            msg: Vec::new(),
            chunk: ChunkState::Header,
        }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Switch framing after the hello exchange; bytes already buffered are read with the new
    /// framing.
    pub fn set_framing(&mut self, framing: Framing) {
        self.framing = framing;
        self.scanned = 0;
        self.msg.clear();
        self.chunk = ChunkState::Header;
    }

    /// Bytes held (buffered input and the partial message).
    #[cfg(any(test, feature = "testing"))]
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.msg.len()
    }

    /// Adds received bytes. Fails when the pending message already exceeds the limit.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), FramingError> {
        self.buf.extend_from_slice(data);
        // For EOM the marker may be in what just arrived: only fail once the buffer holds more
        // than a maximal message plus its marker and no marker was found (checked in `next`).
        if self.framing == Framing::Chunked && self.msg.len() > self.max {
            return Err(FramingError::TooLarge { limit: self.max });
        }
        Ok(())
    }

    /// The next whole message, if one is complete.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        let m = match self.framing {
            Framing::Eom => self.next_eom(),
            Framing::Chunked => self.next_chunked(),
        };
        // One large reply must not pin its buffer for the life of a kept session.
        if self.buf.capacity() > KEEP_CAPACITY && self.buf.len() <= KEEP_CAPACITY / 2 {
            self.buf.shrink_to(KEEP_CAPACITY);
        }
        m
    }

    fn next_eom(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        let from = self.scanned.saturating_sub(EOM.len() - 1);
        match find(&self.buf[from..], EOM) {
            Some(i) => {
                let end = from + i;
                if end > self.max {
                    return Err(FramingError::TooLarge { limit: self.max });
                }
                let msg = self.buf[..end].to_vec();
                self.buf.drain(..end + EOM.len());
                self.scanned = 0;
                Ok(Some(msg))
            }
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() > self.max + EOM.len() {
                    return Err(FramingError::TooLarge { limit: self.max });
                }
                Ok(None)
            }
        }
    }

    fn next_chunked(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        let mut pos = 0;
        let result = loop {
            match self.chunk {
                ChunkState::Data(left) => {
                    let avail = self.buf.len() - pos;
                    let take = left.min(avail);
                    self.msg.extend_from_slice(&self.buf[pos..pos + take]);
                    pos += take;
                    if take < left {
                        self.chunk = ChunkState::Data(left - take);
                        break Ok(None);
                    }
                    self.chunk = ChunkState::Header;
                }
                ChunkState::Header => match parse_header(&self.buf[pos..]) {
                    Header::Incomplete => break Ok(None),
                    Header::Bad(why) => break Err(FramingError::BadChunk(why)),
                    Header::End(used) => {
                        pos += used;
                        if self.msg.is_empty() {
                            break Err(FramingError::BadChunk(
                                "end-of-chunks before any chunk".into(),
                            ));
                        }
                        break Ok(Some(std::mem::take(&mut self.msg)));
                    }
                    Header::Chunk(used, size) => {
                        if self.msg.len().saturating_add(size) > self.max {
                            break Err(FramingError::TooLarge { limit: self.max });
                        }
                        pos += used;
                        self.chunk = ChunkState::Data(size);
                    }
                },
            }
        };
        self.buf.drain(..pos);
        result
    }
}

enum Header {
    Incomplete,
    Bad(String),
    /// `\n##\n`: bytes used.
    End(usize),
    /// `\n#<size>\n`: bytes used and the size.
    Chunk(usize, usize),
}

fn parse_header(b: &[u8]) -> Header {
    let show = |b: &[u8]| {
        let s: String = String::from_utf8_lossy(&b[..b.len().min(16)]).into();
        format!("{s:?}")
    };
    for (i, want) in b"\n#".iter().enumerate() {
        match b.get(i) {
            None => return Header::Incomplete,
            Some(c) if c != want => {
                return Header::Bad(format!("expected \"\\n#\", got {}", show(b)));
            }
            Some(_) => {}
        }
    }
    match b.get(2) {
        None => Header::Incomplete,
        Some(b'#') => match b.get(3) {
            None => Header::Incomplete,
            Some(b'\n') => Header::End(4),
            Some(_) => Header::Bad(format!("bad end-of-chunks marker {}", show(b))),
        },
        Some(b'1'..=b'9') => {
            let digits = b[2..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > MAX_CHUNK_DIGITS {
                return Header::Bad(format!("chunk size too long: {}", show(b)));
            }
            match b.get(2 + digits) {
                None => Header::Incomplete,
                Some(b'\n') => {
                    let text = std::str::from_utf8(&b[2..2 + digits]).unwrap_or("0");
                    match text.parse::<u64>() {
                        Ok(n) if (1..=u64::from(u32::MAX)).contains(&n) => {
                            Header::Chunk(3 + digits, usize::try_from(n).unwrap_or(usize::MAX))
                        }
                        _ => Header::Bad(format!("chunk size out of range: {text}")),
                    }
                }
                Some(_) => Header::Bad(format!("bad chunk size {}", show(b))),
            }
        }
        Some(_) => Header::Bad(format!("bad chunk size {}", show(b))),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &mut Decoder) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        while let Some(m) = d.next_message().expect("valid") {
            v.push(m);
        }
        v
    }

    #[test]
    fn eom_messages_split_anywhere() {
        let stream = b"<a/>]]>]]><b>x</b>\n]]>]]>";
        for cut in 0..stream.len() {
            let mut d = Decoder::new(1000);
            d.feed(&stream[..cut]).unwrap();
            let mut got = all(&mut d);
            d.feed(&stream[cut..]).unwrap();
            got.extend(all(&mut d));
            assert_eq!(
                got,
                vec![b"<a/>".to_vec(), b"<b>x</b>\n".to_vec()],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn chunked_messages_split_anywhere_rfc6242_example() {
        // RFC 6242 section 4.2 example, then a second message in one chunk.
        let stream = b"\n#4\n<rpc\n#18\n message-id=\"102\"\n\n#79\n     xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">\n  <close-session/>\n</rpc>\n##\n\n#3\n<a/\n#1\n>\n##\n";
        let whole = all(&mut {
            let mut d = Decoder::new(1000);
            d.set_framing(Framing::Chunked);
            d.feed(stream).unwrap();
            d
        });
        assert_eq!(whole.len(), 2);
        assert!(whole[0].starts_with(b"<rpc message-id=\"102\""));
        assert_eq!(whole[1], b"<a/>");
        for cut in 0..stream.len() {
            let mut d = Decoder::new(1000);
            d.set_framing(Framing::Chunked);
            d.feed(&stream[..cut]).unwrap();
            let mut got = all(&mut d);
            d.feed(&stream[cut..]).unwrap();
            got.extend(all(&mut d));
            assert_eq!(got, whole, "cut {cut}");
        }
    }

    #[test]
    fn encode_round_trips() {
        for f in [Framing::Eom, Framing::Chunked] {
            let mut d = Decoder::new(100);
            d.set_framing(f);
            d.feed(&encode(b"<x/>", f)).unwrap();
            d.feed(&encode(b"<y/>", f)).unwrap();
            let got = all(&mut d);
            let want: Vec<&[u8]> = match f {
                Framing::Eom => vec![b"<x/>\n", b"<y/>\n"],
                Framing::Chunked => vec![b"<x/>", b"<y/>"],
            };
            assert_eq!(got, want);
        }
    }

    #[test]
    fn bad_chunk_headers_are_errors() {
        for bad in [
            &b"#4\n<a/>"[..],
            b"\n#0\n",
            b"\n#04\nabcd",
            b"\n#x\n",
            b"\n#99999999999\n",
            b"\n#4294967296\n",
            b"\n#-1\n",
            b"\n##x",
            b"\n##\n",
            b"\n#4 \n",
        ] {
            let mut d = Decoder::new(1 << 30);
            d.set_framing(Framing::Chunked);
            d.feed(bad).unwrap();
            assert!(
                d.next_message().is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn oversized_messages_are_refused_early() {
        let mut d = Decoder::new(10);
        d.feed(&[b'a'; 17]).unwrap();
        assert_eq!(d.next_message(), Err(FramingError::TooLarge { limit: 10 }));
        let mut d = Decoder::new(10);
        d.feed(b"0123456789A]]>]]>").unwrap();
        assert!(d.next_message().is_err());
        let mut d = Decoder::new(10);
        d.set_framing(Framing::Chunked);
        // The header alone announces too much: refused before the data arrives.
        d.feed(b"\n#6\nabcdef\n#5\n").unwrap();
        assert_eq!(d.next_message(), Err(FramingError::TooLarge { limit: 10 }));
    }

    #[test]
    fn buffers_shrink_after_a_large_message() {
        for f in [Framing::Eom, Framing::Chunked] {
            let mut d = Decoder::new(1 << 20);
            d.set_framing(f);
            d.feed(&encode(&vec![b'x'; 500_000], f)).unwrap();
            assert!(d.next_message().unwrap().is_some());
            assert!(
                d.buf.capacity() <= KEEP_CAPACITY,
                "{f}: {}",
                d.buf.capacity()
            );
        }
    }

    #[test]
    fn framing_switch_keeps_buffered_bytes() {
        let mut d = Decoder::new(100);
        d.feed(b"<hello/>]]>]]>\n#4\n<ok/\n#1\n>\n##\n").unwrap();
        assert_eq!(d.next_message().unwrap(), Some(b"<hello/>".to_vec()));
        d.set_framing(Framing::Chunked);
        assert_eq!(d.next_message().unwrap(), Some(b"<ok/>".to_vec()));
        assert_eq!(d.buffered(), 0);
    }
}
