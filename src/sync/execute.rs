//! Carry out a plan: non-HTML uploads and header re-applies, then the sampled objects' header
//! re-applies, then HTML uploads, then deletes.
//!
//! Every S3 request takes a permit from one gate (`s3::pace::Gate`): `MAX_CONCURRENCY`
//! permits when it is set, else as many as the network and the store allow, up to its ceiling.
//! Single PUTs and multipart parts share that bound. Bodies stream from disk (a part is read only when
//! its request is sent), so memory stays bounded whatever the file sizes. A multipart upload
//! that fails is aborted. HTML waits until every other upload succeeded; deletes wait until
//! every upload succeeded.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::MetadataDirective;
use aws_smithy_types::byte_stream::Length;
use tokio::sync::Semaphore;

use crate::config::Concurrency;

use crate::cancel::Cancel;
use crate::compress;
use crate::config::Verbosity;
use crate::output::Output;
use crate::s3::error::explain;
use crate::s3::pace::{Gate, paced};
use crate::s3::writer::DELETE_BATCH;
use crate::s3::{Area, CopyFrom, Op, Writer};
use crate::sync::etag::DEFAULT_PART_SIZE;
use crate::sync::headers::{self, apply_headers};
use crate::sync::local::LocalFile;
use crate::sync::open::{Opened, open_regular};
use crate::sync::plan::Plan;
use crate::sync::verify::{self, ChecksumAlgo, Md5Sum, SendError, Stored, Verifier, with_checksum};

mod multipart;
mod names;
use multipart::upload_multipart;
pub(crate) use names::display_local_path;
use names::local_name;

/// Files of at least this size use a multipart upload: aws-cli's `multipart_threshold` (8 MiB),
/// so that our ETags (`-N`) equal the ones aws-cli produces for the same file.
pub(crate) const MULTIPART_THRESHOLD: u64 = DEFAULT_PART_SIZE;
/// How often a long sync prints a progress line.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Memory for precompressed uploads in flight, in MiB: a file is compressed in memory and sent
/// from there, so each holds its source and its compressed bytes (at most 2 × 16 MiB) from
/// compression to the end of its PUT. Bounded apart from `MAX_CONCURRENCY`: at 64 requests in
/// flight, unbounded, that was 5 GB for 200 files of 15 MiB (BENCHMARKS.md), while a default
/// Bitbucket step has 4 GB in all. 128 MiB lets 4 of the largest files, or dozens of typical
/// bundles, be in flight at once; the encoders' own state (a few MiB each, one per core) and
/// the rest of the pipe come on top, so the measured peak stays well under 300 MB.
const COMPRESS_MEMORY_MIB: u32 = 128;

/// The share of [`COMPRESS_MEMORY_MIB`] a precompressed upload of a file of `source_size`
/// bytes holds: its source and at most as many compressed bytes, rounded up to whole MiB.
fn compress_memory_mib(source_size: u64) -> u32 {
    let mib = (source_size.saturating_mul(2)).div_ceil(1024 * 1024);
    u32::try_from(mib)
        .unwrap_or(u32::MAX)
        .clamp(1, COMPRESS_MEMORY_MIB)
}

/// Compressions that run at once: one per core. Compression is CPU work; more at once would
/// only hold more memory.
fn compress_slots() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Where and how to write.
pub(crate) struct Target {
    /// The site's writer: every write of the sync goes through it.
    pub(crate) writer: Writer,
    pub(crate) bucket: String,
    pub(crate) prefix: String,
    /// LOCAL_PATH as the user wrote it, for output lines.
    pub(crate) local_display: String,
    /// Header settings per group (`headers::groups`), indexed by `LocalFile::group`.
    pub(crate) groups: Vec<headers::Group>,
    pub(crate) dry_run: bool,
    pub(crate) verbosity: Verbosity,
    pub(crate) progress: bool,
    /// `MAX_CONCURRENCY`: fixed, or the ceiling of the adaptive number of requests in flight.
    pub(crate) max_concurrency: Concurrency,
    /// `--checksum-algorithm`: its checksum of each body (and part) is sent with it.
    pub(crate) checksum: Option<ChecksumAlgo>,
}

impl Target {
    /// A failed PutObject of `f`, explained (naming s3:PutObjectAcl when an ACL is set).
    fn put_error<E>(&self, f: &LocalFile, e: &aws_sdk_s3::error::SdkError<E>) -> String
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        let acl = self.group(f).settings.acl.is_some();
        explain(Op::Put, &self.bucket, Some(&self.key(&f.rel)), acl, e)
    }

    fn group(&self, f: &LocalFile) -> &headers::Group {
        self.groups.get(f.group).unwrap_or(&self.groups[0])
    }
    fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }
    fn s3_url(&self, rel: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(rel))
    }
    /// A file as aws-cli prints it: the relative path of its folder, then its name
    /// (`relative_path` in aws-cli's `customizations/s3/utils.py`). So a file at the top of
    /// LOCAL_PATH=`.` prints as `./a.css`, one below it as `sub/b.css`.
    fn local_name(&self, rel: &str) -> String {
        local_name(&self.local_display, rel)
    }
}

/// What was done.
#[derive(Debug, Default)]
pub(crate) struct Executed {
    /// Keys (relative) uploaded, in completion order.
    pub(crate) uploaded: Vec<String>,
    pub(crate) reheadered: Vec<String>,
    pub(crate) deleted: Vec<String>,
    pub(crate) bytes: u64,
    /// (relative key, message) of every failed operation; no key for a failure that is not
    /// about one object (an internal error of an upload worker).
    pub(crate) failures: Vec<(Option<String>, String)>,
    /// HTML uploads not started because an earlier upload failed.
    pub(crate) html_held_back: usize,
    /// Deletes not issued because an upload failed.
    pub(crate) deletes_held_back: usize,
    /// Header samples not re-applied because an earlier operation failed.
    pub(crate) reheaders_held_back: usize,
    /// What the store answered for each object written (uploaded or re-headered), by
    /// relative key: for the release manifest.
    pub(crate) written: std::collections::HashMap<String, Written>,
}

/// An object this run wrote, as the store answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Written {
    /// Without quotes.
    pub(crate) etag: String,
    pub(crate) version_id: Option<String>,
    /// The content's ETag, when the store's is not it (SSE-KMS, SSE-C): for the manifest.
    pub(crate) content_etag: Option<String>,
}

impl Written {
    fn from_stored(s: &Stored) -> Written {
        Written {
            etag: s
                .etag
                .as_deref()
                .unwrap_or_default()
                .trim_matches('"')
                .to_string(),
            version_id: s.version_id.clone(),
            content_etag: s.content_etag.clone(),
        }
    }
}

#[derive(Clone, Copy)]
enum Job {
    Upload(usize),
    Reheader(usize),
}

struct Shared {
    target: Target,
    cancel: Cancel,
    files: Vec<LocalFile>,
    /// Every S3 request of the run holds one of its permits while it is in flight.
    permits: Arc<Gate>,
    out: Output,
    done_files: AtomicU64,
    done_bytes: AtomicU64,
    result: Mutex<Executed>,
    /// Upload verification: Content-MD5 and the answered ETags (`verify`).
    verifier: Verifier,
    /// One per core: compressions running (see [`compress_slots`]).
    compress_slots: Semaphore,
    /// MiB held by precompressed uploads in flight (see [`COMPRESS_MEMORY_MIB`]).
    compress_memory: Semaphore,
}

/// Carry out the plan.
pub(crate) async fn execute(
    mut target: Target,
    files: Vec<LocalFile>,
    plan: &Plan,
    out: &Output,
    cancel: &Cancel,
) -> Executed {
    let (first, html): (Vec<_>, Vec<_>) = plan.uploads.iter().partition(|u| !u.html);
    let mut phase1: Vec<Job> = first.iter().map(|u| Job::Upload(u.index)).collect();
    phase1.extend(plan.reheaders.iter().map(|&i| Job::Reheader(i)));
    let phase2: Vec<Job> = html.iter().map(|u| Job::Upload(u.index)).collect();
    // The sampled objects of stale header classes, then of stale groups: each tier only once
    // everything before it succeeded, so a sample with fresh headers means its class (group)
    // was done.
    let tiers: Vec<Vec<Job>> = [&plan.reheader_samples, &plan.reheader_sentinels]
        .into_iter()
        .map(|t| t.iter().map(|&i| Job::Reheader(i)).collect())
        .collect();
    let total_files =
        (phase1.len() + phase2.len() + tiers.iter().map(Vec::len).sum::<usize>()) as u64;
    let total_bytes: u64 = plan.uploads.iter().map(|u| files[u.index].size).sum();
    let concurrency = target.max_concurrency.most();
    let permits = Arc::new(Gate::new(target.max_concurrency));
    if let Concurrency::Adaptive { .. } = target.max_concurrency {
        // The gate learns of throttled attempts from the client's own retries.
        target.writer = target
            .writer
            .with_client(paced(target.writer.client(), permits.clone()));
    }
    let shared = Arc::new(Shared {
        permits,
        target,
        cancel: cancel.clone(),
        files,
        out: out.clone(),
        done_files: AtomicU64::new(0),
        done_bytes: AtomicU64::new(0),
        result: Mutex::new(Executed::default()),
        verifier: Verifier::default(),
        compress_slots: Semaphore::new(compress_slots()),
        compress_memory: Semaphore::new(COMPRESS_MEMORY_MIB as usize),
    });

    let ticker = (shared.target.progress
        && shared.target.verbosity == Verbosity::Normal
        && !shared.target.dry_run)
        .then(|| tokio::spawn(progress(shared.clone(), total_files, total_bytes)));

    run_jobs(&shared, phase1, concurrency).await;
    for tier in tiers {
        if !lock(&shared.result).failures.is_empty() || cancel.is_cancelled() {
            lock(&shared.result).reheaders_held_back += tier.len();
        } else {
            run_jobs(&shared, tier, concurrency).await;
        }
    }
    let failed_first = !lock(&shared.result).failures.is_empty() || cancel.is_cancelled();
    if failed_first {
        lock(&shared.result).html_held_back = phase2.len();
    } else {
        run_jobs(&shared, phase2, concurrency).await;
    }
    if let Some(t) = ticker {
        t.abort();
    }

    let failed = !lock(&shared.result).failures.is_empty() || cancel.is_cancelled();
    if failed {
        lock(&shared.result).deletes_held_back = plan.deletes.len();
    } else if !plan.deletes.is_empty() {
        delete_all(&shared, &plan.deletes).await;
    }
    let mut result = std::mem::take(&mut *lock(&shared.result));
    result.bytes = shared.done_bytes.load(Ordering::Relaxed);
    result
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn progress(shared: Arc<Shared>, total_files: u64, total_bytes: u64) {
    let start = Instant::now();
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let files = shared.done_files.load(Ordering::Relaxed);
        let bytes = shared.done_bytes.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64().max(0.001);
        #[allow(clippy::cast_precision_loss)]
        let rate = bytes as f64 / secs;
        shared.out.info(format!(
            "progress: {files}/{total_files} files, {} of {} ({}/s)",
            human_bytes(bytes),
            human_bytes(total_bytes),
            human_bytes(rate as u64)
        ));
    }
}

/// `1.5 MiB`.
pub(crate) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Run jobs on `workers` tasks pulling from one queue.
async fn run_jobs(shared: &Arc<Shared>, jobs: Vec<Job>, workers: usize) {
    if jobs.is_empty() {
        return;
    }
    let queue = Arc::new(Mutex::new(VecDeque::from(jobs)));
    let mut set = tokio::task::JoinSet::new();
    let n = workers.min(lock(&queue).len()).max(1);
    for _ in 0..n {
        let queue = queue.clone();
        let shared = shared.clone();
        set.spawn(async move {
            loop {
                if shared.cancel.is_cancelled() {
                    break;
                }
                let Some(job) = lock(&queue).pop_front() else {
                    break;
                };
                match job {
                    Job::Upload(i) => upload_one(&shared, i).await,
                    Job::Reheader(i) => reheader_one(&shared, i).await,
                }
            }
        });
    }
    while let Some(res) = set.join_next().await {
        if let Err(e) = res {
            lock(&shared.result)
                .failures
                .push((None, format!("internal error: {e}")));
        }
    }
}

async fn upload_one(shared: &Arc<Shared>, i: usize) {
    let t = &shared.target;
    let f = &shared.files[i];
    let line = format!("upload: {} to {}", t.local_name(&f.rel), t.s3_url(&f.rel));
    if t.dry_run {
        shared.out.line(format!("(dryrun) {line}"));
        lock(&shared.result).uploaded.push(f.rel.clone());
        return;
    }
    let h = headers::for_file(&f.rel, t.group(f), f.encoding);
    let (res, size) = upload_stable(shared, f, &h).await;
    match res {
        Ok(stored) => {
            shared.done_files.fetch_add(1, Ordering::Relaxed);
            shared.done_bytes.fetch_add(size, Ordering::Relaxed);
            if t.verbosity == Verbosity::Normal {
                shared.out.line(&line);
            }
            let mut result = lock(&shared.result);
            result.uploaded.push(f.rel.clone());
            result
                .written
                .insert(f.rel.clone(), Written::from_stored(&stored));
        }
        Err(msg) => {
            if t.verbosity >= Verbosity::OnlyErrors {
                shared.out.error_line(format!(
                    "upload failed: {} to {} {msg}",
                    t.local_name(&f.rel),
                    t.s3_url(&f.rel)
                ));
            }
            lock(&shared.result)
                .failures
                .push((Some(f.rel.clone()), msg));
        }
    }
}

/// How often a file that changes while it is uploaded is uploaded again before giving up.
const CHANGED_FILE_ATTEMPTS: usize = 3;

/// Upload a file so that the object is one consistent version of it. The file is opened
/// once, as the scan saw it (`open::Opened`), and every read of this upload goes through that
/// open file; its size and mtime are checked before a multipart upload is completed and after
/// the upload: if it changed meanwhile (a build still writing it), the multipart upload is
/// aborted (the previous object stays) and the upload is done again, up to
/// [`CHANGED_FILE_ATTEMPTS`] times. Returns the bytes sent.
async fn upload_stable(
    shared: &Arc<Shared>,
    f: &LocalFile,
    h: &headers::ObjectHeaders,
) -> (Result<Stored, String>, u64) {
    let t = &shared.target;
    for attempt in 1..=CHANGED_FILE_ATTEMPTS {
        let opened = match Opened::open(&f.path, f.id) {
            Ok(o) => o,
            Err(e) => return (Err(format!("cannot read the file: {e}")), 0),
        };
        let current = LocalFile {
            size: opened.state().0,
            mtime: opened.state().1,
            path: opened.path.clone(),
            ..f.clone()
        };
        let mut sent = current.size;
        let res = if let Some(c) = f.encoding {
            // Precompressed: compress again (deterministic, so the bytes equal the ones that
            // were hashed) and send them from memory in one PUT. The memory is reserved first
            // and held until the PUT ends; the compression itself takes one of the per-core
            // slots.
            let Ok(_memory) = shared
                .compress_memory
                .acquire_many(compress_memory_mib(f.source_size))
                .await
            else {
                return (Err("interrupted".into()), 0);
            };
            let path = current.path.clone();
            let compressed = {
                let Ok(_slot) = shared.compress_slots.acquire().await else {
                    return (Err("interrupted".into()), 0);
                };
                tokio::task::spawn_blocking(move || {
                    compress::compress_file(open_regular(&path, None)?, c)
                })
                .await
            };
            match compressed {
                Ok(Ok(Some(bytes))) => {
                    sent = bytes.len() as u64;
                    tokio::select! {
                        r = upload_bytes(shared, &current, h, bytes) => r,
                        () = shared.cancel.cancelled() => Err("interrupted".into()),
                    }
                }
                Ok(Ok(None)) => {
                    Err("the file no longer compresses: it changed since it was scanned".into())
                }
                Ok(Err(e)) => Err(format!("cannot read the file: {e}")),
                Err(e) => Err(format!("internal error: {e}")),
            }
        } else if current.size >= MULTIPART_THRESHOLD {
            upload_multipart(shared, &current, h, &opened).await
        } else {
            tokio::select! {
                r = upload_single(shared, &current, h, &opened) => r,
                () = shared.cancel.cancelled() => Err("interrupted".into()),
            }
        };
        if shared.cancel.is_cancelled() {
            return (res.and(Err("interrupted".into())), 0);
        }
        if opened.unchanged() {
            return (res, sent);
        }
        shared.out.warn(format!(
            "{} changed while it was uploaded (attempt {attempt} of {CHANGED_FILE_ATTEMPTS}){}",
            t.local_name(&f.rel),
            if attempt < CHANGED_FILE_ATTEMPTS {
                "; uploading it again"
            } else {
                ""
            }
        ));
    }
    (
        Err(format!(
            "the file kept changing while it was uploaded ({CHANGED_FILE_ATTEMPTS} attempts): make sure the build has finished writing it"
        )),
        0,
    )
}

/// One PutObject of bytes in memory (precompressed files).
async fn upload_bytes(
    shared: &Shared,
    f: &LocalFile,
    h: &headers::ObjectHeaders,
    bytes: Vec<u8>,
) -> Result<Stored, String> {
    let t = &shared.target;
    let len = bytes.len() as u64;
    let md5 = Md5Sum::of_with(&bytes, t.checksum);
    let bytes = bytes::Bytes::from(bytes);
    let what = t.local_name(&f.rel);
    shared
        .verifier
        .send(&shared.out, &what, &md5.hex, &|| true, || async {
            let mut permit = shared
                .permits
                .acquire()
                .await
                .map_err(|e| SendError::Other(e.to_string()))?;
            permit.set_bytes(len);
            let req = t
                .writer
                .put(Area::Site, &t.key(&f.rel))
                .map_err(|e| SendError::Other(e.to_string()))?
                .body(ByteStream::from(bytes.clone()))
                .content_length(size_i64(len))
                .content_md5(&md5.base64)
                .set_checksum_algorithm(t.checksum.map(ChecksumAlgo::s3));
            let req = with_checksum!(req, t.checksum, md5);
            match apply_headers!(req, h).send().await {
                Ok(r) => Ok(stored_put(&r, t.checksum)),
                Err(e) => Err(put_send_error(t.put_error(f, &e), &e)),
            }
        })
        .await
}

/// What a PutObject answer says about the stored bytes.
fn stored_put(
    r: &aws_sdk_s3::operation::put_object::PutObjectOutput,
    checksum: Option<ChecksumAlgo>,
) -> Stored {
    Stored {
        etag: r.e_tag().map(str::to_string),
        etag_not_md5: etag_not_md5(r.server_side_encryption(), r.sse_customer_algorithm()),
        version_id: r.version_id().map(str::to_string),
        content_etag: None,
        checksum_unconfirmed: checksum.is_some_and(|a| !verify::checksum_echoed(a, r)),
    }
}

/// SSE-KMS, DSSE-KMS and SSE-C objects have ETags that are not the MD5 of their content.
fn etag_not_md5(
    sse: Option<&aws_sdk_s3::types::ServerSideEncryption>,
    sse_c: Option<&str>,
) -> bool {
    use aws_sdk_s3::types::ServerSideEncryption as Sse;
    sse_c.is_some() || matches!(sse, Some(Sse::AwsKms | Sse::AwsKmsDsse))
}

/// A failed write: `BadDigest` is sent again by the verifier, anything else is final here
/// (the SDK has already retried what is transient).
fn put_send_error<E>(explained: String, e: &aws_sdk_s3::error::SdkError<E>) -> SendError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    let code = e.as_service_error().and_then(|s| s.code());
    if verify::is_bad_digest(code) {
        SendError::BadDigest(explained)
    } else {
        SendError::Other(explained)
    }
}

async fn upload_single(
    shared: &Shared,
    f: &LocalFile,
    h: &headers::ObjectHeaders,
    opened: &Opened,
) -> Result<Stored, String> {
    let t = &shared.target;
    // The MD5 of the bytes as they are now: the body below streams the same range of the same
    // open file (a change meanwhile is caught by the store's Content-MD5 check, by the ETag,
    // and by `upload_stable`).
    let md5 = file_md5(&f.path, 0, f.size, t.checksum).await?;
    let what = t.local_name(&f.rel);
    shared
        .verifier
        .send(
            &shared.out,
            &what,
            &md5.hex,
            &|| opened.unchanged(),
            || async {
                let mut permit = shared
                    .permits
                    .acquire()
                    .await
                    .map_err(|e| SendError::Other(e.to_string()))?;
                permit.set_bytes(f.size);
                let body = ByteStream::read_from()
                    .path(&f.path)
                    .length(Length::Exact(f.size))
                    .build()
                    .await
                    .map_err(|e| SendError::Other(format!("cannot read the file: {e}")))?;
                let req = t
                    .writer
                    .put(Area::Site, &t.key(&f.rel))
                    .map_err(|e| SendError::Other(e.to_string()))?
                    .body(body)
                    .content_length(size_i64(f.size))
                    .content_md5(&md5.base64)
                    .set_checksum_algorithm(t.checksum.map(ChecksumAlgo::s3));
                let req = with_checksum!(req, t.checksum, md5);
                let mut req = apply_headers!(req, h).customize();
                if h.content_type.is_none() {
                    // The SDK sends `Content-Type: application/octet-stream` on a PutObject that
                    // sets none, and S3 stores it. aws-cli sends no Content-Type for a file it
                    // cannot type, and S3 then stores `binary/octet-stream`, as it does for our
                    // multipart uploads and CopyObject. Drop the SDK's default (before signing) so
                    // all three agree with aws-cli.
                    req = req.mutate_request(|r| {
                        r.headers_mut().remove("content-type");
                    });
                }
                match req.send().await {
                    Ok(r) => Ok(stored_put(&r, t.checksum)),
                    Err(e) => Err(put_send_error(t.put_error(f, &e), &e)),
                }
            },
        )
        .await
}

/// The MD5 (and `--checksum-algorithm` checksum) of `len` bytes of a file at `offset`, read
/// off the async threads.
async fn file_md5(
    path: &Path,
    offset: u64,
    len: u64,
    algo: Option<ChecksumAlgo>,
) -> Result<Md5Sum, String> {
    let path = path.to_path_buf();
    match tokio::task::spawn_blocking(move || Md5Sum::of_file_range_with(&path, offset, len, algo))
        .await
    {
        Ok(Ok(sum)) => Ok(sum),
        Ok(Err(e)) => Err(format!("cannot read the file: {e}")),
        Err(e) => Err(format!("internal error: {e}")),
    }
}

fn size_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn reheader_one(shared: &Arc<Shared>, i: usize) {
    let t = &shared.target;
    let f = &shared.files[i];
    let key = t.key(&f.rel);
    let line = format!("update headers: {}", t.s3_url(&f.rel));
    if t.dry_run {
        shared.out.line(format!("(dryrun) {line}"));
        lock(&shared.result).reheadered.push(f.rel.clone());
        return;
    }
    let h = headers::for_file(&f.rel, t.group(f), f.encoding);
    let req = match t.writer.copy(&key, CopyFrom::Current) {
        Ok(req) => req.metadata_directive(MetadataDirective::Replace),
        Err(e) => {
            lock(&shared.result)
                .failures
                .push((Some(f.rel.clone()), e.to_string()));
            return;
        }
    };
    let res = {
        let _permit = shared.permits.acquire().await;
        apply_headers!(req, &h).send().await
    };
    match res {
        Ok(r) => {
            shared.done_files.fetch_add(1, Ordering::Relaxed);
            if t.verbosity == Verbosity::Normal {
                shared.out.line(&line);
            }
            let written = Written {
                etag: r
                    .copy_object_result()
                    .and_then(|c| c.e_tag())
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string(),
                version_id: r.version_id().map(str::to_string),
                // A copy keeps the content: release_draft carries the recorded one over.
                content_etag: None,
            };
            let mut result = lock(&shared.result);
            result.reheadered.push(f.rel.clone());
            result.written.insert(f.rel.clone(), written);
        }
        Err(e) => {
            let msg = explain(
                Op::Copy,
                &t.bucket,
                Some(&key),
                t.group(f).settings.acl.is_some(),
                &e,
            );
            if t.verbosity >= Verbosity::OnlyErrors {
                shared
                    .out
                    .error_line(format!("update headers failed: {} {msg}", t.s3_url(&f.rel)));
            }
            lock(&shared.result)
                .failures
                .push((Some(f.rel.clone()), msg));
        }
    }
}

async fn delete_all(shared: &Arc<Shared>, rels: &[String]) {
    let t = &shared.target;
    for batch in rels.chunks(DELETE_BATCH) {
        if t.dry_run {
            for rel in batch {
                shared
                    .out
                    .line(format!("(dryrun) delete: {}", t.s3_url(rel)));
            }
            lock(&shared.result).deleted.extend(batch.iter().cloned());
            continue;
        }
        let (deleted, failures, stop) = {
            let _permit = shared.permits.acquire().await;
            crate::s3::delete::batch(
                &t.writer,
                &t.prefix,
                batch,
                t.verbosity == Verbosity::Normal,
                &shared.out,
            )
            .await
        };
        let mut result = lock(&shared.result);
        result.deleted.extend(deleted);
        result.failures.extend(failures);
        if stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_memory_is_bounded_apart_from_the_request_pool() {
        assert_eq!(compress_memory_mib(0), 1);
        assert_eq!(compress_memory_mib(30 * 1024), 1, "a typical bundle");
        assert_eq!(compress_memory_mib(3 * 1024 * 1024 / 2), 3);
        // The largest file that is compressed (16 MiB) holds 32 MiB: 4 of them at once.
        assert_eq!(compress_memory_mib(super::compress::MAX_SIZE), 32);
        assert_eq!(
            COMPRESS_MEMORY_MIB / compress_memory_mib(super::compress::MAX_SIZE),
            4
        );
        // Never more than the whole budget, so one file cannot wait for ever.
        assert_eq!(compress_memory_mib(u64::MAX), COMPRESS_MEMORY_MIB);
        assert!(compress_slots() >= 1);
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(20 * 1024 * 1024), "20.0 MiB");
    }
}
