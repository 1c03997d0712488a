//! Bounded polling.

use std::future::Future;
use std::time::{Duration, Instant};

/// Call `check` every `poll_every` until it returns `Some`, for at most `timeout`
/// (`check` runs at least once, and once more at the deadline).
pub fn wait_until<T>(
    timeout: Duration,
    poll_every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let start = Instant::now();
    let mut tries = 0u32;
    loop {
        tries += 1;
        if let Some(v) = check() {
            return Ok(v);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(format!(
                "condition not met within {timeout:?} ({tries} tries, {elapsed:?})"
            ));
        }
        std::thread::sleep(poll_every.min(timeout - elapsed));
    }
}

/// Async [`wait_until`] (tokio). Each `check` is itself cut off at the deadline, so a hung
/// check cannot stretch the wait.
pub async fn wait_until_async<T, F, Fut>(
    timeout: Duration,
    poll_every: Duration,
    mut check: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    let mut tries = 0u32;
    loop {
        tries += 1;
        // Grant the last try a little grace so a check started just before the deadline can finish.
        let cut = deadline.max(tokio::time::Instant::now() + Duration::from_millis(100));
        if let Ok(Some(v)) = tokio::time::timeout_at(cut, check()).await {
            return Ok(v);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(format!(
                "condition not met within {timeout:?} ({tries} tries, {:?})",
                now - start
            ));
        }
        tokio::time::sleep(poll_every.min(deadline - now)).await;
    }
}
