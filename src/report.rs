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
pub(crate) const SCHEMA: u32 = 3;

#[derive(Debug, Serialize)]
pub(crate) struct Report<'a> {
    pub(crate) schema: u32,
    pub(crate) pipe_version: &'static str,
    pub(crate) success: bool,
    pub(crate) exit_code: u8,
    /// What ended the run, when it failed: the `✖` line (configuration problems one per line).
    pub(crate) error: Option<&'a str>,
    pub(crate) dry_run: bool,
    pub(crate) sync: Option<SyncReport<'a>>,
    pub(crate) invalidations: &'a [Invalidation],
    /// Why no invalidation was made, when none was.
    pub(crate) invalidation_skipped: Option<&'a str>,
    /// The release this run recorded.
    pub(crate) release: Option<&'a crate::release::record::Recorded>,
    /// What a `ROLLBACK` run restored.
    pub(crate) rollback: Option<&'a crate::rollback::RollbackOutcome>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SyncReport<'a> {
    pub(crate) target: String,
    pub(crate) bucket: &'a str,
    pub(crate) prefix: &'a str,
    pub(crate) counts: Counts,
    pub(crate) bytes: u64,
    /// Bytes not sent thanks to precompression.
    pub(crate) compression_saved_bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) uploaded: &'a [String],
    pub(crate) reheadered: &'a [String],
    pub(crate) deleted: &'a [String],
    pub(crate) failed: Vec<Failed<'a>>,
    /// Local files and folders that were skipped, or deployed with a warning (an invalid
    /// modification time), relative to LOCAL_PATH.
    pub(crate) skipped: &'a [crate::sync::local::SkippedFile],
    /// The delete grace period's counts, with `DELETE_GRACE`.
    pub(crate) grace: Option<&'a crate::release::grace::GraceSummary>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Counts {
    pub(crate) uploaded: usize,
    pub(crate) reheadered: usize,
    pub(crate) unchanged: usize,
    pub(crate) deleted: usize,
    pub(crate) failed: usize,
    pub(crate) not_md5_etags: usize,
}

#[derive(Debug, Serialize)]
pub(crate) struct Failed<'a> {
    /// The full S3 key; `null` for a failure that is not about one object.
    pub(crate) key: Option<String>,
    pub(crate) error: &'a str,
}

impl<'a> SyncReport<'a> {
    pub(crate) fn from_outcome(o: &'a SyncOutcome) -> Self {
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
pub(crate) fn write(path: &Path, report: &Report<'_>) -> std::io::Result<()> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}
