//! Waiting for a condition, never for time (STYLE.md, "Wait for a condition, not for time").
//!
//! Every wait has a deadline and says what it waited for when the deadline passes; the short
//! sleep between two polls is pacing, not synchronisation.

use std::future::Future;
use std::time::{Duration, Instant};

/// Time between two polls of a condition.
pub const POLL: Duration = Duration::from_millis(50);

/// Poll `check` every [`POLL`] until it returns `Some`, and return that value; panic naming `what`
/// once `timeout` has passed.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_for`] for a boolean condition.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, timeout, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// The blocking form of [`wait_for`], for threads and `Drop`: `None` when `timeout` passes.
pub fn poll_blocking<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}
