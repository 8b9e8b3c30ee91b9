//! The S3 sync, `aws s3 sync` semantics: scan → list (with hashing alongside) → plan → execute.

pub(crate) mod compare;
mod content_etags;
pub(crate) mod etag;
pub(crate) mod execute;
mod header_check;
pub(crate) mod headers;
pub(crate) mod local;
mod open;
pub(crate) mod plan;
mod prepare;
pub(crate) mod release_draft;
pub(crate) mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use aws_config::SdkConfig;

use crate::cancel::Cancel;
use crate::compress::Compression;
use crate::config::{CompareMode, SyncConfig};
use crate::output::Output;
use crate::release::Manifest;
use crate::release::grace::{GraceSummary, Graced};
use crate::release::store::{Loaded, Store, StoreError};
use crate::s3::scope::MAX_KEY_BYTES;
use crate::s3::{ListMode, RemoteObject, S3Error, Scope, Versioning, Writer};
use content_etags::ContentEtags;
use etag::LocalDigest;
use execute::Target;
use local::LocalFile;
use plan::{GuardError, Plan, PlanInput};

/// Errors that stop the sync before or while it writes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncError {
    /// An S3 request failed (the message names the fix), or the scope refused a write.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// The release state could not be read, or is not one this pipe wrote.
    #[error(transparent)]
    State(#[from] StoreError),
    /// A task of the pipe's own failed (a bug, or the runtime shutting down).
    #[error("internal error {0}")]
    Internal(String),
    /// Stopped by a signal before anything was written.
    #[error("interrupted before anything was written")]
    Interrupted,
    /// A safety guard refused the plan; nothing was written.
    #[error(transparent)]
    Guard(#[from] GuardError),
}

/// What the sync did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub(crate) struct SyncOutcome {
    pub(crate) bucket: String,
    pub(crate) prefix: String,
    /// Full keys.
    pub(crate) uploaded: Vec<String>,
    pub(crate) reheadered: Vec<String>,
    pub(crate) deleted: Vec<String>,
    pub(crate) unchanged: usize,
    pub(crate) bytes: u64,
    pub(crate) seconds: f64,
    pub(crate) not_md5: usize,
    pub(crate) dry_run: bool,
    /// (relative key, message) of every failed operation: non-empty means exit 1. No key for a
    /// failure that is not about one object.
    pub(crate) failures: Vec<(Option<String>, String)>,
    pub(crate) html_held_back: usize,
    pub(crate) deletes_held_back: usize,
    /// Header re-applies not started because an earlier operation failed (the next run does
    /// them: see `plan::sample_order`).
    pub(crate) reheaders_held_back: usize,
    /// Bytes not sent thanks to precompression (uploaded files only).
    pub(crate) compression_saved: u64,
    /// Local files and folders that were skipped or need attention (see
    /// `local::Scan::skipped_files`).
    pub(crate) skipped: Vec<local::SkippedFile>,
    /// The delete grace period's counts, when `DELETE_GRACE` is set.
    pub(crate) grace: Option<GraceSummary>,
    /// What to record as a release, when the run succeeded and writes state (not in a dry run).
    pub(crate) release: Option<crate::release::record::Draft>,
}

impl SyncOutcome {
    /// Every key whose content or headers changed: what `PATHS=changed` invalidates.
    pub(crate) fn changed_keys(&self) -> impl Iterator<Item = &String> {
        self.uploaded
            .iter()
            .chain(&self.reheadered)
            .chain(&self.deleted)
    }
}

/// Run the sync: scan, list (hashing meanwhile), plan, check headers, execute, and draft the
/// release to record.
pub(crate) async fn run(
    sdk: &SdkConfig,
    cfg: &SyncConfig,
    dry_run: bool,
    out: &Output,
    cancel: &Cancel,
) -> Result<SyncOutcome, SyncError> {
    let start = Instant::now();
    let scope = Scope::new(&cfg.bucket, &cfg.prefix, &cfg.releases.state_prefix);
    out.info(format!(
        "Syncing {} to s3://{}/{}{}",
        cfg.local_display,
        cfg.bucket,
        cfg.prefix,
        if dry_run { " (dry run)" } else { "" }
    ));
    let (files, scan, groups) = scan(cfg, &scope, out).await?;
    // The local tree maps the bucket's keys: the listing runs in ranges of its keys, at once.
    let page_keys = cfg
        .request_extras
        .page_size
        .map_or(crate::s3::list::PAGE_KEYS, |n| {
            usize::try_from(n).unwrap_or(1)
        });
    let split = crate::s3::list::Split::from_local(
        &cfg.prefix,
        files.iter().map(|f| f.rel.as_str()),
        page_keys,
        cfg.max_concurrency.listing(),
    );

    // While the listing runs: compress the files whose rule asks for it (their size and MD5
    // are those of the compressed bytes) and hash the small files (checksum mode): most sites
    // are small files, and by the time the listing is back their MD5s are ready.
    let compressions: Vec<Option<Compression>> = groups.iter().map(|g| g.compress).collect();
    let checksum = cfg.compare == CompareMode::Checksum;
    // Hashing stops when the listing is back: the late pass then hashes only the files that
    // have a same-size object. An initial upload (empty bucket) thus hashes nothing: the
    // 5,000-file upload spent 16% of its CPU on hashes it never used before (BENCHMARKS.md, P1).
    let stop_hashing = Arc::new(AtomicBool::new(false));
    let stop = stop_hashing.clone();
    let prep = tokio::task::spawn_blocking(move || {
        prepare::prepare(files, &compressions, checksum, &stop)
    });
    let listed = list_and_load(sdk, cfg, &scope, &split, !dry_run, out).await;
    stop_hashing.store(true, Ordering::Relaxed);
    let Listed {
        site,
        store,
        remote,
        versioning,
        loaded,
        live_manifest,
    } = listed?;
    // Objects whose ETag is not their MD5 are compared by the content ETag their manifest
    // recorded, while they are still the objects it recorded.
    let content = live_manifest
        .as_ref()
        .map(|m| ContentEtags::from_manifest(m, &remote))
        .unwrap_or_default();
    let compared = content.compare_view(&remote);
    let (files, digests) = prep
        .await
        .map_err(|e| SyncError::Internal(format!("while hashing: {e}")))?;
    let (files, digests) = prepare::finish(files, digests, cfg.compare, &compared).await?;

    if cancel.is_cancelled() {
        return Err(SyncError::Interrupted);
    }
    let (mut the_plan, graced, grace_summary) =
        plan_with_guards(cfg, &files, &compared, &digests, &scan, &loaded)?;
    header_check::check(
        site.client(),
        cfg,
        &groups,
        &files,
        &remote,
        &mut the_plan,
        out,
    )
    .await?;
    print_plan(
        &the_plan,
        files.len(),
        remote.len(),
        grace_summary.as_ref(),
        out,
    );

    let target = Target {
        writer: site,
        bucket: cfg.bucket.clone(),
        prefix: cfg.prefix.clone(),
        local_display: execute::display_local_path(
            &cfg.local_display,
            std::env::current_dir().ok().as_deref(),
        ),
        groups: groups.clone(),
        dry_run,
        verbosity: cfg.verbosity,
        progress: cfg.progress,
        max_concurrency: cfg.max_concurrency,
        checksum: cfg
            .request_extras
            .checksum_algorithm
            .as_deref()
            .and_then(verify::ChecksumAlgo::parse),
    };
    let files = Arc::try_unwrap(files).unwrap_or_else(|a| (*a).clone());
    let done = execute::execute(target, files.clone(), &the_plan, out, cancel).await;
    let succeeded = done.failures.is_empty() && !cancel.is_cancelled();
    let recording = release_draft::Recording {
        cfg,
        store,
        loaded,
        versioning,
        remote: &remote,
        content: &content,
        live_manifest,
        files: &files,
        groups: &groups,
        stale: graced.stale,
        unchanged: the_plan.unchanged.len(),
        dry_run,
    };
    let release = release_draft::draft(recording, &done, succeeded, out).await;
    Ok(outcome(
        cfg,
        &files,
        &the_plan,
        done,
        scan,
        grace_summary,
        release,
        start,
        dry_run,
    ))
}

/// Scan LOCAL_PATH: the files to deploy (keys S3 can take, none of the pipe's reserved keys),
/// with their header group; the scan's warnings are printed.
async fn scan(
    cfg: &SyncConfig,
    scope: &Scope,
    out: &Output,
) -> Result<(Vec<LocalFile>, local::Scan, Vec<headers::Group>), SyncError> {
    let root = cfg.local_path.clone();
    let (symlinks, filters) = (cfg.symlinks, cfg.filters.clone());
    let scan = tokio::task::spawn_blocking(move || local::scan(&root, symlinks, &filters))
        .await
        .map_err(|e| SyncError::Internal(format!("while scanning: {e}")))?;
    let mut scan = scan;
    let prefix_len = cfg.prefix.len();
    let (files, too_long): (Vec<_>, Vec<_>) = std::mem::take(&mut scan.files)
        .into_iter()
        .partition(|f| prefix_len + f.rel.len() <= MAX_KEY_BYTES);
    for f in too_long {
        let reason = format!(
            "its key would be {} bytes, more than S3's limit of {MAX_KEY_BYTES}",
            prefix_len + f.rel.len()
        );
        scan.warnings
            .push(format!("Skipping {}: {reason}", f.path.display()));
        scan.skipped_files.push(local::SkippedFile {
            path: f.rel.clone(),
            reason,
        });
        scan.skipped.push(f.rel);
    }
    let warned = scan.warnings.len();
    for w in &scan.warnings {
        out.warn(w);
    }
    // The pipe's own state: never uploaded over.
    let (files, reserved): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|f| !scope.is_reserved(&format!("{}{}", cfg.prefix, f.rel)));
    for f in &reserved {
        scan.warnings.push(format!(
            "Not uploading {}: its key is reserved for the pipe's release state ({}); rename it, or move the state with STATE_PREFIX",
            f.path.display(),
            crate::config::STATE_DIR
        ));
    }
    for w in scan.warnings.iter().skip(warned) {
        out.warn(w);
    }
    let mut files = files;
    let groups = headers::groups(&cfg.headers, &cfg.rules);
    if !cfg.rules.is_empty() {
        for f in &mut files {
            f.group = headers::group_of(&f.rel, &cfg.rules);
        }
    }
    Ok((files, scan, groups))
}

/// What the listing step hands on.
struct Listed {
    /// The site's writer, in the bucket's region.
    site: Writer,
    store: Store,
    remote: Vec<RemoteObject>,
    versioning: Versioning,
    loaded: Loaded,
    /// The live release's manifest, read when it records content ETags.
    live_manifest: Option<Manifest>,
}

/// List the prefix (in the ranges of `split`) and read the release state (concurrently), in the
/// bucket's own region when S3 names another. `recording`: not a dry run (the versioning is
/// read when releases are kept).
async fn list_and_load(
    sdk: &SdkConfig,
    cfg: &SyncConfig,
    scope: &Scope,
    split: &crate::s3::list::Split,
    recording: bool,
    out: &Output,
) -> Result<Listed, SyncError> {
    let releases = &cfg.releases;
    let site = Writer::new(crate::s3::client::site_client(sdk, cfg), scope.clone());
    // The release state is read once, before anything is written, while the listing runs.
    let mode = if releases.history > 0 && recording {
        ListMode::CurrentAndVersioning
    } else {
        ListMode::Current
    };
    let state_store = |sdk: &SdkConfig| Store {
        writer: Writer::new(crate::s3::client::state_client(sdk, cfg), scope.clone()),
    };
    let load = |store: Store| async move {
        let loaded = if releases.uses_state() {
            store.load(&cfg.prefix).await
        } else {
            Ok(Loaded::default())
        };
        // The live release's manifest, when it holds content ETags (SSE-KMS buckets): read
        // while the listing runs too.
        let live = loaded.as_ref().ok().and_then(|l| l.state.releases.last());
        let manifest = match live.filter(|r| r.content_etags) {
            Some(r) => Some(store.release_manifest(r).await),
            None => None,
        };
        (store, (loaded, manifest))
    };
    let (mut listed, (mut store, (mut loaded, mut manifest))) = tokio::join!(
        crate::s3::list::list(site.client(), scope, mode, split, out),
        load(state_store(sdk))
    );
    let mut site = site;
    if let Err(S3Error::WrongRegion(region)) = &listed {
        // A bucket in another region: S3 named it. Users migrating from the Atlassian pipe may
        // have an AWS_DEFAULT_REGION that worked there. Only S3 moves; STS and CloudFront are
        // regional or global services that do not care where the bucket is.
        let sdk_here = crate::s3::client::sdk_in_region(sdk, cfg, region, out);
        site = site.with_client(crate::s3::client::site_client(&sdk_here, cfg));
        (listed, (store, (loaded, manifest))) = tokio::join!(
            crate::s3::list::list(site.client(), scope, mode, split, out),
            load(state_store(&sdk_here))
        );
    }
    let (remote, versioning, _) = listed?;
    let live_manifest = match manifest {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            out.warn(format!(
                "The live release's manifest cannot be used ({e}): objects whose ETags are not MD5s (SSE-KMS, SSE-C) are compared as changed and uploaded again"
            ));
            None
        }
        None => None,
    };
    Ok(Listed {
        site,
        store,
        remote,
        versioning,
        loaded: loaded?,
        live_manifest,
    })
}

/// The plan, with the grace period applied to its deletes and the guards checked.
fn plan_with_guards(
    cfg: &SyncConfig,
    files: &[LocalFile],
    remote: &[RemoteObject],
    digests: &[Option<LocalDigest>],
    scan: &local::Scan,
    loaded: &Loaded,
) -> Result<(Plan, Graced, Option<GraceSummary>), GuardError> {
    let releases = &cfg.releases;
    let now = crate::release::now_secs();
    let mut the_plan = plan::plan(&PlanInput {
        local: files,
        remote,
        digests,
        mode: cfg.compare,
        delete: cfg.delete,
        filters: &cfg.filters,
        protected: &scan.skipped,
    });
    // An empty source is refused on the candidates, before the grace period could hide them
    // as stale keys (a wiped site would only be wiped later).
    the_plan.check_guards(files.len(), remote.len(), None)?;
    // The grace period turns delete candidates into stale keys until they have waited long
    // enough; MAX_DELETE counts the real deletes.
    let graced = crate::release::grace::apply(
        &the_plan.deletes,
        &loaded.state.stale,
        now,
        releases.grace_secs,
    );
    the_plan.deletes.clone_from(&graced.deletes);
    let grace_summary = releases.grace_secs.map(|g| GraceSummary {
        grace_seconds: g,
        became_stale: graced.became_stale,
        stale_deleted: graced.stale_deleted,
        stale_waiting: graced.stale.len(),
    });
    the_plan.check_guards(files.len(), remote.len(), cfg.max_delete)?;
    Ok((the_plan, graced, grace_summary))
}

/// The plan's line (and the count of objects whose ETags are not MD5s).
fn print_plan(
    the_plan: &Plan,
    files: usize,
    remote: usize,
    grace: Option<&GraceSummary>,
    out: &Output,
) {
    if the_plan.not_md5 > 0 {
        out.info(format!(
            "{} object(s) have ETags that are not MD5s (SSE-KMS, SSE-C or the store's own form): they count as changed",
            the_plan.not_md5
        ));
    }
    out.info(format!(
        "Plan: {} to upload, {} to re-header, {} unchanged, {} to delete ({files} local files, {remote} remote objects){}",
        the_plan.uploads.len(),
        the_plan.reheaders.len() + the_plan.reheader_samples.len() + the_plan.reheader_sentinels.len(),
        the_plan.unchanged.len(),
        the_plan.deletes.len(),
        grace.map(|g| format!("; {}", g.line())).unwrap_or_default()
    ));
}

/// What the sync did, for the summary and the report.
#[allow(clippy::too_many_arguments)]
fn outcome(
    cfg: &SyncConfig,
    files: &[LocalFile],
    the_plan: &Plan,
    done: execute::Executed,
    scan: local::Scan,
    grace: Option<GraceSummary>,
    release: Option<crate::release::record::Draft>,
    start: Instant,
    dry_run: bool,
) -> SyncOutcome {
    let uploaded: std::collections::HashSet<&str> =
        done.uploaded.iter().map(String::as_str).collect();
    // Bytes not sent thanks to precompression, of the files uploaded.
    let compression_saved: u64 = files
        .iter()
        .filter(|f| f.encoding.is_some() && uploaded.contains(f.rel.as_str()))
        .map(|f| f.source_size.saturating_sub(f.size))
        .sum();
    let full = |rel: &String| format!("{}{rel}", cfg.prefix);
    SyncOutcome {
        bucket: cfg.bucket.clone(),
        prefix: cfg.prefix.clone(),
        uploaded: done.uploaded.iter().map(full).collect(),
        reheadered: done.reheadered.iter().map(full).collect(),
        deleted: done.deleted.iter().map(full).collect(),
        unchanged: the_plan.unchanged.len(),
        bytes: done.bytes,
        seconds: start.elapsed().as_secs_f64(),
        not_md5: the_plan.not_md5,
        dry_run,
        failures: done.failures,
        html_held_back: done.html_held_back,
        deletes_held_back: done.deletes_held_back,
        reheaders_held_back: done.reheaders_held_back,
        compression_saved,
        skipped: scan.skipped_files,
        grace,
        release,
    }
}
