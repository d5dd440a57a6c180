//! The ingestion queue: uploads return at once, a worker ingests documents one by one.
//!
//! The queue is in memory; what makes it durable is the catalog, where every queued document
//! is recorded with its bytes on disk before the upload is acknowledged. On start, the service
//! re-queues whatever a previous run left queued or processing.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::kb::KnowledgeBase;

/// Most documents waiting in memory; beyond it, uploads wait for room.
const CAPACITY: usize = 10_000;

/// A document to ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub kb: String,
    pub document_id: String,
    /// The version this upload was recorded as: with a shared catalog the record may name a
    /// newer one by the time the job runs (uploaded through another instance, which ingests it).
    pub version: u64,
}

/// The sending side, held by the service.
#[derive(Clone)]
pub struct IngestQueue {
    sender: mpsc::Sender<Job>,
}

impl IngestQueue {
    pub fn new() -> (Self, mpsc::Receiver<Job>) {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        (Self { sender }, receiver)
    }

    pub async fn push(&self, job: Job) -> Result<()> {
        self.sender
            .send(job)
            .await
            .map_err(|_| Error::internal(anyhow::anyhow!("the ingestion worker has stopped")))
    }
}

/// Starts the worker. It holds only a weak reference, so it ends with the service.
pub fn spawn_worker(service: Arc<KnowledgeBase>, mut jobs: mpsc::Receiver<Job>) {
    let service = Arc::downgrade(&service);
    tokio::spawn(async move {
        while let Some(job) = jobs.recv().await {
            let Some(service) = service.upgrade() else {
                break;
            };
            if let Err(err) = service.process(&job).await {
                tracing::error!(kb = %job.kb, document = %job.document_id, error = ?err, "ingestion step failed");
            }
        }
    });
}
