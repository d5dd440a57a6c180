//! The `lore` binary: the server and the command-line client.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use lore::cli::{self, Backend};
use lore::config::{Config, StorageBackend};
use lore::kb::KnowledgeBase;
use tracing_subscriber::EnvFilter;

/// Qdrant Edge logs internal notices (feature flags, WAL opening) that mean nothing to users.
const DEFAULT_LOG: &str = "info,qdrant_edge=error";

#[derive(Parser)]
#[command(
    name = "lore",
    version,
    about = "A self-hosted knowledge base for support bots"
)]
struct Cli {
    /// Config file (default: ./lore.toml when it exists).
    #[arg(long, global = true, env = "LORE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`), so several servers can run side by side.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the HTTP server.
    Serve {
        /// Address to listen on (overrides `listen`).
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
    /// Ingests files and folders into a knowledge base (created if missing).
    Ingest {
        kb: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Server to send to (default: the configured listen address, else the data directory).
        #[arg(long)]
        server: Option<String>,
    },
    /// Measures retrieval on a labelled set (hit@k, MRR) for dense, keyword and hybrid ranking.
    Eval {
        /// corpus.jsonl ({"id","title","text"} per line) or a folder of documents.
        #[arg(long)]
        corpus: PathBuf,
        /// queries.jsonl ({"question", "gold_ids" or "source_files", "type"?} per line).
        #[arg(long)]
        queries: PathBuf,
        /// Writes (question, chunk, fused value, relevant) lines for scripts/fit-calibration.
        #[arg(long)]
        dump: Option<PathBuf>,
        /// Prints every question's verdict and the signals behind it.
        #[arg(long)]
        verbose: bool,
    },
    /// Measures retrieval latency, alone and through /dify/retrieval under concurrent load, at a
    /// chosen number of chunks (real passages plus perturbed copies of their vectors).
    Bench {
        #[arg(long)]
        corpus: PathBuf,
        #[arg(long)]
        queries: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        chunks: usize,
        #[arg(long, default_value_t = 300)]
        passages: usize,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 20)]
        requests: usize,
        /// What to measure: all (each part in a fresh process), store, or ingestion.
        #[arg(long, value_enum, default_value = "all")]
        part: lore::bench::Part,
    },
    /// Answers a question from a knowledge base (verdict, answer, sources).
    Ask {
        kb: String,
        question: String,
        /// Time budget in milliseconds (default: answer.deadline_ms).
        #[arg(long)]
        deadline_ms: Option<u64>,
        #[arg(long)]
        server: Option<String>,
    },
    /// Copies knowledge bases from the configured store (`storage.backend`) to the other one,
    /// stored vectors included (no re-embedding); then switch `storage.backend`.
    Migrate {
        /// The backend to copy to: `qdrant` (storage.qdrant.*) or `embedded`.
        #[arg(long, value_parser = parse_backend)]
        to: StorageBackend,
        /// Knowledge bases to copy (repeatable); all by default.
        #[arg(long = "kb")]
        kbs: Vec<String>,
        /// Copy into another data directory, catalog included (default: this one).
        #[arg(long)]
        to_data_dir: Option<PathBuf>,
    },
    /// Searches a knowledge base.
    Search {
        kb: String,
        query: String,
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        #[arg(long)]
        server: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("LORE_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    match cli.command {
        Command::Serve { addr } => {
            if let Some(addr) = addr {
                config.listen = addr;
            }
            serve(config).await
        }
        Command::Ingest { kb, paths, server } => {
            let backend = Backend::connect(&config, server.as_deref()).await?;
            cli::ingest(&backend, &kb, &paths).await
        }
        Command::Eval {
            corpus,
            queries,
            dump,
            verbose,
        } => {
            let args = lore::eval::EvalArgs {
                corpus,
                queries,
                dump,
                verbose,
            };
            lore::eval::run(config, args).await
        }
        Command::Bench {
            corpus,
            queries,
            chunks,
            passages,
            clients,
            requests,
            part,
        } => {
            let args = lore::bench::BenchArgs {
                part,
                corpus,
                queries,
                chunks,
                passages,
                clients,
                requests,
            };
            lore::bench::run(config, args).await
        }
        Command::Ask {
            kb,
            question,
            deadline_ms,
            server,
        } => {
            let backend = Backend::connect(&config, server.as_deref()).await?;
            cli::ask(&backend, &kb, &question, deadline_ms).await
        }
        Command::Migrate {
            to,
            kbs,
            to_data_dir,
        } => {
            let args = lore::migrate::MigrateArgs {
                to,
                kbs,
                to_data_dir,
            };
            for copied in lore::migrate::run(config, args).await? {
                println!("{}: {} chunks copied", copied.kb, copied.chunks);
            }
            Ok(())
        }
        Command::Search {
            kb,
            query,
            top_k,
            server,
        } => {
            let backend = Backend::connect(&config, server.as_deref()).await?;
            cli::search(&backend, &kb, &query, top_k).await
        }
    }
}

fn parse_backend(value: &str) -> Result<StorageBackend, String> {
    match value {
        "embedded" => Ok(StorageBackend::Embedded),
        "qdrant" => Ok(StorageBackend::Qdrant),
        other => Err(format!(
            "'{other}' is not a backend: use embedded or qdrant"
        )),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(data_dir = %config.data_dir.display(), "loading");
    let service = KnowledgeBase::open(config).await?;
    tracing::info!(addr = %listener.local_addr()?, "lore is listening");
    lore::http::serve(listener, service, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
