//! Ingestion: from uploaded bytes to chunks ready to embed.
//!
//! `extract` turns a file into text (by format), `split` cuts the text into chunks that fit the
//! embedding model and carry their headings; `queue` runs both, then embedding and storing, for
//! each uploaded document in the background.

pub(crate) mod docx;
pub mod extract;
#[cfg(test)]
mod fuzz;
mod html;
mod pdf;
pub mod queue;
pub mod split;
