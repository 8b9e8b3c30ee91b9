//! The S3 sync, `aws s3 sync` semantics: scan → list (with hashing alongside) → plan → execute.

pub mod compare;
pub mod compress;
pub mod etag;
pub mod execute;
pub mod filter;
pub mod headers;
pub mod local;
pub mod plan;
pub mod remote;
pub mod request_extras;
pub mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::{RetryConfig, RetryPartition, TokenBucket};
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::cancel::Cancel;
use crate::config::{CompareMode, SyncConfig};
use crate::output::Output;
use compress::Compression;
use etag::LocalDigest;
use execute::{MULTIPART_THRESHOLD, Target};
use local::LocalFile;
use md5::Digest;
use plan::{GuardError, PlanInput};
use remote::RemoteObject;

/// Errors that stop the sync before or while it writes.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// An S3 call failed; the message names the fix.
    #[error("{0}")]
    Aws(String),
    /// The bucket is in this other region (S3 said so): the sync retries there.
    #[error(
        "the bucket is in region {0}, not in the one configured: set AWS_DEFAULT_REGION to {0}"
    )]
    WrongRegion(String),
    /// Stopped by a signal before anything was written.
    #[error("interrupted before anything was written")]
    Interrupted,
    /// A safety guard refused the plan; nothing was written.
    #[error(transparent)]
    Guard(#[from] GuardError),
}

impl SyncError {
    fn from_sdk<E: ProvideErrorMetadata + std::error::Error + 'static>(
        op: &str,
        bucket: &str,
        key: Option<&str>,
        err: SdkError<E>,
    ) -> SyncError {
        SyncError::Aws(explain_sdk_error(op, bucket, key, false, &err))
    }
}

/// Turn an S3 error into a message that names the missing permission or the fix.
pub(crate) fn explain_sdk_error<E>(
    op: &str,
    bucket: &str,
    key: Option<&str>,
    acl: bool,
    err: &SdkError<E>,
) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (code, detail) = crate::aws_error::code_and_detail(err);
    let resource = match key {
        Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
        None => format!("arn:aws:s3:::{bucket}"),
    };
    match (code.as_str(), op) {
        ("NoSuchBucket", _) => {
            format!("bucket {bucket:?} does not exist ({detail}): create it, or fix S3_BUCKET")
        }
        ("PermanentRedirect" | "AuthorizationHeaderMalformed", _) => format!(
            "bucket {bucket:?} is in another region than the one configured ({detail}): set AWS_DEFAULT_REGION to the bucket's region"
        ),
        ("AccessDenied", "list") => format!(
            "access denied listing the bucket ({detail}): allow s3:ListBucket on arn:aws:s3:::{bucket} for this role or user"
        ),
        ("AccessDenied", "put") if acl => format!(
            "access denied ({detail}): allow s3:PutObject and s3:PutObjectAcl (ACL is set) on {resource}"
        ),
        ("AccessDenied", "put") => {
            format!("access denied ({detail}): allow s3:PutObject on {resource}")
        }
        ("AccessDenied", "copy") => format!(
            "access denied ({detail}): allow s3:GetObject and s3:PutObject{} on {resource}",
            if acl { " and s3:PutObjectAcl" } else { "" }
        ),
        ("AccessDenied", "delete") => {
            format!("access denied ({detail}): allow s3:DeleteObject on arn:aws:s3:::{bucket}/*")
        }
        ("AccessDenied", "head") => {
            format!("access denied ({detail}): allow s3:GetObject on {resource}")
        }
        _ => detail,
    }
}

/// What the sync did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct SyncOutcome {
    pub bucket: String,
    pub prefix: String,
    /// Full keys.
    pub uploaded: Vec<String>,
    pub reheadered: Vec<String>,
    pub deleted: Vec<String>,
    pub unchanged: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub not_md5: usize,
    pub dry_run: bool,
    pub warnings: usize,
    /// (relative key, message) of every failed operation: non-empty means exit 1. No key for a
    /// failure that is not about one object.
    pub failures: Vec<(Option<String>, String)>,
    pub html_held_back: usize,
    pub deletes_held_back: usize,
    /// Header re-applies not started because an earlier operation failed (the next run does
    /// them: see `plan::sample_order`).
    pub reheaders_held_back: usize,
    /// Bytes not sent thanks to precompression (uploaded files only).
    pub compression_saved: u64,
    /// Local files and folders that were skipped or need attention (see
    /// `local::Scan::skipped_files`).
    pub skipped: Vec<local::SkippedFile>,
    /// The delete grace period's counts, when `DELETE_GRACE` is set.
    pub grace: Option<GraceSummary>,
    /// What to record as a release, when the run succeeded and writes state (not in a dry run).
    pub release: Option<crate::release::record::Draft>,
}

/// The delete grace period in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GraceSummary {
    pub grace_seconds: u64,
    /// Keys that became stale in this run.
    pub became_stale: usize,
    /// Stale keys deleted in this run (stale for longer than the grace).
    pub stale_deleted: usize,
    /// Stale keys waiting after this run (the ones that became stale included).
    pub stale_waiting: usize,
}

impl GraceSummary {
    /// `delete grace 7d: 2 became stale, 1 stale deleted, 3 waiting`
    pub fn line(&self) -> String {
        format!(
            "delete grace {}: {} became stale, {} stale deleted, {} waiting",
            crate::release::format_duration(self.grace_seconds),
            self.became_stale,
            self.stale_deleted,
            self.stale_waiting
        )
    }
}

impl SyncOutcome {
    /// Every key whose content or headers changed: what `PATHS=changed` invalidates.
    pub fn changed_keys(&self) -> impl Iterator<Item = &String> {
        self.uploaded
            .iter()
            .chain(&self.reheadered)
            .chain(&self.deleted)
    }
}

/// The S3 client for the sync.
///
/// Request checksums are sent only where S3 requires them: plain `Content-Length` bodies work
/// with every S3-compatible store, and single-part ETags (MD5) already let us verify content.
pub fn s3_client(sdk: &SdkConfig, force_path_style: bool) -> Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(force_path_style)
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        // The standard token bucket stops retrying after ~100 retries per client, which protects
        // long-running services from retry storms. A deploy is a bounded batch that must finish
        // under throttling (503 SlowDown) and flaky networks, so it gets its own unlimited bucket.
        .retry_partition(
            RetryPartition::custom("s3-deploy-pipe")
                .token_bucket(TokenBucket::unlimited())
                .build(),
        )
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(conf)
}

/// The client for the pipe's own state: the sync's endpoint and settings, but none of the
/// EXTRA_ARGS that shape the site's objects (grants, SSE-C keys, checksums).
pub(crate) fn state_client(sdk: &SdkConfig, cfg: &SyncConfig) -> Client {
    let extras = crate::config::S3RequestExtras {
        endpoint_url: cfg.request_extras.endpoint_url.clone(),
        request_payer: cfg.request_extras.request_payer,
        ..Default::default()
    };
    request_extras::wrap(s3_client(sdk, cfg.force_path_style), &extras)
}

/// The client for a bucket in `region` (S3 said the bucket is there).
pub(crate) fn client_in_region(
    sdk: &SdkConfig,
    cfg: &SyncConfig,
    region: &str,
    out: &Output,
) -> SdkConfig {
    let configured = sdk
        .region()
        .map_or_else(|| "(none)".to_string(), |r| r.to_string());
    out.info(format!(
        "bucket {} is in {region}, not {configured}: using {region}",
        cfg.bucket
    ));
    sdk.to_builder()
        .region(aws_config::Region::new(region.to_string()))
        .build()
}

/// List the prefix, and read the bucket's versioning when `versions` (releases are recorded):
/// with versioning enabled, the listing is of versions, so that the manifest gets each key's
/// VersionId without a request per key.
pub(crate) async fn list_remote(
    client: &Client,
    cfg: &SyncConfig,
    versions: bool,
    all_versions: bool,
    out: &Output,
) -> Result<Listed, SyncError> {
    list_remote_as(client, cfg, versions, versions, all_versions, out).await
}

/// The listing, the bucket's versioning, and (for a rollback) every version.
pub(crate) type Listed = (
    Vec<RemoteObject>,
    crate::release::Versioning,
    remote::AllVersions,
);

/// As [`list_remote`]; `list_versions`: with versioning enabled, list versions (a rollback),
/// or only read the versioning and list with ListObjectsV2 (a deploy: the VersionIds of its
/// unchanged keys come from the live release's manifest, see `known_versions`).
pub(crate) async fn list_remote_as(
    client: &Client,
    cfg: &SyncConfig,
    versions: bool,
    list_versions: bool,
    all_versions: bool,
    out: &Output,
) -> Result<Listed, SyncError> {
    use crate::release::Versioning;
    let state_prefix = cfg.releases.state_prefix.as_str();
    let read = async {
        if !versions {
            return Ok(Versioning::Off);
        }
        match crate::release::store::read_versioning(client, &cfg.bucket).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if let Some(region) = remote::bucket_region(&e) {
                    return Err(SyncError::WrongRegion(region));
                }
                let (code, detail) = crate::aws_error::code_and_detail(&e);
                if code == "NoSuchBucket" {
                    return Err(SyncError::from_sdk("list", &cfg.bucket, None, e));
                }
                out.info(format!(
                        "Cannot read the bucket's versioning ({detail}): this release is recorded without VersionIds and cannot be rolled back to; allow s3:GetBucketVersioning on arn:aws:s3:::{}",
                        cfg.bucket
                    ));
                Ok(Versioning::Unknown)
            }
        }
    };
    if !list_versions {
        // A deploy: the versioning is read while the listing runs (one round trip less on
        // the critical path). The listing's error, when both fail, is the one to report.
        let (versioning, objects) = tokio::join!(
            read,
            remote::list(client, &cfg.bucket, &cfg.prefix, state_prefix)
        );
        let objects = objects?;
        return Ok((objects, versioning?, Default::default()));
    }
    let versioning = read.await?;
    if versioning == Versioning::Enabled {
        match remote::list_versions(client, &cfg.bucket, &cfg.prefix, state_prefix, all_versions)
            .await
        {
            Ok((objects, all)) => return Ok((objects, versioning, all)),
            Err(SyncError::Aws(msg)) if msg.contains("AccessDenied") && !all_versions => {
                out.info(format!(
                    "Cannot list the bucket's versions ({msg}): this release is recorded without VersionIds and cannot be rolled back to; allow s3:ListBucketVersions on arn:aws:s3:::{}",
                    cfg.bucket
                ));
                let objects = remote::list(client, &cfg.bucket, &cfg.prefix, state_prefix).await?;
                return Ok((objects, Versioning::Unknown, Default::default()));
            }
            Err(e) => return Err(e),
        }
    }
    let objects = remote::list(client, &cfg.bucket, &cfg.prefix, state_prefix).await?;
    Ok((objects, versioning, Default::default()))
}

/// Attempts per S3 request (the SDK's standard mode: exponential backoff with jitter, for
/// throttling, 5xx and connection errors). The SDK default is 3; at 8, a request fails only
/// when eight attempts in a row do (1 in 390,000 at a 20% fault rate).
const MAX_ATTEMPTS: u32 = 8;
/// S3 keys are at most 1,024 bytes of UTF-8.
const MAX_KEY_BYTES: usize = 1024;

/// Hash files on all cores, off the async threads. `jobs`: (index, part sizes). Once `stop`
/// is set, the remaining jobs are skipped (they get no digest).
fn hash_files(
    files: &[LocalFile],
    jobs: Vec<(usize, Vec<u64>)>,
    stop: &AtomicBool,
) -> Vec<(usize, LocalDigest)> {
    // An unreadable file gets no digest: it then counts as changed, and its upload reports
    // the read error.
    parallel(jobs, |(i, parts)| {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        etag::digest_file(&files[*i].path, parts)
            .ok()
            .map(|(d, _)| (*i, d))
    })
}

/// Run `f` over `jobs` on one thread per core (CPU-bound work: hashing, compressing), off the
/// async threads. Results come back in no particular order.
fn parallel<T: Sync, R: Send>(jobs: Vec<T>, f: impl Fn(&T) -> Option<R> + Sync) -> Vec<R> {
    if jobs.is_empty() {
        return Vec::new();
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(jobs.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(job) = jobs.get(k) else { break };
                    mine.extend(f(job));
                }
                results
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(mine);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Run the sync.
pub async fn run(
    sdk: &SdkConfig,
    cfg: &SyncConfig,
    dry_run: bool,
    out: &Output,
    cancel: &Cancel,
) -> Result<SyncOutcome, SyncError> {
    let start = Instant::now();
    let client = request_extras::wrap(s3_client(sdk, cfg.force_path_style), &cfg.request_extras);
    let target_url = format!("s3://{}/{}", cfg.bucket, cfg.prefix);
    out.info(format!(
        "Syncing {} to {target_url}{}",
        cfg.local_display,
        if dry_run { " (dry run)" } else { "" }
    ));

    let root = cfg.local_path.clone();
    let (symlinks, filters) = (cfg.symlinks, cfg.filters.clone());
    let scan = tokio::task::spawn_blocking(move || local::scan(&root, symlinks, &filters))
        .await
        .map_err(|e| SyncError::Aws(format!("internal error while scanning: {e}")))?;
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
    let (files, reserved): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| {
        !crate::release::is_reserved(
            &format!("{}{}", cfg.prefix, f.rel),
            &cfg.releases.state_prefix,
        )
    });
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

    // While the listing runs: compress the files whose rule asks for it (their size and MD5
    // are those of the compressed bytes) and hash the small files (checksum mode): most sites
    // are small files, and by the time the listing is back their MD5s are ready.
    let compressions: Vec<Option<Compression>> = groups.iter().map(|g| g.compress).collect();
    let checksum = cfg.compare == CompareMode::Checksum;
    // Hashing stops when the listing is back: the late pass below then hashes only the files
    // that have a same-size object. An initial upload (empty bucket) thus hashes nothing: the
    // 5,000-file upload spent 16% of its CPU on hashes it never used before (BENCHMARKS.md, P1).
    let stop_hashing = Arc::new(AtomicBool::new(false));
    let stop = stop_hashing.clone();
    let prep = tokio::task::spawn_blocking(move || prepare(files, &compressions, checksum, &stop));
    let releases = &cfg.releases;
    let versions = releases.history > 0 && !dry_run;
    // The release state is read once, before anything is written, while the listing runs.
    let state_store = |sdk: &SdkConfig| crate::release::store::Store {
        client: state_client(sdk, cfg),
        bucket: cfg.bucket.clone(),
        prefix: releases.state_prefix.clone(),
    };
    let load = |store: crate::release::store::Store| async move {
        let loaded = if releases.uses_state() {
            store.load(&cfg.prefix).await
        } else {
            Ok(crate::release::store::Loaded::default())
        };
        (store, loaded)
    };
    let (mut listed, (mut store, mut loaded)) = tokio::join!(
        list_remote_as(&client, cfg, versions, false, false, out),
        load(state_store(sdk))
    );
    let mut client = client;
    if let Err(SyncError::WrongRegion(region)) = &listed {
        // A bucket in another region: S3 named it. Users migrating from the Atlassian pipe may
        // have an AWS_DEFAULT_REGION that worked there. Only S3 moves; STS and CloudFront are
        // regional or global services that do not care where the bucket is.
        let sdk_here = client_in_region(sdk, cfg, region, out);
        client = request_extras::wrap(
            s3_client(&sdk_here, cfg.force_path_style),
            &cfg.request_extras,
        );
        (listed, (store, loaded)) = tokio::join!(
            list_remote_as(&client, cfg, versions, false, false, out),
            load(state_store(&sdk_here))
        );
    }
    stop_hashing.store(true, Ordering::Relaxed);
    let (remote, versioning, _) = listed?;
    let loaded = loaded.map_err(|e| SyncError::Aws(e.to_string()))?;
    let now = crate::release::now_secs();
    let (files, mut digests) = prep
        .await
        .map_err(|e| SyncError::Aws(format!("internal error while hashing: {e}")))?;
    let files = std::sync::Arc::new(files);
    // Large files are hashed only when a same-size object exists, with the part sizes its
    // multipart ETag asks for.
    let late_jobs = needed_late_digests(cfg.compare, &files, &remote, &digests);
    if !late_jobs.is_empty() {
        let files2 = files.clone();
        let late = tokio::task::spawn_blocking(move || {
            hash_files(&files2, late_jobs, &AtomicBool::new(false))
        })
        .await
        .map_err(|e| SyncError::Aws(format!("internal error while hashing: {e}")))?;
        for (i, d) in late {
            digests[i] = Some(d);
        }
    }

    if cancel.is_cancelled() {
        return Err(SyncError::Interrupted);
    }
    let mut the_plan = plan::plan(&PlanInput {
        local: &files,
        remote: &remote,
        digests: &digests,
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

    // Are the unchanged objects' headers what the settings give them? One HEAD per header
    // group, of its least recently written object (see `plan::sample_order`): its fingerprint
    // matches when the group is up to date. Otherwise, one HEAD per header class (same group,
    // same Content-Type and Content-Encoding): a class whose sample has the current
    // fingerprint is done; one whose sample has no fingerprint (written by another tool, e.g.
    // `aws s3 sync` before a migration) but already has exactly the wanted headers is adopted
    // as it is; the others get their headers re-applied, samples last (see `execute`).
    let order = plan::sample_order(&the_plan.unchanged, &files, &remote);
    let mut group_samples: Vec<Option<usize>> = vec![None; groups.len()];
    for &i in &order {
        group_samples[files[i].group].get_or_insert(i);
    }
    // What HeadObject cannot show (grants) could differ: such objects are never adopted.
    let adoptable = cfg.request_extras.grants.is_empty();
    let mut heads: std::collections::HashMap<usize, headers::ActualHeaders> =
        std::collections::HashMap::new();
    let mut check_group = vec![false; groups.len()];
    for (g, sample) in group_samples.iter().enumerate() {
        let Some(i) = *sample else { continue };
        let actual = head_headers(&client, cfg, &files[i].rel).await?;
        check_group[g] = actual.fingerprint() != Some(groups[g].fingerprint.as_str());
        heads.insert(i, actual);
    }
    // Only when a group is not up to date: its kinds of file (the group's sample heads the
    // first of them, so its HEAD is reused).
    let classes = if check_group.iter().any(|c| *c) {
        plan::header_classes(&order, &files, |i| {
            let f = &files[i];
            let h = headers::for_file(&f.rel, &groups[f.group], f.encoding);
            (h.content_type, h.content_encoding)
        })
    } else {
        Vec::new()
    };
    let mut stale_classes = Vec::new();
    let mut adopted = 0;
    for class in classes.iter().filter(|c| check_group[c.group]) {
        let i = class.members[0];
        let actual = match heads.remove(&i) {
            Some(a) => a,
            None => head_headers(&client, cfg, &files[i].rel).await?,
        };
        let group = &groups[class.group];
        if actual.fingerprint() == Some(group.fingerprint.as_str()) {
            continue;
        }
        let want = headers::for_file(&files[i].rel, group, files[i].encoding);
        if adoptable && actual.fingerprint().is_none() && actual.matches(&want) {
            adopted += class.members.len();
        } else {
            stale_classes.push(class);
        }
    }
    if adopted > 0 {
        out.info(format!(
            "{adopted} unchanged object(s) written by another tool (no header fingerprint) already have the wanted headers: kept as they are"
        ));
    }
    if !stale_classes.is_empty() {
        let before = the_plan.unchanged.len();
        let sentinels: Vec<usize> = group_samples.iter().flatten().copied().collect();
        the_plan.mark_classes_stale(&files, &stale_classes, &sentinels);
        out.info(format!(
            "Header settings changed since the last deploy: re-applying headers to {} unchanged object(s) without re-uploading",
            before - the_plan.unchanged.len()
        ));
    }
    if the_plan.not_md5 > 0 {
        out.info(format!(
            "{} object(s) have ETags that are not MD5s (SSE-KMS, SSE-C or the store's own form): they count as changed",
            the_plan.not_md5
        ));
    }
    out.info(format!(
        "Plan: {} to upload, {} to re-header, {} unchanged, {} to delete ({} local files, {} remote objects){}",
        the_plan.uploads.len(),
        the_plan.reheaders.len() + the_plan.reheader_samples.len() + the_plan.reheader_sentinels.len(),
        the_plan.unchanged.len(),
        the_plan.deletes.len(),
        files.len(),
        remote.len(),
        grace_summary.as_ref().map(|g| format!("; {}", g.line())).unwrap_or_default()
    ));

    let copy_settings: std::collections::BTreeMap<String, crate::release::CopySettings> = groups
        .iter()
        .map(|g| {
            let s = &g.settings;
            let c = crate::release::CopySettings {
                acl: s.acl.clone(),
                storage_class: s.storage_class.clone(),
                sse: s.sse.clone(),
                sse_kms_key_id: s.sse_kms_key_id.clone(),
            };
            (g.fingerprint.clone(), c)
        })
        .filter(|(_, c)| *c != crate::release::CopySettings::default())
        .collect();
    let fingerprints: Vec<String> = groups.iter().map(|g| g.fingerprint.clone()).collect();
    let target = Target {
        client,
        bucket: cfg.bucket.clone(),
        prefix: cfg.prefix.clone(),
        local_display: execute::display_local_path(
            &cfg.local_display,
            std::env::current_dir().ok().as_deref(),
        ),
        groups,
        dry_run,
        verbosity: cfg.verbosity,
        progress: cfg.progress,
        max_concurrency: cfg.max_concurrency,
    };
    let savings: Vec<(String, u64)> = files
        .iter()
        .filter(|f| f.encoding.is_some())
        .map(|f| (f.rel.clone(), f.source_size.saturating_sub(f.size)))
        .collect();
    let files_vec = std::sync::Arc::try_unwrap(files).unwrap_or_else(|a| (*a).clone());
    let done = execute::execute(target, files_vec.clone(), &the_plan, out, cancel).await;
    let succeeded = done.failures.is_empty() && !cancel.is_cancelled();
    let versioned = versioning == crate::release::Versioning::Enabled;
    // A deploy that changed nothing is the live release again: no new release (so that
    // ROLLBACK=previous after a re-run still means the deploy before), and no write at all.
    let unchanged_release = loaded.state.releases.last().filter(|live| {
        done.uploaded.is_empty()
            && done.reheadered.is_empty()
            && done.deleted.is_empty()
            && graced.stale == loaded.state.stale
            && live.versioned == versioned
    });
    if let Some(live) = unchanged_release.filter(|_| succeeded && !dry_run) {
        out.info(format!(
            "Nothing changed since release {}: no new release recorded",
            live.id
        ));
    }
    let recording = succeeded && !dry_run && releases.uses_state() && unchanged_release.is_none();
    let known = if recording && versioned {
        let unchanged: Vec<&str> = files_vec
            .iter()
            .filter(|f| !done.written.contains_key(&f.rel))
            .map(|f| f.rel.as_str())
            .collect();
        known_versions(&store, &loaded.state, &remote, &unchanged, cfg, out).await
    } else {
        std::collections::HashMap::new()
    };
    let release = recording.then(|| {
        let objects = files_vec
            .iter()
            .filter_map(|f| {
                let (etag, version_id) = match done.written.get(&f.rel) {
                    Some(w) => (w.etag.clone(), w.version_id.clone()),
                    None => {
                        let j = remote
                            .binary_search_by(|r| r.rel.as_str().cmp(f.rel.as_str()))
                            .ok()?;
                        (remote[j].etag.clone(), known.get(f.rel.as_str()).cloned())
                    }
                };
                Some(crate::release::Entry {
                    key: f.rel.clone(),
                    etag,
                    size: f.size,
                    fingerprint: fingerprints.get(f.group).cloned().unwrap_or_default(),
                    version_id: version_id.filter(|_| versioned),
                })
            })
            .collect();
        crate::release::record::Draft {
            store,
            prefix: cfg.prefix.clone(),
            loaded,
            history: releases.history,
            id: releases.release_id.clone(),
            commit: releases.commit.clone(),
            kind: "deploy",
            rollback_of: None,
            manifest: crate::release::Manifest {
                schema: crate::release::MANIFEST_SCHEMA,
                prefix: cfg.prefix.clone(),
                copy: copy_settings,
                objects,
            },
            stale: graced.stale.clone(),
            deleted: done.deleted.iter().cloned().collect(),
            uploaded: done.uploaded.len(),
            reheadered: done.reheadered.len(),
            unchanged: the_plan.unchanged.len(),
        }
    });

    let uploaded: std::collections::HashSet<&str> =
        done.uploaded.iter().map(String::as_str).collect();
    let compression_saved: u64 = savings
        .iter()
        .filter(|(rel, _)| uploaded.contains(rel.as_str()))
        .map(|(_, saved)| saved)
        .sum();
    let full = |rel: &String| format!("{}{rel}", cfg.prefix);
    let outcome = SyncOutcome {
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
        warnings: scan.warnings.len(),
        failures: done.failures,
        html_held_back: done.html_held_back,
        deletes_held_back: done.deletes_held_back,
        reheaders_held_back: done.reheaders_held_back,
        compression_saved,
        skipped: scan.skipped_files,
        grace: grace_summary,
        release,
    };
    Ok(outcome)
}

/// The current VersionId of each unchanged key (relative), for the release manifest, without a
/// request per key: from the live release's manifest where the object is still the one it
/// recorded (same ETag, not modified after the release was recorded); when some key is not
/// covered (the first release with versioning, objects another tool wrote), from one listing
/// of versions. Keys it cannot find get none (the release then cannot be rolled back to).
async fn known_versions(
    store: &crate::release::store::Store,
    state: &crate::release::State,
    remote: &[RemoteObject],
    unchanged: &[&str],
    cfg: &SyncConfig,
    out: &Output,
) -> std::collections::HashMap<String, String> {
    let mut known = std::collections::HashMap::new();
    let find = |key: &str| {
        remote
            .binary_search_by(|r| r.rel.as_str().cmp(key))
            .ok()
            .map(|j| &remote[j])
    };
    if let Some(live) = state.releases.last().filter(|r| r.versioned) {
        match store.get_manifest(&live.manifest).await {
            Ok(m) => {
                for e in m.objects {
                    let (Some(v), Some(r)) = (e.version_id, find(&e.key)) else {
                        continue;
                    };
                    if r.etag == e.etag && r.last_modified <= live.time {
                        known.insert(e.key, v);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "reading the live release's manifest"),
        }
    }
    let missing = unchanged
        .iter()
        .any(|k| !known.contains_key(*k) && find(k).is_some());
    if missing {
        match remote::list_versions(
            &store.client,
            &cfg.bucket,
            &cfg.prefix,
            &cfg.releases.state_prefix,
            false,
        )
        .await
        {
            Ok((objects, _)) => {
                for o in objects {
                    if let Some(v) = o.version_id {
                        known.insert(o.rel, v);
                    }
                }
            }
            Err(e) => out.info(format!(
                "Cannot list the bucket's versions ({e}): this release is recorded without VersionIds and cannot be rolled back to; allow s3:ListBucketVersions on arn:aws:s3:::{}",
                cfg.bucket
            )),
        }
    }
    known
}

/// The headers of one object (HeadObject).
async fn head_headers(
    client: &Client,
    cfg: &SyncConfig,
    rel: &str,
) -> Result<headers::ActualHeaders, SyncError> {
    let key = format!("{}{rel}", cfg.prefix);
    let head = client
        .head_object()
        .bucket(&cfg.bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| SyncError::from_sdk("head", &cfg.bucket, Some(&key), e))?;
    Ok(headers::ActualHeaders::from_head(&head))
}

/// Compress what the rules ask to compress, then hash the small files (checksum mode) until
/// `stop` is set.
/// Returns the files (size and encoding updated for compressed ones) and their digests.
fn prepare(
    mut files: Vec<LocalFile>,
    compressions: &[Option<Compression>],
    checksum: bool,
    stop: &AtomicBool,
) -> (Vec<LocalFile>, Vec<Option<LocalDigest>>) {
    let mut digests: Vec<Option<LocalDigest>> = vec![None; files.len()];
    let jobs: Vec<(usize, Compression)> = files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| compressions.get(f.group).copied().flatten().map(|c| (i, c)))
        .collect();
    let compressed = parallel(jobs, |&(i, c)| {
        // Unreadable files stay as they are: their upload reports the error.
        let bytes = compress::compress_file(&files[i].path, c).ok().flatten()?;
        Some((
            i,
            c,
            bytes.len() as u64,
            hex::encode(md5::Md5::digest(&bytes)),
        ))
    });
    for (i, c, len, md5) in compressed {
        files[i].encoding = Some(c);
        files[i].size = len;
        digests[i] = Some(LocalDigest {
            md5,
            multipart: Vec::new(),
        });
    }
    if checksum {
        let jobs = files
            .iter()
            .enumerate()
            .filter(|(i, f)| digests[*i].is_none() && f.size < MULTIPART_THRESHOLD)
            .map(|(i, _)| (i, Vec::new()))
            .collect();
        for (i, d) in hash_files(&files, jobs, stop) {
            digests[i] = Some(d);
        }
    }
    (files, digests)
}

fn needed_late_digests(
    mode: CompareMode,
    files: &[LocalFile],
    remote: &[RemoteObject],
    digests: &[Option<LocalDigest>],
) -> Vec<(usize, Vec<u64>)> {
    let mut jobs = Vec::new();
    let mut j = 0;
    for (i, f) in files.iter().enumerate() {
        while j < remote.len() && remote[j].rel.as_str() < f.rel.as_str() {
            j += 1;
        }
        if f.encoding.is_some() {
            continue; // digest of the compressed bytes already computed
        }
        let Some(r) = remote.get(j).filter(|r| r.rel == f.rel) else {
            continue;
        };
        let Some(parts) = compare::digest_needed(mode, f, r) else {
            continue;
        };
        if digests[i].is_none() || !parts.is_empty() {
            jobs.push((i, parts));
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_stops_when_asked_and_the_late_pass_covers_the_rest() {
        let dir = tempfile::tempdir().expect("tmp");
        let files: Vec<LocalFile> = (0..4)
            .map(|i| {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, format!("body {i}")).expect("write");
                LocalFile {
                    rel: format!("f{i}"),
                    path,
                    size: 6,
                    mtime: std::time::SystemTime::UNIX_EPOCH,
                    group: 0,
                    encoding: None,
                    source_size: 6,
                }
            })
            .collect();
        let all = || (0..files.len()).map(|i| (i, Vec::new())).collect();
        assert!(hash_files(&files, all(), &AtomicBool::new(true)).is_empty());

        // The prehash was stopped before any file: the late pass hashes exactly the files that
        // have a same-size object (f1, f3), and no others (f0 missing, f2 of another size).
        let (_, digests) = prepare(files.clone(), &[None], true, &AtomicBool::new(true));
        assert!(digests.iter().all(Option::is_none));
        let remote: Vec<RemoteObject> = [("f1", 6), ("f2", 7), ("f3", 6)]
            .into_iter()
            .map(|(rel, size)| RemoteObject {
                rel: rel.into(),
                size,
                etag: "00000000000000000000000000000000".into(),
                last_modified: 0,
                version_id: None,
            })
            .collect();
        let late = needed_late_digests(CompareMode::Checksum, &files, &remote, &digests);
        let mut got: Vec<usize> = hash_files(&files, late, &AtomicBool::new(false))
            .into_iter()
            .map(|(i, d)| {
                assert_eq!(d.md5, hex::encode(md5::Md5::digest(format!("body {i}"))));
                i
            })
            .collect();
        got.sort_unstable();
        assert_eq!(got, vec![1, 3]);
    }
}
