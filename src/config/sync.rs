//! The S3 sync job: bucket and prefix, local path, comparison, filters and headers.

use std::path::PathBuf;

use super::argparse::ExtraArgs;
use super::releases::{Mode, ReleaseConfig, resolve_releases};
use super::rules::{HeaderRule, HeaderSettings, resolve_headers, resolve_rules};
use super::{Problems, RawVars, Secret, bool_var, int_var, non_empty};
use crate::filter::{FilterRule, Filters};

/// The most S3 requests in flight when `MAX_CONCURRENCY` is unset: the pipe finds its level
/// below this by itself (`s3::pace`).
///
/// Uploads of small files are latency-bound, not bandwidth-bound: throughput is requests in
/// flight divided by the round trip, until the client's CPU (TLS, signing, hashing) or the
/// server saturates. Measured with `bench/run` on the 2-core reference machine (BENCHMARKS.md;
/// fixed 16 / 32 / 64 / 128, medians of 5 interleaved runs):
///
/// - 5,000 files of 1–20 KiB behind a 30 ms latency proxy (T3): 10.8 / 5.4 / 2.9 / 1.9 s.
///   Each doubling nearly doubles the throughput.
/// - The same files on loopback (T1): 1.30 / 1.62 / 1.60 / 1.53 s; one 1 GiB file (T2):
///   6.8 / 6.9 / 6.9 / 6.4 s. With no latency, client and server fill both cores from 16 on.
///
/// A bucket in another region answers in about 100 ms, where 64 in flight cap a deploy at 640
/// requests/s. 256 (s5cmd's default number of workers) allows 2,560/s there, still under S3's
/// 3,500 PUTs/s per prefix, which 100 ms would reach only at 350 in flight; nearer buckets
/// reach that rate with fewer requests in flight, and the controller backs off on the 503
/// SlowDown answers (and the rising latency) that come before it, so the ceiling is what a
/// far bucket needs, not what every deploy uses.
pub(crate) const DEFAULT_CEILING: usize = 256;
/// Upper bound for `MAX_CONCURRENCY`: above this, the pipe would only queue in the HTTP pool.
const MAX_MAX_CONCURRENCY: usize = 1024;

/// How many S3 requests the sync (and a rollback's restore) has in flight at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Concurrency {
    /// `MAX_CONCURRENCY` is set: exactly this many, never adapted.
    Fixed(usize),
    /// `MAX_CONCURRENCY` is unset: as many as the network and the store allow (`s3::pace`),
    /// never more than `ceiling`.
    Adaptive { ceiling: usize },
}

/// Listing requests in flight when `MAX_CONCURRENCY` is unset: the ranges of a 100,000-file
/// tree are 101 requests, two rounds at 64 (the former fixed default); S3 serves 5,500 GETs a
/// second per prefix, far above 64 in flight at any distance.
const ADAPTIVE_LISTING: usize = 64;

impl Concurrency {
    /// The listing's ranges in flight at once: `MAX_CONCURRENCY` when set, else
    /// [`ADAPTIVE_LISTING`] within the ceiling (the listing is over before the uploads
    /// start, so the controller has nothing to learn from it yet).
    pub(crate) fn listing(self) -> usize {
        match self {
            Concurrency::Fixed(n) => n,
            Concurrency::Adaptive { ceiling } => ceiling.min(ADAPTIVE_LISTING),
        }
    }

    /// The most requests that may ever be in flight at once.
    pub(crate) fn most(self) -> usize {
        match self {
            Concurrency::Fixed(n) | Concurrency::Adaptive { ceiling: n } => n,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CompareMode {
    /// Size, then MD5 against the ETag (multipart ETags recomputed). The default.
    Checksum,
    /// aws-cli's default rule: size differs or the local file is newer.
    SizeAndMtime,
    /// aws-cli's `--size-only`.
    SizeOnly,
}

/// Symlink policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SymlinkPolicy {
    /// Follow links that stay inside LOCAL_PATH; skip escaping ones with a warning.
    FollowInside,
    /// `FOLLOW_SYMLINKS=true`: follow every link, even outside LOCAL_PATH.
    FollowAll,
    /// `--no-follow-symlinks`: skip every link.
    Never,
}

/// How much the sync prints, as aws-cli's `--only-show-errors` and `--quiet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verbosity {
    Quiet,
    OnlyErrors,
    Normal,
}

/// The S3 sync job.
#[derive(Debug, Clone)]
pub(crate) struct SyncConfig {
    pub(crate) bucket: String,
    /// Key prefix, empty or ending in `/`.
    pub(crate) prefix: String,
    pub(crate) local_path: PathBuf,
    /// LOCAL_PATH as the user wrote it, for aws-cli style output lines.
    pub(crate) local_display: String,
    pub(crate) delete: bool,
    pub(crate) compare: CompareMode,
    /// `MAX_CONCURRENCY`: a fixed number of requests in flight, or the ceiling of an adaptive one.
    pub(crate) max_concurrency: Concurrency,
    pub(crate) symlinks: SymlinkPolicy,
    /// The `--include`/`--exclude` rules as written (the config tests read them; the sync
    /// uses `filters`, compiled from them).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) filter_rules: Vec<FilterRule>,
    pub(crate) filters: Filters,
    pub(crate) headers: HeaderSettings,
    /// Per-pattern header rules, first match wins.
    pub(crate) rules: Vec<HeaderRule>,
    pub(crate) max_delete: Option<u64>,
    pub(crate) force_path_style: bool,
    pub(crate) verbosity: Verbosity,
    pub(crate) progress: bool,
    /// What EXTRA_ARGS adds to the S3 requests (see `s3::request_extras`).
    pub(crate) request_extras: S3RequestExtras,
    /// `ALLOW_SKIPPED_FILES=true`: files that could not be read (or are not files) are warned
    /// about and the step still succeeds. By default they fail it, after everything else is
    /// done (aws-cli exits 2 for them).
    pub(crate) allow_skipped_files: bool,
    /// Releases, the delete grace period and where their state lives.
    pub(crate) releases: ReleaseConfig,
}

/// Request settings from EXTRA_ARGS that are not object headers.
#[derive(Debug, Clone, Default)]
pub(crate) struct S3RequestExtras {
    /// `--endpoint-url`: the S3 endpoint (aws-cli applies it to the command's service only).
    pub(crate) endpoint_url: Option<String>,
    /// `--page-size`: keys per ListObjectsV2 page.
    pub(crate) page_size: Option<i32>,
    /// `--grants`: (header, grantees), e.g. (`x-amz-grant-read`, `id=abc`).
    pub(crate) grants: Vec<(&'static str, String)>,
    /// `--request-payer`.
    pub(crate) request_payer: bool,
    /// `--sse-c` with `--sse-c-key`.
    pub(crate) sse_c: Option<SseCustomerKey>,
    /// `--checksum-algorithm`, as S3 names it.
    pub(crate) checksum_algorithm: Option<String>,
}

impl S3RequestExtras {
    /// Nothing to add.
    pub(crate) fn is_empty(&self) -> bool {
        self.endpoint_url.is_none()
            && self.page_size.is_none()
            && self.grants.is_empty()
            && !self.request_payer
            && self.sse_c.is_none()
            && self.checksum_algorithm.is_none()
    }
}

/// A customer-provided SSE key, as the S3 headers carry it.
#[derive(Debug, Clone)]
pub(crate) struct SseCustomerKey {
    pub(crate) key_base64: Secret,
    pub(crate) key_md5_base64: String,
}

/// `--grants` permissions and their headers, as aws-cli maps them.
const GRANT_HEADERS: &[(&str, &str)] = &[
    ("read", "x-amz-grant-read"),
    ("readacl", "x-amz-grant-read-acp"),
    ("writeacl", "x-amz-grant-write-acp"),
    ("full", "x-amz-grant-full-control"),
];

/// The checksum algorithms the AWS SDK for Rust can compute (aws-smithy-checksums).
const SDK_CHECKSUMS: &[&str] = &["CRC64NVME", "CRC32", "CRC32C", "SHA1", "SHA256"];

fn resolve_request_extras(
    extra: &ExtraArgs,
    p: &mut Problems,
    secrets: &mut Vec<String>,
) -> S3RequestExtras {
    let page_size = extra.values.get("--page-size").and_then(|v| {
        match v.trim().parse::<i32>() {
            Ok(n) if (1..=1000).contains(&n) => Some(n),
            _ => {
                p.add(
                    "EXTRA_ARGS --page-size",
                    format!("{v:?} is not a whole number from 1 to 1000: S3 lists at most 1000 keys per page"),
                );
                None
            }
        }
    });
    let grants = resolve_grants(extra, p);
    let checksum_algorithm = extra.values.get("--checksum-algorithm").and_then(|a| {
        if SDK_CHECKSUMS.contains(&a.as_str()) {
            Some(a.clone())
        } else {
            p.add(
                "EXTRA_ARGS --checksum-algorithm",
                format!(
                    "{a} cannot be computed by the AWS SDK this pipe uses: use one of {}",
                    SDK_CHECKSUMS.join(", ")
                ),
            );
            None
        }
    });
    let sse_c = resolve_sse_c(extra, p, secrets);
    S3RequestExtras {
        endpoint_url: extra.values.get("--endpoint-url").cloned(),
        page_size,
        grants,
        request_payer: extra.values.contains_key("--request-payer"),
        sse_c,
        checksum_algorithm,
    }
}

/// `--grants`: one header per permission.
fn resolve_grants(extra: &ExtraArgs, p: &mut Problems) -> Vec<(&'static str, String)> {
    let mut grants: Vec<(&'static str, String)> = Vec::new();
    for g in extra.grants.iter().flatten() {
        let found = g.split_once('=').and_then(|(perm, grantee)| {
            GRANT_HEADERS
                .iter()
                .find(|(name, _)| *name == perm)
                .map(|(_, header)| (*header, grantee.to_string()))
        });
        match found {
            Some((header, grantee)) => {
                // aws-cli keeps one value per permission: the last.
                grants.retain(|(h, _)| *h != header);
                grants.push((header, grantee));
            }
            None => p.add(
                "EXTRA_ARGS --grants",
                format!("{g:?} is not Permission=Grantee_Type=Grantee_ID with a permission of read, readacl, writeacl or full"),
            ),
        }
    }
    grants
}

/// `--sse-c` with `--sse-c-key`: both or neither. The key goes onto `secrets`.
fn resolve_sse_c(
    extra: &ExtraArgs,
    p: &mut Problems,
    secrets: &mut Vec<String>,
) -> Option<SseCustomerKey> {
    match (extra.values.get("--sse-c"), extra.values.get("--sse-c-key")) {
        (None, None) => None,
        (Some(_), None) => {
            p.add(
                "EXTRA_ARGS --sse-c",
                "needs --sse-c-key with the key: add it (from a secured variable)",
            );
            None
        }
        (None, Some(_)) => {
            p.add(
                "EXTRA_ARGS --sse-c-key",
                "needs --sse-c: add --sse-c AES256",
            );
            None
        }
        (Some(_), Some(key)) => {
            // aws-cli: a blob parameter is the text itself, or a file's bytes with fileb://.
            let bytes = match key.strip_prefix("fileb://") {
                Some(path) => std::fs::read(path).map_err(|e| format!("cannot read {path} ({e})")),
                None => Ok(key.as_bytes().to_vec()),
            };
            match bytes {
                Ok(b) if b.len() == 32 => {
                    use base64::Engine;
                    use md5::Digest;
                    let b64 = base64::engine::general_purpose::STANDARD;
                    let key_base64 = b64.encode(&b);
                    secrets.push(key_base64.clone());
                    Some(SseCustomerKey {
                        key_base64: Secret::new(key_base64),
                        key_md5_base64: b64.encode(md5::Md5::digest(&b)),
                    })
                }
                Ok(b) => {
                    p.add(
                        "EXTRA_ARGS --sse-c-key",
                        format!("the key is {} bytes; AES256 needs exactly 32 (give the raw key, not base64)", b.len()),
                    );
                    None
                }
                Err(e) => {
                    p.add(
                        "EXTRA_ARGS --sse-c-key",
                        format!("{e}: mount the key file into the step"),
                    );
                    None
                }
            }
        }
    }
}

/// Check an S3 bucket name against AWS's general-purpose bucket naming rules.
pub(crate) fn bucket_name_problem(name: &str) -> Option<String> {
    let len = name.len();
    if !(3..=63).contains(&len) {
        return Some(format!(
            "bucket name {name:?} must be 3 to 63 characters long"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return Some(format!(
            "bucket name {name:?} contains {c:?}: use only lower-case letters, digits, dots and hyphens"
        ));
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[len - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Some(format!(
            "bucket name {name:?} must begin and end with a letter or a digit"
        ));
    }
    if name.contains("..") {
        return Some(format!(
            "bucket name {name:?} must not contain two adjacent dots"
        ));
    }
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() == 4 && parts.iter().all(|p| p.parse::<u8>().is_ok()) {
        return Some(format!(
            "bucket name {name:?} must not look like an IP address"
        ));
    }
    if name.starts_with("xn--") || name.starts_with("sthree-") {
        return Some(format!(
            "bucket name {name:?} must not start with \"xn--\" or \"sthree-\""
        ));
    }
    None
}

/// Split `bucket/some/prefix` into the bucket and a prefix that is empty or ends in `/`.
fn split_bucket(value: &str) -> (String, String) {
    let v = value.trim().trim_start_matches("s3://");
    match v.split_once('/') {
        Some((b, rest)) => {
            let rest = rest.trim_matches('/');
            let prefix = if rest.is_empty() {
                String::new()
            } else {
                format!("{rest}/")
            };
            (b.to_string(), prefix)
        }
        None => (v.to_string(), String::new()),
    }
}

/// Path-style addressing (`endpoint/bucket/key`) unless `S3_FORCE_PATH_STYLE` says otherwise:
/// as aws-cli (botocore) does, for any endpoint that is not AWS's own. S3-compatible stores
/// (MinIO, Ceph, Garage, a `localhost` emulator) are usually reached by a name that has no
/// per-bucket subdomains, so virtual-hosted requests (`bucket.minio:9000`) would fail in DNS.
/// An AWS endpoint (`*.amazonaws.com`, `*.amazonaws.com.cn`, `*.api.aws`) keeps
/// virtual-hosted addressing, which S3 requires for new features and some buckets.
pub(crate) fn path_style_by_default(endpoint: Option<&str>) -> bool {
    let Some(url) = endpoint else {
        return false;
    };
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    // Drop user info and port; an IPv6 literal is not an AWS host either way.
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    let aws = ["amazonaws.com", "amazonaws.com.cn", "api.aws"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")));
    !aws
}

/// Resolve the sync job; `None` when there is none (no bucket and no folder, or a rollback
/// or release list without a bucket). Problems are reported in the order of the steps.
pub(super) fn resolve_sync(
    raw: &RawVars,
    extra: &ExtraArgs,
    mode: &Mode,
    p: &mut Problems,
    secrets: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Option<SyncConfig> {
    let target = resolve_target(raw, mode, p, notes)?;
    let local_path = resolve_local_path(target.local, mode, p);
    let headers = resolve_headers(raw, extra, p);
    let request_extras = resolve_request_extras(extra, p, secrets);
    let compare = resolve_compare(raw, extra, &request_extras, p, notes);
    let max_concurrency = int_var(
        p,
        "MAX_CONCURRENCY",
        &raw.max_concurrency,
        (1usize, MAX_MAX_CONCURRENCY),
        "the number of S3 requests in flight at once (unset: the pipe finds it)",
    )
    .map_or(
        Concurrency::Adaptive {
            ceiling: DEFAULT_CEILING,
        },
        Concurrency::Fixed,
    );
    let symlinks = resolve_symlinks(raw, extra, p);
    let delete = bool_var(p, "DELETE_FLAG", &raw.delete_flag, false) || extra.delete;
    let allow_skipped_files = bool_var(p, "ALLOW_SKIPPED_FILES", &raw.allow_skipped_files, false);
    let max_delete = int_var(
        p,
        "MAX_DELETE",
        &raw.max_delete,
        (0u64, u64::MAX),
        "the most objects one run may delete",
    );
    let force_path_style = resolve_force_path_style(raw, extra, p);
    let filters = resolve_filters(extra, p);
    let releases = resolve_releases(raw, &target.prefix, delete, *mode == Mode::Deploy, p);
    let rules = resolve_rules(raw, p);
    Some(SyncConfig {
        releases,
        bucket: target.bucket,
        prefix: target.prefix,
        local_display: target.local.unwrap_or_default().to_string(),
        local_path,
        delete,
        compare,
        max_concurrency,
        symlinks,
        filter_rules: extra.filters.clone(),
        filters,
        headers,
        rules,
        max_delete,
        force_path_style,
        verbosity: extra.verbosity.unwrap_or(Verbosity::Normal),
        progress: !extra.no_progress,
        request_extras,
        allow_skipped_files,
    })
}

/// Where the sync goes and from where.
struct Target<'a> {
    bucket: String,
    /// Empty or ending in `/`.
    prefix: String,
    /// LOCAL_PATH as written; `None` for a rollback or a release list.
    local: Option<&'a str>,
}

/// S3_BUCKET and LOCAL_PATH. `None`: no sync job (or S3_BUCKET missing, reported).
fn resolve_target<'a>(
    raw: &'a RawVars,
    mode: &Mode,
    p: &mut Problems,
    notes: &mut Vec<String>,
) -> Option<Target<'a>> {
    let bucket_var = non_empty(&raw.s3_bucket);
    let mut local_var = non_empty(&raw.local_path);
    if *mode != Mode::Deploy {
        // A rollback restores recorded versions server-side; the release list reads the state.
        if local_var.is_some() {
            notes.push(format!(
                "LOCAL_PATH is not used {}: the files come from the bucket's recorded versions",
                if *mode == Mode::ListReleases {
                    "to list the releases"
                } else {
                    "by a rollback"
                }
            ));
        }
        local_var = None;
        bucket_var?;
    }
    let (bucket, prefix) = match (bucket_var, local_var) {
        (None, None) => return None,
        (None, Some(_)) => {
            p.add(
                "S3_BUCKET",
                "is missing while LOCAL_PATH is set: set S3_BUCKET to the bucket (or bucket/prefix) to deploy to",
            );
            return None;
        }
        (Some(b), _) => split_bucket(b),
    };
    if let Some(problem) = bucket_name_problem(&bucket) {
        p.add(
            "S3_BUCKET",
            format!("{problem}; write it as bucket or bucket/prefix"),
        );
    }
    Some(Target {
        bucket,
        prefix,
        local: local_var,
    })
}

/// LOCAL_PATH must be an existing folder (a deploy only).
fn resolve_local_path(local_var: Option<&str>, mode: &Mode, p: &mut Problems) -> PathBuf {
    match local_var {
        None if *mode != Mode::Deploy => PathBuf::new(),
        None => {
            p.add(
                "LOCAL_PATH",
                "is missing: set it to the folder to deploy, e.g. build or dist",
            );
            PathBuf::new()
        }
        Some(l) => {
            let path = PathBuf::from(l);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => p.add(
                    "LOCAL_PATH",
                    format!("{l:?} is a file, not a folder: set it to the folder to deploy"),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => p.add(
                    "LOCAL_PATH",
                    format!("{l:?} does not exist: build the site first, or fix the path (relative paths start at the clone directory)"),
                ),
                Err(e) => p.add("LOCAL_PATH", format!("{l:?} cannot be read ({e})")),
            }
            path
        }
    }
}

/// `--size-only` wins over SYNC_COMPARE; with SSE-C the default is size and mtime.
fn resolve_compare(
    raw: &RawVars,
    extra: &ExtraArgs,
    request_extras: &S3RequestExtras,
    p: &mut Problems,
    notes: &mut Vec<String>,
) -> CompareMode {
    if extra.size_only {
        return CompareMode::SizeOnly;
    }
    match non_empty(&raw.sync_compare) {
        // With SSE-C, S3's ETag is not the MD5 of the content: compare as aws-cli does.
        None if request_extras.sse_c.is_some() => {
            notes.push("EXTRA_ARGS --sse-c: ETags of SSE-C objects are not MD5s, so files are compared by size and modification time, as aws-cli does (set SYNC_COMPARE to choose)".to_string());
            CompareMode::SizeAndMtime
        }
        None | Some("checksum") => CompareMode::Checksum,
        Some("size-and-mtime") => CompareMode::SizeAndMtime,
        Some("size-only") => CompareMode::SizeOnly,
        Some(other) => {
            p.add(
                "SYNC_COMPARE",
                format!(
                    "{other:?} is not a compare mode: use checksum, size-and-mtime or size-only"
                ),
            );
            CompareMode::Checksum
        }
    }
}

/// `--no-follow-symlinks` wins over FOLLOW_SYMLINKS.
fn resolve_symlinks(raw: &RawVars, extra: &ExtraArgs, p: &mut Problems) -> SymlinkPolicy {
    let follow_all = bool_var(p, "FOLLOW_SYMLINKS", &raw.follow_symlinks, false);
    match extra.follow_symlinks {
        Some(false) => SymlinkPolicy::Never,
        _ if follow_all => SymlinkPolicy::FollowAll,
        _ => SymlinkPolicy::FollowInside,
    }
}

/// S3_FORCE_PATH_STYLE, else what the endpoint calls for.
fn resolve_force_path_style(raw: &RawVars, extra: &ExtraArgs, p: &mut Problems) -> bool {
    let endpoint = extra
        .values
        .get("--endpoint-url")
        .map(String::as_str)
        .or(non_empty(&raw.aws_endpoint_url_s3))
        .or(non_empty(&raw.aws_endpoint_url));
    match non_empty(&raw.s3_force_path_style) {
        None => path_style_by_default(endpoint),
        Some(_) => bool_var(p, "S3_FORCE_PATH_STYLE", &raw.s3_force_path_style, false),
    }
}

/// The `--include` / `--exclude` patterns, compiled.
fn resolve_filters(extra: &ExtraArgs, p: &mut Problems) -> Filters {
    match Filters::new(&extra.filters) {
        Ok(f) => f,
        Err(e) => {
            p.add(
                "EXTRA_ARGS",
                format!("{e}: fix the --include/--exclude pattern"),
            );
            Filters::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_and_prefix() {
        assert_eq!(split_bucket("b"), ("b".into(), "".into()));
        assert_eq!(split_bucket("b/"), ("b".into(), "".into()));
        assert_eq!(
            split_bucket("b/some/prefix"),
            ("b".into(), "some/prefix/".into())
        );
        assert_eq!(split_bucket("s3://b/p/"), ("b".into(), "p/".into()));
    }
}
