//! A memory budget for packument work: parsing an upstream answer, merging it with the
//! stored copy, rendering a served form. Each of those briefly holds a few times the
//! document's size (a 10 MB document costs ~40 MB while rendered), and an install asks
//! for hundreds of documents at once, so without a bound a cold `npm ci` of an app with a
//! few big documents (TypeScript, `@types/node`, React DOM) would hold them all at once.
//! Work is admitted while the documents in progress fit the budget; one larger than the
//! whole budget runs alone. Small documents (most of them) barely touch it.

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::public::error::PublicError;

pub struct DocBudget {
    permits: Semaphore,
    /// The whole budget, KiB (one permit per KiB).
    total_kib: u32,
}

impl DocBudget {
    pub fn new(bytes: u64) -> Self {
        let total_kib = u32::try_from((bytes / 1024).max(1)).unwrap_or(u32::MAX >> 4);
        // tokio's semaphore holds at most usize::MAX >> 3 permits; u32 fits everywhere.
        Self {
            permits: Semaphore::new(total_kib as usize),
            total_kib,
        }
    }

    /// Waits until work on a document of `len` bytes fits the budget.
    pub async fn admit(&self, len: usize) -> Result<SemaphorePermit<'_>, PublicError> {
        let kib = u32::try_from(len / 1024 + 1)
            .unwrap_or(u32::MAX)
            .min(self.total_kib);
        self.permits
            .acquire_many(kib)
            .await
            .map_err(|_| PublicError::Task("the document budget closed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn work_waits_while_the_budget_is_spent_and_huge_documents_run_alone() {
        let budget = DocBudget::new(1024 * 1024);
        let big = budget.admit(900 * 1024).await.unwrap();
        // 200 KiB more does not fit beside 900 KiB.
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.admit(200 * 1024));
        assert!(waiting.await.is_err());
        drop(big);
        let small = budget.admit(200 * 1024).await.unwrap();
        drop(small);
        // A document larger than the whole budget is admitted once nothing else runs.
        let huge = tokio::time::timeout(Duration::from_millis(50), budget.admit(50 << 20));
        assert!(huge.await.is_ok());
    }
}
