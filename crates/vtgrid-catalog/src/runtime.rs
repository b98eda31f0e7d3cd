//! openraft's async runtime for the catalog: Tokio in every respect but one, the random numbers.
//!
//! openraft 0.9 draws each election timeout from `AsyncRuntime::thread_rng()`. Tokio's runtime
//! answers with the OS-seeded `rand::thread_rng`, so a simulation replayed from its seed would
//! elect other leaders at other times. [`CatalogRuntime`] draws from a per-thread RNG that a
//! simulation seeds with [`seed_thread_rng`] (turmoil runs a whole simulated grid on one thread);
//! a thread nobody seeded (every real node) draws from the OS-seeded RNG as before.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::async_runtime::TokioOneShotSender;
use openraft::{AsyncRuntime, OptionalSend, TokioInstant, TokioRuntime};
use rand08::{RngCore, SeedableRng};

thread_local! {
    static SEEDED: RefCell<Option<rand08::rngs::StdRng>> = const { RefCell::new(None) };
}

/// Make every Raft node on this thread draw its random numbers from `seed` from now on.
pub fn seed_thread_rng(seed: u64) {
    // Mixed so the election stream differs from other streams a test derives from the same seed.
    let rng = rand08::rngs::StdRng::seed_from_u64(seed ^ 0x005E_ED0F_E1EC_7105);
    SEEDED.with(|s| *s.borrow_mut() = Some(rng));
}

/// Back to OS randomness on this thread.
pub fn unseed_thread_rng() {
    SEEDED.with(|s| *s.borrow_mut() = None);
}

/// The catalog's openraft runtime: [`TokioRuntime`] with [`ElectionRng`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CatalogRuntime;

/// The RNG [`CatalogRuntime::thread_rng`] hands out: the thread's seeded RNG, or the OS-seeded one.
pub struct ElectionRng;

impl ElectionRng {
    fn draw<T>(f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        SEEDED.with(|s| match s.borrow_mut().as_mut() {
            Some(seeded) => f(seeded),
            None => f(&mut rand08::thread_rng()),
        })
    }
}

impl RngCore for ElectionRng {
    fn next_u32(&mut self) -> u32 {
        ElectionRng::draw(|r| r.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        ElectionRng::draw(|r| r.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        ElectionRng::draw(|r| r.fill_bytes(dest))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand08::Error> {
        ElectionRng::draw(|r| r.try_fill_bytes(dest))
    }
}

impl AsyncRuntime for CatalogRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = ElectionRng;
    type OneshotSender<T: OptionalSend> = TokioOneShotSender<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        ElectionRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use rand08::Rng;

    use super::*;

    fn draws() -> Vec<u64> {
        (0..8)
            .map(|_| CatalogRuntime::thread_rng().gen_range(400..800))
            .collect()
    }

    #[test]
    fn a_seeded_thread_draws_the_same_timeouts_again() {
        seed_thread_rng(42);
        let first = draws();
        seed_thread_rng(42);
        assert_eq!(draws(), first);
        seed_thread_rng(43);
        assert_ne!(draws(), first, "another seed, other timeouts");
        unseed_thread_rng();
    }
}
