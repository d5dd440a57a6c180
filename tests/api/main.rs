//! Integration tests: one binary, real servers on port 0 with fresh data directories, the real
//! embedding model (set up by scripts/setup-models) and the real embedded Qdrant engine.

mod answer;
mod auth;
mod common;
mod crash;
mod dify;
mod documents;
mod errors;
mod formats;
mod hostile;
mod kbs;
mod load;
mod model;
mod observe;
mod openapi;
mod retrieval;
mod search;
mod startup;
mod store;
mod store_compose;
mod store_migrate;
mod store_replicas;
mod web;
mod wechat;
