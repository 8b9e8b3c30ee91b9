//! The JSON deploy report, for later steps (post a link, smoke-test the changed pages).
//!
//! Written to `$BITBUCKET_PIPE_SHARED_STORAGE_DIR/s3-deploy-pipe/report.json` in Bitbucket, or
//! to `REPORT_FILE`. The schema is documented in the README; `schema` is bumped on changes.

use std::path::Path;

use serde::Serialize;

use crate::invalidate::Invalidation;
use crate::sync::SyncOutcome;

/// Version of the report's schema. 2: `error`; `failed[].key` can be `null`; written for
/// every run, also one that ends early. 3: `release`, `rollback`, `sync.grace`.
pub const SCHEMA: u32 = 3;

#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub schema: u32,
    pub pipe_version: &'static str,
    pub success: bool,
    pub exit_code: u8,
    /// What ended the run, when it failed: the `✖` line (configuration problems one per line).
    pub error: Option<&'a str>,
    pub dry_run: bool,
    pub sync: Option<SyncReport<'a>>,
    pub invalidations: &'a [Invalidation],
    /// Why no invalidation was made, when none was.
    pub invalidation_skipped: Option<&'a str>,
    /// The release this run recorded.
    pub release: Option<&'a crate::release::record::Recorded>,
    /// What a `ROLLBACK` run restored.
    pub rollback: Option<&'a crate::rollback::RollbackOutcome>,
}

#[derive(Debug, Serialize)]
pub struct SyncReport<'a> {
    pub target: String,
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub counts: Counts,
    pub bytes: u64,
    /// Bytes not sent thanks to precompression.
    pub compression_saved_bytes: u64,
    pub seconds: f64,
    pub uploaded: &'a [String],
    pub reheadered: &'a [String],
    pub deleted: &'a [String],
    pub failed: Vec<Failed<'a>>,
    /// Local files and folders that were skipped, or deployed with a warning (an invalid
    /// modification time), relative to LOCAL_PATH.
    pub skipped: &'a [crate::sync::local::SkippedFile],
    /// The delete grace period's counts, with `DELETE_GRACE`.
    pub grace: Option<&'a crate::release::grace::GraceSummary>,
}

#[derive(Debug, Serialize)]
pub struct Counts {
    pub uploaded: usize,
    pub reheadered: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub failed: usize,
    pub not_md5_etags: usize,
}

#[derive(Debug, Serialize)]
pub struct Failed<'a> {
    /// The full S3 key; `null` for a failure that is not about one object.
    pub key: Option<String>,
    pub error: &'a str,
}

impl<'a> SyncReport<'a> {
    pub fn from_outcome(o: &'a SyncOutcome) -> Self {
        SyncReport {
            target: format!("s3://{}/{}", o.bucket, o.prefix),
            bucket: &o.bucket,
            prefix: &o.prefix,
            counts: Counts {
                uploaded: o.uploaded.len(),
                reheadered: o.reheadered.len(),
                unchanged: o.unchanged,
                deleted: o.deleted.len(),
                failed: o.failures.len(),
                not_md5_etags: o.not_md5,
            },
            bytes: o.bytes,
            compression_saved_bytes: o.compression_saved,
            seconds: (o.seconds * 1000.0).round() / 1000.0,
            uploaded: &o.uploaded,
            reheadered: &o.reheadered,
            deleted: &o.deleted,
            failed: o
                .failures
                .iter()
                .map(|(k, e)| Failed {
                    key: k.as_ref().map(|k| format!("{}{k}", o.prefix)),
                    error: e,
                })
                .collect(),
            skipped: &o.skipped,
            grace: o.grace.as_ref(),
        }
    }
}

/// Write the report as pretty JSON, creating the folder.
pub fn write(path: &Path, report: &Report<'_>) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}
