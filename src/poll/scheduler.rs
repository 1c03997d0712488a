//! When each owned element is polled: one timer heap, bounded concurrency, no overlap.
//!
//! An element is never polled twice at once: its next poll is scheduled only when the previous
//! one ends. Removing an element aborts its poll in flight, so a server that hands an element
//! over stops touching it before the new owner starts.

use crate::model::Element;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Runs one poll; the scheduler only decides when.
pub(crate) type PollFn =
    Arc<dyn Fn(Element) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

const FIRST_POLL_SPREAD_MS: u64 = 500;

pub(crate) enum Command {
    /// Replace the set of elements this server polls.
    Set(Vec<Element>, oneshot::Sender<()>),
}

struct Entry {
    element: Element,
    generation: u64,
    running: Option<AbortHandle>,
}

struct Done {
    name: Arc<str>,
    generation: u64,
    started: Instant,
}

pub(crate) struct Scheduler {
    default_interval: Duration,
    concurrency: Arc<Semaphore>,
    poll: PollFn,
    entries: HashMap<Arc<str>, Entry>,
    heap: BinaryHeap<Reverse<(Instant, Arc<str>, u64)>>,
    next_generation: u64,
    /// Origin of every element's polling phase.
    epoch: Instant,
}

impl Scheduler {
    pub(crate) fn new(default_interval: Duration, concurrency: usize, poll: PollFn) -> Scheduler {
        Scheduler {
            default_interval,
            concurrency: Arc::new(Semaphore::new(concurrency)),
            poll,
            entries: HashMap::new(),
            heap: BinaryHeap::new(),
            next_generation: 1,
            epoch: Instant::now(),
        }
    }

    fn interval(&self, e: &Element) -> Duration {
        e.interval.unwrap_or(self.default_interval)
    }

    /// First polls are spread over a short window so that thousands of elements arriving at
    /// once do not all start in the same millisecond; short, because an element handed over
    /// or orphaned must be polled again at once (the semaphore bounds the burst anyway).
    fn first_due(&self, e: &Element, now: Instant) -> Instant {
        let spread = (self.interval(e).as_millis() as u64 / 4).min(FIRST_POLL_SPREAD_MS);
        let h = name_hash(&e.name);
        now + Duration::from_millis(if spread == 0 { 0 } else { h % spread })
    }

    fn set(&mut self, elements: Vec<Element>) {
        let now = Instant::now();
        let mut keep: HashMap<Arc<str>, Element> =
            elements.into_iter().map(|e| (e.name.clone(), e)).collect();
        self.entries.retain(|name, entry| match keep.get(name) {
            Some(e) if *e == entry.element => {
                keep.remove(name);
                true
            }
            _ => {
                if let Some(h) = entry.running.take() {
                    h.abort();
                }
                false
            }
        });
        let mut added: Vec<Element> = keep.into_values().collect();
        added.sort_by(|a, b| a.name.cmp(&b.name));
        for element in added {
            let generation = self.next_generation;
            self.next_generation += 1;
            let due = self.first_due(&element, now);
            self.heap
                .push(Reverse((due, element.name.clone(), generation)));
            self.entries.insert(
                element.name.clone(),
                Entry {
                    element,
                    generation,
                    running: None,
                },
            );
        }
    }

    /// Starts the polls that are due while poll slots are free; returns whether it stopped
    /// for want of a slot. A due poll waits in the heap, not as a spawned task: at 10,000
    /// elements the once-an-interval burst would otherwise hold 10,000 tasks at once.
    fn start_due(&mut self, done_tx: &mpsc::UnboundedSender<Done>) -> bool {
        let now = Instant::now();
        while let Some(Reverse((due, _, _))) = self.heap.peek() {
            if *due > now {
                break;
            }
            let Ok(permit) = self.concurrency.clone().try_acquire_owned() else {
                return true;
            };
            let Some(Reverse((due, name, generation))) = self.heap.pop() else {
                break;
            };
            let Some(entry) = self.entries.get_mut(&name) else {
                continue;
            };
            if entry.generation != generation || entry.running.is_some() {
                continue;
            }
            let poll = self.poll.clone();
            let element = entry.element.clone();
            let tx = done_tx.clone();
            let handle = tokio::spawn(async move {
                poll(element).await;
                // Free the slot before reporting, so the scheduler can use it at once.
                drop(permit);
                let _ = tx.send(Done {
                    name,
                    generation,
                    started: due,
                });
            });
            entry.running = Some(handle.abort_handle());
        }
        false
    }

    fn finished(&mut self, d: Done) {
        let interval = match self.entries.get(&d.name) {
            Some(e) if e.generation == d.generation => self.interval(&e.element),
            _ => return,
        };
        if let Some(entry) = self.entries.get_mut(&d.name) {
            entry.running = None;
        }
        let offset = next_offset(
            d.started.saturating_duration_since(self.epoch),
            name_hash(&d.name),
            interval,
        );
        let due = (d.started + offset).max(Instant::now());
        self.heap.push(Reverse((due, d.name, d.generation)));
    }

    /// Drives polls until the command channel closes; then aborts what is running.
    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        loop {
            let waiting_for_slot = self.start_due(&done_tx);
            let next = self.heap.peek().map(|Reverse((due, _, _))| *due);
            let sleep = async {
                match next {
                    Some(t) if !waiting_for_slot => tokio::time::sleep_until(t).await,
                    _ => std::future::pending().await,
                }
            };
            // A slot also frees when a poll is aborted (its element removed), which reports
            // no `Done`.
            let slots = self.concurrency.clone();
            let slot_freed = async move {
                if waiting_for_slot {
                    let _ = slots.acquire().await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Set(elements, ack)) => {
                        self.set(elements);
                        let _ = ack.send(());
                    }
                    None => break,
                },
                Some(done) = done_rx.recv() => self.finished(done),
                _ = sleep => {}
                _ = slot_freed => {}
            }
        }
        self.concurrency.close();
        for entry in self.entries.values_mut() {
            if let Some(h) = entry.running.take() {
                h.abort();
            }
        }
    }
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Time from a poll's start (`started`, measured from the scheduler's epoch) to the element's
/// next poll: the next point of its own phase (`hash` modulo the interval), never later than
/// one interval. After the first poll (at once, for fail-over) every element settles on its
/// phase, so an interval's polls spread evenly over it instead of all 10,000 coming due in
/// the same second: flat CPU and memory, and a poll's latency is its own, not a queue's.
fn next_offset(started: Duration, hash: u64, interval: Duration) -> Duration {
    let iv = interval.as_millis() as u64;
    if iv == 0 {
        return interval;
    }
    let phase = hash % iv;
    let at = (started.as_millis() % u128::from(iv)) as u64;
    let wait = (phase + iv - at) % iv;
    Duration::from_millis(if wait == 0 { iv } else { wait })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn an_element_on_its_phase_is_polled_every_interval() {
        let h = 12_345;
        let on_phase = Duration::from_millis(120_000 + h % 60_000);
        assert_eq!(next_offset(on_phase, h, MIN), MIN);
    }

    #[test]
    fn the_first_gap_is_never_longer_than_the_interval_and_then_it_is_on_phase() {
        for (start_ms, h) in [(0, 0), (1, 7), (59_999, 59_998), (123_456, 987_654_321)] {
            let start = Duration::from_millis(start_ms);
            let gap = next_offset(start, h, MIN);
            assert!(
                gap > Duration::ZERO && gap <= MIN,
                "{start_ms} {h}: {gap:?}"
            );
            assert_eq!(next_offset(start + gap, h, MIN), MIN, "{start_ms} {h}");
        }
    }

    #[test]
    fn phases_spread_elements_over_the_interval() {
        let mut per_second = [0u32; 60];
        for i in 0..10_000 {
            let gap = next_offset(Duration::ZERO, name_hash(&format!("ne{i:05}")), MIN);
            per_second[(gap.as_secs() % 60) as usize] += 1;
        }
        // 10,000 over 60 s is ~167 a second; no second gets a burst.
        assert!(
            per_second.iter().all(|&n| (100..=250).contains(&n)),
            "{per_second:?}"
        );
    }

    #[test]
    fn a_zero_interval_does_not_divide_by_zero() {
        assert_eq!(next_offset(MIN, 5, Duration::ZERO), Duration::ZERO);
    }
}
