//! Notifications (RFC 5277): the reactor thread that reads every subscribed session without
//! holding a thread per session. What a notification means is `crate::rules::netconf`.

use super::session::{NotificationStream, Pumped};
use super::{NcError, Workers};
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::mpsc as tmpsc;

// ---------------------------------------------------------------------------------------------
// The reactor

/// What a notification task hears from the reactor.
#[derive(Debug)]
pub(crate) enum Delivery {
    Message(Vec<u8>),
    Ended(NcError),
}

enum Command {
    Add {
        id: u64,
        stream: NotificationStream,
        tx: tmpsc::UnboundedSender<Delivery>,
    },
}

/// One thread that reads all subscribed sessions without blocking.
pub(crate) struct Reactor {
    tx: mpsc::Sender<Command>,
}

/// How long the reactor sleeps when no session had anything to read.
const IDLE_TICK: Duration = Duration::from_millis(50);
/// Bytes read from one session per pass.
const PASS_BUDGET: usize = 256 * 1024;

impl Reactor {
    pub(crate) fn start(workers: Workers) -> Reactor {
        let (tx, rx) = mpsc::channel::<Command>();
        let spawned = std::thread::Builder::new()
            .name("netconf-notify".into())
            .stack_size(512 * 1024)
            .spawn(move || run(rx, workers));
        if let Err(e) = spawned {
            tracing::error!("cannot start the NETCONF notification thread: {e}");
        }
        Reactor { tx }
    }

    /// Hands a subscribed session over; it is read until it ends or `tx`'s receiver is
    /// dropped (the task stopped), then closed.
    pub(crate) fn add(
        &self,
        id: u64,
        stream: NotificationStream,
        tx: tmpsc::UnboundedSender<Delivery>,
    ) {
        let _ = self.tx.send(Command::Add { id, stream, tx });
    }
}

fn run(rx: mpsc::Receiver<Command>, workers: Workers) {
    let mut streams: HashMap<u64, (NotificationStream, tmpsc::UnboundedSender<Delivery>)> =
        HashMap::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut wait = IDLE_TICK;
    loop {
        match rx.recv_timeout(wait) {
            Ok(Command::Add { id, stream, tx }) => {
                if let Some((old, _)) = streams.insert(id, (stream, tx)) {
                    close_later(&workers, old);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                for (_, (s, _)) in streams.drain() {
                    close_later(&workers, s);
                }
                return;
            }
        }
        let mut busy = false;
        let mut gone = Vec::new();
        for (id, (stream, tx)) in streams.iter_mut() {
            if tx.is_closed() {
                gone.push(*id);
                continue;
            }
            match stream.pump(&mut buf, PASS_BUDGET) {
                Pumped::Messages(msgs) => {
                    busy |= !msgs.is_empty();
                    for m in msgs {
                        let _ = tx.send(Delivery::Message(m));
                    }
                }
                Pumped::Ended(msgs, why) => {
                    for m in msgs {
                        let _ = tx.send(Delivery::Message(m));
                    }
                    let _ = tx.send(Delivery::Ended(why));
                    gone.push(*id);
                }
            }
        }
        for id in gone {
            if let Some((s, _)) = streams.remove(&id) {
                close_later(&workers, s);
            }
        }
        wait = if busy { Duration::ZERO } else { IDLE_TICK };
    }
}

/// Closes a session on a worker thread (a clean close blocks for a round trip).
fn close_later(workers: &Workers, stream: NotificationStream) {
    workers.spawn(move || {
        if let Some(s) = stream.into_session() {
            s.close(Duration::from_millis(500));
        }
    });
}
