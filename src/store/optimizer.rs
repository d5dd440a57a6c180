//! Index building for the embedded store, off the write path.
//!
//! Edge writes land in an appendable segment, which keeps its keyword (sparse) index as growable
//! posting lists on the heap and its payload and vectors uncompressed. Once a segment passes
//! Edge's indexing threshold (10 MB of vectors, ~6,500 chunks at 384 dimensions), Edge's
//! optimizers rewrite it as an immutable segment with a compact keyword index on disk and a
//! fresh appendable segment beside it. Edge runs them only when asked: this worker asks after
//! every write, so a big knowledge base is compacted while it grows instead of holding every
//! chunk in the appendable form (at 100,000 chunks: ~430 MB more heap).
//!
//! The worker is one thread at background priority, so building never takes a core from a
//! question, and one shard is optimized at a time. Reads and writes go on meanwhile: Edge
//! optimizes through proxy segments. A small knowledge base never reaches the threshold, and
//! asking costs one look at its segments.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use qdrant_edge::EdgeShard;

use crate::priority::Priority;

/// An open Edge shard. `removed` is locked while the shard is optimized and set when its
/// knowledge base is dropped, so a queued optimization never works on deleted files.
pub struct Shard {
    edge: EdgeShard,
    removed: Mutex<bool>,
}

impl Shard {
    pub fn new(edge: EdgeShard) -> Self {
        Self {
            edge,
            removed: Mutex::new(false),
        }
    }

    /// Marks the shard removed, waiting for an optimization in progress, then runs `remove`
    /// (which deletes its files) before any other optimization can start.
    pub fn remove<T>(&self, remove: impl FnOnce() -> T) -> T {
        let mut removed = self
            .removed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *removed = true;
        remove()
    }
}

impl Deref for Shard {
    type Target = EdgeShard;

    fn deref(&self) -> &EdgeShard {
        &self.edge
    }
}

/// A knowledge base's shard to optimize.
type Request = (String, Arc<Shard>);

/// Hands shards to the optimizer thread; requests for a shard already waiting are merged.
pub struct Optimizer {
    requests: Option<mpsc::Sender<Request>>,
}

impl Optimizer {
    /// Starts the optimizer thread. If the thread cannot start, shards stay unoptimized:
    /// correct, only bigger (logged).
    pub fn start() -> Self {
        let (sender, receiver) = mpsc::channel::<Request>();
        let started = std::thread::Builder::new()
            .name("lore-optimize".into())
            .spawn(move || {
                Priority::Background.apply();
                while let Ok(first) = receiver.recv() {
                    // Everything queued meanwhile, one request per shard.
                    let mut pending = BTreeMap::from([first]);
                    pending.extend(receiver.try_iter());
                    for (kb, shard) in pending {
                        optimize(&kb, &shard);
                    }
                }
            });
        let requests = match started {
            Ok(_) => Some(sender),
            Err(err) => {
                tracing::warn!(error = %err, "cannot start the store's optimizer thread");
                None
            }
        };
        Self { requests }
    }

    /// Asks for `shard` (knowledge base `kb`) to be optimized soon.
    pub fn request(&self, kb: &str, shard: Arc<Shard>) {
        if let Some(sender) = &self.requests {
            // The thread only stops when this sender is dropped, so sending cannot fail.
            let _ = sender.send((kb.to_owned(), shard));
        }
    }
}

fn optimize(kb: &str, shard: &Shard) {
    let Ok(removed) = shard.removed.lock() else {
        return;
    };
    if *removed {
        return;
    }
    let started = std::time::Instant::now();
    let result = shard.edge.optimize();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: returns the allocator's free pages to the kernel; no memory is touched.
    unsafe {
        libc::malloc_trim(0);
    }
    match result {
        Ok(true) => tracing::info!(
            kb,
            seconds = started.elapsed().as_secs_f64(),
            "optimized the knowledge base's segments"
        ),
        Ok(false) => {}
        Err(err) => {
            tracing::warn!(kb, error = %err, "cannot optimize the knowledge base's segments")
        }
    }
}
