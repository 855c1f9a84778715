//! Collapses concurrent requests for the same cold thing into one piece of work.
//!
//! The work runs in its own task, so a leader whose client hangs up does not cancel it for
//! the followers. The map lock is held only to join or start a flight, never across awaits.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt};

pub struct SingleFlight<K, V: Clone> {
    flights: Arc<Mutex<HashMap<K, futures::future::Shared<BoxFuture<'static, V>>>>>,
}

impl<K, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            flights: Arc::default(),
        }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Runs `work` unless a flight for `key` is already under way; either way returns its
    /// result. `work` must not panic; a panicked flight yields `on_panic()` to everyone.
    pub async fn run<F, Fut>(&self, key: K, work: F, on_panic: fn() -> V) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let shared = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = flights.get(&key) {
                f.clone()
            } else {
                let task = tokio::spawn(work());
                let flights_ref = self.flights.clone();
                let key_ref = key.clone();
                let fut = async move {
                    let out = task.await.unwrap_or_else(|_| on_panic());
                    flights_ref
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&key_ref);
                    out
                }
                .boxed()
                .shared();
                flights.insert(key, fut.clone());
                // Drive it even if every waiter goes away, so the map entry is cleared.
                tokio::spawn(fut.clone());
                fut
            }
        };
        shared.await
    }
}

/// A flight's result as every waiter gets it: errors are shared (`Arc`), not cloned. Each
/// layer shares its own error type.
pub type Shared<T, E> = Result<T, std::sync::Arc<E>>;

/// Shares an error among a flight's waiters.
pub fn shared_err<E>(e: impl Into<E>) -> std::sync::Arc<E> {
    std::sync::Arc::new(e.into())
}

/// An error type flights can report a panicked task with.
pub trait FlightError {
    fn panicked() -> Self;
}

/// What waiters get when the flight's task panicked.
pub fn panicked<T, E: FlightError>() -> Shared<T, E> {
    Err(std::sync::Arc::new(E::panicked()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let sf: Arc<SingleFlight<&'static str, usize>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let sf = sf.clone();
            let runs = runs.clone();
            tasks.push(tokio::spawn(async move {
                sf.run(
                    "k",
                    move || async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        runs.fetch_add(1, Ordering::SeqCst) + 1
                    },
                    || 0,
                )
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Once finished, the next call runs again.
        let again = sf.run("k", || async { 7 }, || 0).await;
        assert_eq!(again, 7);
    }
}
