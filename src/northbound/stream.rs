//! A response body fed from a blocking thread: the device scrape renders on a blocking
//! thread (seconds of CPU at 10,000 elements) and streams its text in chunks, so memory
//! stays bounded by a few chunks in flight and a disconnected scraper stops the render.

use axum::body::Bytes;
use http_body::{Body, Frame};
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Chunks in flight between the render thread and the socket.
const CHANNEL_CHUNKS: usize = 4;
/// Size of one chunk sent to the socket.
pub(crate) const CHUNK_BYTES: usize = 256 * 1024;

/// The response side of a [`ChunkWriter`].
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(Frame::data)))
    }
}

/// The writing side, for the blocking thread: buffers up to [`CHUNK_BYTES`] and hands each
/// full chunk to the body. A write fails with `BrokenPipe` once the client is gone.
pub(crate) struct ChunkWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

pub(crate) fn channel() -> (ChunkWriter, ChannelBody) {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    (
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES),
        },
        ChannelBody { rx },
    )
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "scraper went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
