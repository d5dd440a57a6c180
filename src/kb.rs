//! `KnowledgeBase`: the one service every front door calls (REST, CLI, and later Dify, OpenAI,
//! WeChat). It owns the catalog, the store, the embedder and the ingestion queue, and keeps
//! their invariants: a document's chunks are served only once all of them are stored, and an
//! acknowledged upload is on disk before the request returns.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::answer::Message;
use crate::answer::chat::ChatClient;
use crate::answer::respond::{Reply, ReplyEvent, Responder};
use crate::catalog::{Catalog, write_atomically};
use crate::config::{Config, StorageBackend};
use crate::document::{Chunk, DocumentRecord, DocumentStatus, Hit, KbInfo, Metadata};
use crate::embed::Embedder;
use crate::error::{Error, ErrorCode, Result};
use crate::ingest::extract::{Format, extract};
use crate::ingest::queue::{IngestQueue, Job};
use crate::ingest::split::Splitter;
use crate::search::{
    Calibration, Fused, IdfCache, Keywords, MetadataCondition, QuestionTerms, Ranking, fuse,
};
use crate::store::{Candidate, StoreQuery, StoredChunk, VectorStore};

/// Chunks embedded between two progress updates.
const PROGRESS_STEP: usize = 16;

/// A request to create a knowledge base.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKb {
    /// 1 to 64 of a-z, 0-9, `_` and `-`: it names folders and appears in URLs.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", example = "faq")]
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
}

/// A document whose chunks are already embedded: (text, dense vector) pairs.
#[derive(Debug, Clone)]
pub struct ImportedDocument {
    pub name: String,
    pub title: String,
    pub metadata: Metadata,
    pub chunks: Vec<(String, Vec<f32>)>,
}

/// One uploaded file.
#[derive(Debug, Clone)]
pub struct Upload {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// What became of one uploaded file.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    pub document: DocumentRecord,
    /// Set when the file was refused at upload (empty, unsupported).
    pub error_code: Option<ErrorCode>,
}

/// A search request, as every front door passes it on.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    pub top_k: Option<usize>,
    pub score_threshold: Option<f32>,
    pub filter: Option<MetadataCondition>,
}

/// A question to answer, as every front door passes it on.
#[derive(Debug, Clone, Default)]
pub struct AnswerRequest {
    pub question: String,
    pub top_k: Option<usize>,
    /// Time budget in milliseconds; default `answer.deadline_ms`.
    pub deadline_ms: Option<u64>,
    pub filter: Option<MetadataCondition>,
    /// Earlier turns of the conversation, oldest first.
    pub history: Vec<Message>,
}

/// Longest accepted `deadline_ms`.
const MAX_DEADLINE_MS: u64 = 300_000;

/// The service behind every front door.
pub struct KnowledgeBase {
    config: Config,
    responder: Arc<Responder>,
    catalog: Arc<dyn Catalog>,
    /// `{data_dir}/kbs`: each knowledge base's folder (uploads kept until ingested, settings).
    kbs_root: PathBuf,
    store: Arc<dyn VectorStore>,
    embedder: Embedder,
    keywords: Keywords,
    /// The IDF of question tokens, which weighs sentence evidence.
    idf: IdfCache,
    splitter: Splitter,
    calibration: Calibration,
    queue: IngestQueue,
    /// Held for the life of the service: the data directory belongs to one process.
    _lock: std::fs::File,
}

impl KnowledgeBase {
    /// Opens the data directory (locking it), loads the model and starts the ingestion worker,
    /// which resumes documents left queued or processing by a previous run.
    pub async fn open(config: Config) -> anyhow::Result<Arc<Self>> {
        let lock = lock_data_dir(&config.data_dir)?;
        let embedder = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || Embedder::load(&config)).await??
        };
        let kbs_root = config.data_dir.join("kbs");
        let (store, catalog) = crate::catalog::open(&config.storage, &kbs_root).await?;
        let splitter = Splitter::new(embedder.tokenizer(), &config.chunking);
        let (queue, jobs) = IngestQueue::new();
        let chat = ChatClient::new(&config.llm)?;
        let responder = Arc::new(Responder::new(chat, config.answer.clone()));
        let service = Arc::new(Self {
            responder,
            config,
            catalog,
            kbs_root,
            store,
            embedder,
            keywords: Keywords::new()?,
            idf: IdfCache::default(),
            splitter,
            calibration: Calibration::default(),
            queue,
            _lock: lock,
        });
        service.requeue_unfinished().await?;
        crate::ingest::queue::spawn_worker(Arc::clone(&service), jobs);
        Ok(service)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The loaded model, shared: benchmarks embed with it rather than loading a second copy.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    // ---- knowledge bases ----

    pub async fn create_kb(&self, request: NewKb) -> Result<KbInfo> {
        validate_kb_id(&request.id)?;
        let info = KbInfo {
            name: request.name.unwrap_or_else(|| request.id.clone()),
            description: request.description.unwrap_or_default(),
            id: request.id,
            created_at: Utc::now(),
        };
        if self.catalog.kb(&info.id).is_ok() {
            return Err(Error::kb_exists(&info.id));
        }
        self.store
            .create_kb(&info.id, self.embedder.dimension())
            .await
            .map_err(Error::internal)?;
        let catalog = Arc::clone(&self.catalog);
        let stored = info.clone();
        blocking(move || catalog.insert_kb(stored)).await?;
        Ok(info)
    }

    pub fn list_kbs(&self) -> Result<Vec<KbInfo>> {
        self.catalog.list_kbs()
    }

    pub fn kb(&self, kb: &str) -> Result<KbInfo> {
        self.catalog.kb(kb)
    }

    /// Documents waiting for or in ingestion, over all knowledge bases (for `/metrics`).
    pub fn queue_depth(&self) -> usize {
        let Ok(kbs) = self.catalog.list_kbs() else {
            return 0;
        };
        kbs.iter()
            .filter_map(|kb| self.catalog.documents(&kb.id).ok())
            .flatten()
            .filter(|d| {
                matches!(
                    d.status,
                    DocumentStatus::Queued | DocumentStatus::Processing
                )
            })
            .count()
    }

    /// The folder of an existing knowledge base, for settings kept beside its documents
    /// (they go when it is deleted).
    pub fn kb_dir(&self, kb: &str) -> Result<std::path::PathBuf> {
        self.catalog.kb(kb)?;
        Ok(self.kbs_root.join(kb))
    }

    pub async fn delete_kb(&self, kb: &str) -> Result<()> {
        self.catalog.kb(kb)?;
        let catalog = Arc::clone(&self.catalog);
        let id = kb.to_owned();
        blocking(move || catalog.remove_kb(&id)).await?;
        self.store.drop_kb(kb).await.map_err(Error::internal)?;
        let dir = self.kbs_root.join(kb);
        blocking(move || {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            Ok(())
        })
        .await
    }

    // ---- documents ----

    /// Accepts files for ingestion. Each file is judged alone: an empty or unsupported file is
    /// recorded as failed while the others are queued. The bytes of accepted files are on disk
    /// before this returns, so a crash cannot lose an acknowledged upload.
    pub async fn upload(
        &self,
        kb: &str,
        uploads: Vec<Upload>,
        metadata: Metadata,
    ) -> Result<Vec<UploadOutcome>> {
        self.catalog.kb(kb)?;
        let mut outcomes = Vec::with_capacity(uploads.len());
        for upload in uploads {
            outcomes.push(self.accept(kb, upload, metadata.clone()).await?);
        }
        Ok(outcomes)
    }

    async fn accept(&self, kb: &str, upload: Upload, metadata: Metadata) -> Result<UploadOutcome> {
        let name = clean_file_name(&upload.name)?;
        let id = document_id(&name);
        let sha256 = hex::encode(Sha256::digest(&upload.bytes));
        let size_bytes = upload.bytes.len() as u64;
        let refusal = if upload.bytes.is_empty() {
            Some(Error::new(
                ErrorCode::EmptyFile,
                format!("'{name}' is empty"),
            ))
        } else {
            Format::detect(&name, &upload.bytes).err()
        };
        let existing = self.catalog.document(kb, &id).ok();
        if refusal.is_none()
            && let Some(existing) = existing.as_ref().filter(|d| {
                d.sha256 == sha256 && d.status != DocumentStatus::Failed && d.metadata == metadata
            })
        {
            // The same bytes again: nothing to do.
            return Ok(UploadOutcome {
                document: existing.clone(),
                error_code: None,
            });
        }
        let now = Utc::now();
        let status = if refusal.is_some() {
            DocumentStatus::Failed
        } else {
            DocumentStatus::Queued
        };
        let (error_code, error) = refusal
            .as_ref()
            .map(|e| (e.code(), e.message().to_owned()))
            .unzip();
        // The new record follows the current one, read again where it is stored: with a
        // catalog shared by several instances, another one may have changed it meanwhile.
        let record_id = id.clone();
        let mut next = move |previous: Option<&DocumentRecord>| -> Option<DocumentRecord> {
            Some(DocumentRecord {
                id: record_id.clone(),
                name: name.clone(),
                size_bytes,
                sha256: sha256.clone(),
                status,
                error: error.clone(),
                error_code,
                chunk_count: previous.map(|d| d.chunk_count).unwrap_or_default(),
                chunks_done: 0,
                metadata: metadata.clone(),
                version: previous.map(|d| d.version).unwrap_or_default(),
                pending_version: previous
                    .map(|d| d.version.max(d.pending_version))
                    .unwrap_or_default()
                    + 1,
                created_at: previous.map(|d| d.created_at).unwrap_or(now),
                updated_at: now,
            })
        };
        let expected = next(existing.as_ref())
            .map(|r| r.pending_version)
            .unwrap_or(1);
        let dir = self.files_dir(kb);
        // The bytes are on disk before a record names them (a crash cannot lose an acknowledged
        // upload), under the version the record is expected to get.
        if refusal.is_none() {
            let (dir, file, bytes) = (dir.clone(), file_name(&id, expected), upload.bytes);
            blocking(move || write_atomically(&dir, &file, &bytes).map_err(Error::internal))
                .await?;
        }
        let catalog = Arc::clone(&self.catalog);
        let (kb_id, doc_id) = (kb.to_owned(), id.clone());
        let record = blocking(move || catalog.update_document(&kb_id, &doc_id, &mut next))
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("an upload's record was not stored")))?;
        if refusal.is_none() && record.pending_version != expected {
            // Another instance took that version first: the file follows the record.
            let (from, to) = (
                file_name(&id, expected),
                file_name(&id, record.pending_version),
            );
            blocking(move || {
                std::fs::rename(dir.join(from), dir.join(to))?;
                Ok(())
            })
            .await?;
        }
        if refusal.is_none() {
            self.queue
                .push(Job {
                    kb: kb.to_owned(),
                    document_id: id,
                    version: record.pending_version,
                })
                .await?;
        }
        Ok(UploadOutcome {
            document: record,
            error_code: refusal.map(|e| e.code()),
        })
    }

    /// Stores documents whose chunks are already embedded (benchmarks today; moving a knowledge
    /// base between stores without re-embedding later). Each becomes a ready document.
    pub async fn import_documents(&self, kb: &str, documents: Vec<ImportedDocument>) -> Result<()> {
        self.catalog.kb(kb)?;
        let mut records = Vec::with_capacity(documents.len());
        for document in documents {
            let id = document_id(&document.name);
            let version = self
                .catalog
                .document(kb, &id)
                .map(|d| d.version.max(d.pending_version) + 1)
                .unwrap_or(1);
            let now = Utc::now();
            let stored: Vec<StoredChunk> = document
                .chunks
                .into_iter()
                .enumerate()
                .map(|(chunk_index, (text, dense))| {
                    let chunk = Chunk {
                        document_id: id.clone(),
                        document_name: document.name.clone(),
                        title: document.title.clone(),
                        chunk_index,
                        heading_path: Vec::new(),
                        text,
                        metadata: document.metadata.clone(),
                    };
                    let keyword = self.keywords.document(&embedding_text(&chunk));
                    StoredChunk {
                        chunk,
                        dense,
                        keyword,
                    }
                })
                .collect();
            let chunk_count = stored.len();
            self.store
                .replace_document(kb, &id, version, stored)
                .await
                .map_err(Error::internal)?;
            records.push(DocumentRecord {
                id,
                name: document.name,
                size_bytes: 0,
                sha256: String::new(),
                status: DocumentStatus::Ready,
                error: None,
                error_code: None,
                chunk_count,
                chunks_done: chunk_count,
                metadata: document.metadata,
                version,
                pending_version: version,
                created_at: now,
                updated_at: now,
            });
        }
        let catalog = Arc::clone(&self.catalog);
        let kb = kb.to_owned();
        blocking(move || catalog.insert_documents(&kb, records)).await
    }

    pub fn documents(&self, kb: &str) -> Result<Vec<DocumentRecord>> {
        self.catalog.documents(kb)
    }

    pub fn document(&self, kb: &str, id: &str) -> Result<DocumentRecord> {
        self.catalog.document(kb, id)
    }

    /// The chunks of the version of a document that search serves.
    pub async fn document_chunks(&self, kb: &str, id: &str) -> Result<Vec<Chunk>> {
        let record = self.catalog.document(kb, id)?;
        if record.version == 0 {
            return Ok(Vec::new());
        }
        self.store
            .document_chunks(kb, id, record.version)
            .await
            .map_err(Error::internal)
    }

    /// Removes a document from the catalog, the store and the disk.
    pub async fn delete_document(&self, kb: &str, id: &str) -> Result<()> {
        self.catalog.document(kb, id)?;
        let catalog = Arc::clone(&self.catalog);
        let (kb_id, doc_id) = (kb.to_owned(), id.to_owned());
        blocking(move || catalog.update_document(&kb_id, &doc_id, &mut |_| None)).await?;
        self.store
            .delete_document(kb, id)
            .await
            .map_err(Error::internal)?;
        self.remove_files(kb, id, None).await
    }

    // ---- search ----

    /// Hybrid search: dense and keyword candidates, fused into calibrated scores, filtered to
    /// the served version of each document, sorted best first.
    pub async fn search(&self, kb: &str, request: SearchRequest) -> Result<Vec<Hit>> {
        let fused = self.retrieve(kb, request, Ranking::Hybrid).await?;
        Ok(fused
            .into_iter()
            .map(|f| Hit {
                chunk: f.candidate.chunk,
                score: f.score,
            })
            .collect())
    }

    /// Search with a choice of ranking, keeping the fused values (for evaluation).
    pub async fn retrieve(
        &self,
        kb: &str,
        request: SearchRequest,
        ranking: Ranking,
    ) -> Result<Vec<Fused>> {
        self.catalog.kb(kb)?;
        let query = request.query.trim();
        if query.is_empty() {
            return Err(Error::invalid_request("query must not be empty"));
        }
        let limits = &self.config.limits;
        if query.chars().count() > limits.max_query_chars {
            return Err(Error::invalid_request(format!(
                "query is longer than {} characters",
                limits.max_query_chars
            )));
        }
        let top_k = request.top_k.unwrap_or(self.config.search.default_top_k);
        if top_k == 0 || top_k > self.config.search.max_top_k {
            return Err(Error::invalid_request(format!(
                "top_k must be between 1 and {}",
                self.config.search.max_top_k
            )));
        }
        let threshold = request.score_threshold.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&threshold) {
            return Err(Error::invalid_request(
                "score_threshold must be between 0 and 1",
            ));
        }
        let filter = match &request.filter {
            Some(condition) => condition.to_store_filter()?,
            None => None,
        };
        let dense = self
            .embedder
            .embed_query(query)
            .await
            .map_err(Error::internal)?;
        let keyword = self.keywords.query(query);
        let tokens = keyword.indices.clone();
        let search = self.store.search(
            kb,
            StoreQuery {
                dense,
                keyword,
                candidates: (top_k * 4).max(50),
                filter,
            },
        );
        // Only hybrid ranking weighs sentence evidence, which needs the question words' IDF.
        let (found, idf) = if ranking == Ranking::Hybrid {
            tokio::try_join!(search, self.idf.idf(self.store.as_ref(), kb, &tokens))
        } else {
            search.await.map(|found| (found, HashMap::new()))
        }
        .map_err(Error::internal)?;
        let served = self.catalog.served_versions(kb)?;
        let current: Vec<_> = found
            .into_iter()
            .filter(|c| served.get(&c.chunk.document_id) == Some(&c.version))
            .collect();
        let question = QuestionTerms::new(&tokens, &idf);
        let evidence = |candidate: &Candidate| {
            question.evidence(&candidate.chunk.text, |sentence| {
                self.keywords.document(sentence).indices
            })
        };
        Ok(fuse(current, evidence, &self.calibration, ranking)
            .into_iter()
            .filter(|f| f.score >= threshold)
            .take(top_k)
            .collect())
    }

    // ---- answering ----

    /// Answers a question: retrieve, decide, and (for answerable questions) the chat model
    /// within the deadline. Events stream as they come; the last is `ReplyEvent::Done`.
    pub async fn answer_stream(
        &self,
        kb: &str,
        request: AnswerRequest,
    ) -> Result<tokio::sync::mpsc::Receiver<ReplyEvent>> {
        let started = std::time::Instant::now();
        let deadline_ms = request
            .deadline_ms
            .unwrap_or(self.config.answer.deadline_ms);
        if deadline_ms == 0 || deadline_ms > MAX_DEADLINE_MS {
            return Err(Error::invalid_request(format!(
                "deadline_ms must be between 1 and {MAX_DEADLINE_MS}"
            )));
        }
        let deadline = started + std::time::Duration::from_millis(deadline_ms);
        let search = SearchRequest {
            query: request.question.clone(),
            top_k: Some(request.top_k.unwrap_or(self.config.answer.top_k)),
            score_threshold: None,
            filter: request.filter,
        };
        let hits = self.search(kb, search).await?;
        let keywords = self.keywords.clone();
        let tokens = move |text: &str| keywords.query(text).indices.into_iter().collect();
        Ok(self.responder.respond(
            request.question.trim().to_owned(),
            request.history,
            hits,
            tokens,
            deadline,
            started,
        ))
    }

    /// Answers a question and waits for the whole reply.
    pub async fn answer(&self, kb: &str, request: AnswerRequest) -> Result<Reply> {
        let mut events = self.answer_stream(kb, request).await?;
        while let Some(event) = events.recv().await {
            if let ReplyEvent::Done(reply) = event {
                return Ok(reply);
            }
        }
        Err(Error::internal(anyhow::anyhow!(
            "the reply ended without a result"
        )))
    }

    /// The keyword tokens of a text, as search matches them (for `answer::decide`).
    pub fn keyword_tokens(&self, text: &str) -> std::collections::BTreeSet<u32> {
        self.keywords.query(text).indices.into_iter().collect()
    }

    // ---- ingestion (called by the queue worker) ----

    /// Ingests one queued document: extract, split, embed, store, then serve the new version.
    pub(crate) async fn process(&self, job: &Job) -> Result<()> {
        let Ok(record) = self.catalog.document(&job.kb, &job.document_id) else {
            return Ok(()); // deleted since it was queued
        };
        if record.pending_version != job.version {
            // Replaced by a newer upload before its turn: its bytes are not needed.
            let upload = self
                .files_dir(&job.kb)
                .join(file_name(&job.document_id, job.version));
            return blocking(move || match std::fs::remove_file(upload) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
                _ => Ok(()),
            })
            .await;
        }
        if record.status != DocumentStatus::Queued {
            return Ok(());
        }
        let version = job.version;
        self.set_status(job, version, DocumentStatus::Processing, None)
            .await?;
        match self.build_version(job, &record).await {
            Ok(chunk_count) => self.serve_version(job, version, chunk_count).await,
            Err(err) => {
                let message = match err.code() {
                    ErrorCode::Internal => {
                        tracing::error!(kb = %job.kb, document = %job.document_id, error = ?err, "ingestion failed");
                        "internal error while ingesting; the server log has the details".to_owned()
                    }
                    _ => err.message().to_owned(),
                };
                self.set_status(
                    job,
                    version,
                    DocumentStatus::Failed,
                    Some((err.code(), message)),
                )
                .await?;
                self.remove_files(&job.kb, &job.document_id, Some(record.version))
                    .await
            }
        }
    }

    /// Stores every chunk of the pending version; returns how many there are.
    async fn build_version(&self, job: &Job, record: &DocumentRecord) -> Result<usize> {
        let version = record.pending_version;
        let path = self
            .files_dir(&job.kb)
            .join(file_name(&job.document_id, version));
        let name = record.name.clone();
        let splitter = self.splitter.clone();
        let max_chars = self.config.limits.max_document_chars;
        let (title, pieces) = blocking(move || {
            let bytes = std::fs::read(&path)
                .with_context(|| format!("cannot read {}", path.display()))
                .map_err(Error::internal)?;
            let doc = extract(&name, &bytes)?;
            let chars = doc.text.chars().count();
            if chars > max_chars {
                return Err(Error::new(
                    ErrorCode::PayloadTooLarge,
                    format!("'{name}' has {chars} characters of text, more than the limit of {max_chars}"),
                ));
            }
            let pieces = splitter.split(&doc).map_err(Error::internal)?;
            Ok((doc.title, pieces))
        })
        .await?;
        if pieces.is_empty() {
            return Err(Error::new(
                ErrorCode::EmptyFile,
                format!("'{}' has no text", record.name),
            ));
        }
        let total = pieces.len();
        let chunks: Vec<Chunk> = pieces
            .into_iter()
            .enumerate()
            .map(|(chunk_index, piece)| Chunk {
                document_id: record.id.clone(),
                document_name: record.name.clone(),
                title: title.clone(),
                chunk_index,
                heading_path: piece.heading_path,
                text: piece.text,
                metadata: record.metadata.clone(),
            })
            .collect();
        let mut stored = Vec::with_capacity(total);
        for group in chunks.chunks(PROGRESS_STEP) {
            let texts: Vec<String> = group.iter().map(embedding_text).collect();
            let vectors = self
                .embedder
                .embed_passages(texts)
                .await
                .map_err(Error::internal)?;
            for (chunk, dense) in group.iter().zip(vectors) {
                let keyword = self.keywords.document(&embedding_text(chunk));
                stored.push(StoredChunk {
                    chunk: chunk.clone(),
                    dense,
                    keyword,
                });
            }
            self.catalog
                .set_progress(&job.kb, &job.document_id, stored.len(), total)?;
        }
        self.store
            .replace_document(&job.kb, &job.document_id, version, stored)
            .await
            .map_err(Error::internal)?;
        Ok(total)
    }

    /// Makes `version` the served one, unless the document was deleted or replaced meanwhile.
    async fn serve_version(&self, job: &Job, version: u64, chunk_count: usize) -> Result<()> {
        let catalog = Arc::clone(&self.catalog);
        let (kb, id) = (job.kb.clone(), job.document_id.clone());
        let updated = blocking(move || {
            catalog.update_document(&kb, &id, &mut |current| {
                let mut record = current?.clone();
                if record.pending_version == version {
                    record.version = version;
                    record.status = DocumentStatus::Ready;
                    record.error = None;
                    record.chunk_count = chunk_count;
                    record.chunks_done = chunk_count;
                    record.updated_at = Utc::now();
                }
                Some(record)
            })
        })
        .await;
        match updated {
            Ok(Some(record)) if record.version == version => {
                self.remove_files(&job.kb, &job.document_id, Some(version))
                    .await
            }
            Ok(_) | Err(_) => {
                // Deleted (or its knowledge base deleted) while processing: drop what we stored.
                if self.catalog.document(&job.kb, &job.document_id).is_err() {
                    let _ = self.store.delete_document(&job.kb, &job.document_id).await;
                }
                Ok(())
            }
        }
    }

    async fn set_status(
        &self,
        job: &Job,
        version: u64,
        status: DocumentStatus,
        error: Option<(ErrorCode, String)>,
    ) -> Result<()> {
        let catalog = Arc::clone(&self.catalog);
        let (kb, id) = (job.kb.clone(), job.document_id.clone());
        blocking(move || {
            catalog.update_document(&kb, &id, &mut |current| {
                let mut record = current?.clone();
                if record.pending_version == version {
                    record.status = status;
                    (record.error_code, record.error) = error.clone().unzip();
                    record.updated_at = Utc::now();
                }
                Some(record)
            })
        })
        .await?;
        Ok(())
    }

    /// Puts documents a previous run left queued or processing back in the queue. With a
    /// shared catalog, only those whose upload is in this instance's data directory: the others
    /// are another instance's to finish.
    async fn requeue_unfinished(&self) -> anyhow::Result<()> {
        let shared = self.config.storage.backend == StorageBackend::Qdrant;
        for kb in self.catalog.list_kbs()? {
            for record in self.catalog.documents(&kb.id)? {
                let unfinished = matches!(
                    record.status,
                    DocumentStatus::Queued | DocumentStatus::Processing
                );
                let upload = self
                    .files_dir(&kb.id)
                    .join(file_name(&record.id, record.pending_version));
                if !unfinished || (shared && !upload.exists()) {
                    continue;
                }
                let catalog = Arc::clone(&self.catalog);
                let (kb_id, id) = (kb.id.clone(), record.id.clone());
                blocking(move || {
                    catalog.update_document(&kb_id, &id, &mut |current| {
                        let mut record = current?.clone();
                        record.status = DocumentStatus::Queued;
                        Some(record)
                    })
                })
                .await?;
                self.queue
                    .push(Job {
                        kb: kb.id.clone(),
                        document_id: record.id,
                        version: record.pending_version,
                    })
                    .await?;
            }
        }
        Ok(())
    }

    fn files_dir(&self, kb: &str) -> PathBuf {
        self.kbs_root.join(kb).join("files")
    }

    /// Removes stored upload files of a document, except the one of version `keep`.
    async fn remove_files(&self, kb: &str, id: &str, keep: Option<u64>) -> Result<()> {
        let dir = self.files_dir(kb);
        let prefix = format!("{id}.");
        let keep = keep.map(|v| file_name(id, v));
        blocking(move || {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                return Ok(());
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && Some(&name) != keep.as_ref() {
                    std::fs::remove_file(entry.path())?;
                }
            }
            Ok(())
        })
        .await
    }
}

/// The text embedded and keyword-indexed for a chunk: its title and headings give it context.
fn embedding_text(chunk: &Chunk) -> String {
    let mut context = vec![chunk.title.as_str()];
    context.extend(
        chunk
            .heading_path
            .iter()
            .map(String::as_str)
            .filter(|h| *h != chunk.title),
    );
    format!("{}\n{}", context.join(" > "), chunk.text)
}

/// Runs blocking work (file and catalog I/O) off the async runtime.
async fn blocking<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(Error::internal)?
}

pub(crate) fn lock_data_dir(data_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use fs4::fs_std::FileExt as _;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let path = data_dir.join("lore.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock_exclusive() {
        Ok(true) => Ok(file),
        Ok(false) | Err(_) => anyhow::bail!(
            "the data directory {} is in use by another lore process; stop it, or give this one \
             another directory with --data-dir",
            data_dir.display()
        ),
    }
}

/// Knowledge base ids are used in paths and URLs: `[a-z0-9_-]{1,64}`.
fn validate_kb_id(id: &str) -> Result<()> {
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_request(format!(
            "invalid knowledge base id '{id}': use 1 to 64 of a-z, 0-9, '_' and '-'"
        )))
    }
}

/// The file name without any directory part, so a name like `../../etc/passwd` cannot
/// escape anywhere (files are stored under the document id anyway).
fn clean_file_name(name: &str) -> Result<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    let base: String = base.chars().filter(|c| !c.is_control()).collect();
    if base.is_empty() || base == "." || base == ".." {
        return Err(Error::invalid_request(format!(
            "invalid file name '{name}'"
        )));
    }
    Ok(base)
}

/// Stable document id: the same file name in a knowledge base is the same document.
pub fn document_id(name: &str) -> String {
    hex::encode(&Sha256::digest(name.as_bytes())[..8])
}

fn file_name(id: &str, version: u64) -> String {
    format!("{id}.{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kb_ids_are_path_and_url_safe() {
        for ok in ["faq", "a", "events_2024", "zh-cn"] {
            assert!(validate_kb_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "FAQ", "a/b", "..", "a b", &"x".repeat(65), "中文"] {
            assert_eq!(
                validate_kb_id(bad).unwrap_err().code(),
                ErrorCode::InvalidRequest,
                "{bad}"
            );
        }
    }

    #[test]
    fn file_names_lose_directories() {
        assert_eq!(clean_file_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(clean_file_name("C:\\docs\\规则.md").unwrap(), "规则.md");
        assert!(clean_file_name("dir/").is_err());
        assert!(clean_file_name("..").is_err());
    }

    #[test]
    fn document_ids_are_stable_per_name() {
        assert_eq!(document_id("a.md"), document_id("a.md"));
        assert_ne!(document_id("a.md"), document_id("b.md"));
        assert_eq!(document_id("a.md").len(), 16);
    }

    #[test]
    fn embedding_text_carries_title_and_headings_once() {
        let chunk = Chunk {
            document_id: "d".into(),
            document_name: "d.md".into(),
            title: "价格".into(),
            chunk_index: 0,
            heading_path: vec!["价格".into(), "企业版".into()],
            text: "每月 100 元。".into(),
            metadata: Default::default(),
        };
        assert_eq!(embedding_text(&chunk), "价格 > 企业版\n每月 100 元。");
    }
}
