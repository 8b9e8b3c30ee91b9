//! Reading the bucket: the prefix's listing (once, no HEAD per object; in ranges listed at
//! once, [`ranges`]) and the bucket's versioning.

mod ranges;

use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use tokio::sync::Semaphore;

use super::error::{Op, S3Error};
use super::scope::Scope;
use crate::output::Output;
use ranges::{Edge, Inconsistent, Range, Reader};
pub(crate) use ranges::{PAGE_KEYS, Split};

/// The bucket's versioning, as GetBucketVersioning tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Versioning {
    Enabled,
    /// Suspended, or never enabled.
    Off,
    /// Not readable (no s3:GetBucketVersioning, or a store without it).
    Unknown,
}

/// What a listing of the prefix reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListMode {
    /// The current objects (ListObjectsV2); the versioning is not read.
    Current,
    /// The current objects, and the bucket's versioning read while they are listed (a deploy
    /// that records a release: the VersionIds of its unchanged keys come from the live
    /// release's manifest).
    CurrentAndVersioning,
    /// The bucket's versioning, then, when enabled, every version of every key
    /// (ListObjectVersions: a rollback checks that the versions it restores still exist).
    AllVersions,
}

/// A listing: the current objects (sorted by key), the bucket's versioning, and every
/// version (only with [`ListMode::AllVersions`] on a versioned bucket).
pub(crate) type Listed = (Vec<RemoteObject>, Versioning, AllVersions);

/// List the scope's site prefix (the state's keys left out) as `mode` says; the current
/// objects in the ranges of `split` ([`ListMode::AllVersions`]: in one sequence).
pub(crate) async fn list(
    client: &Client,
    scope: &Scope,
    mode: ListMode,
    split: &Split,
    out: &Output,
) -> Result<Listed, S3Error> {
    let bucket = scope.bucket();
    let read = async {
        if mode == ListMode::Current {
            return Ok(Versioning::Off);
        }
        match versioning(client, bucket).await {
            Ok(v) => Ok(v),
            Err(e) => {
                let err = S3Error::from_sdk(Op::List, bucket, None, false, &e);
                if matches!(err, S3Error::WrongRegion(_)) || err.code() == Some("NoSuchBucket") {
                    return Err(err);
                }
                let (code, detail) = super::error::code_and_detail(&e);
                // The permission is the fix only when S3 refused it; a request that got no
                // answer fails the listing too, which says why.
                let fix = if code == "AccessDenied" {
                    format!("; allow s3:GetBucketVersioning on arn:aws:s3:::{bucket}")
                } else {
                    String::new()
                };
                out.info(format!(
                    "Cannot read the bucket's versioning ({detail}): no release of this deploy can be rolled back to{fix}"
                ));
                Ok(Versioning::Unknown)
            }
        }
    };
    if mode != ListMode::AllVersions {
        // The versioning is read while the listing runs (one round trip less on the critical
        // path). The listing's error, when both fail, is the one to report.
        let (versioning, objects) = tokio::join!(read, current_split(client, scope, split, out));
        return Ok((objects?, versioning?, AllVersions::default()));
    }
    let versioning = read.await?;
    if versioning == Versioning::Enabled {
        let (objects, all) = versions(client, scope, true).await?;
        return Ok((objects, versioning, all));
    }
    Ok((
        current(client, scope).await?,
        versioning,
        AllVersions::default(),
    ))
}

/// One remote object below the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteObject {
    /// Key relative to the prefix.
    pub(crate) rel: String,
    pub(crate) size: u64,
    /// The ETag without quotes.
    pub(crate) etag: String,
    /// LastModified, seconds since the epoch.
    pub(crate) last_modified: i64,
    /// The current version's id, when the listing was of versions (a versioned bucket).
    pub(crate) version_id: Option<String>,
}

/// Every version of every key below the prefix, for a rollback's checks: (key relative to the
/// prefix, VersionId).
pub(crate) type AllVersions = std::collections::HashSet<(String, String)>;

/// List every object under `prefix` (empty or ending in `/`), sorted by `rel`, in one
/// sequence of pages.
///
/// Keys ending in `/` are "folder" markers made by consoles; they have no local counterpart and
/// are left alone (never deleted), as they hold no content. Keys of the pipe's own state
/// ([`super::scope::is_reserved`]) are left out.
pub(crate) async fn current(client: &Client, scope: &Scope) -> Result<Vec<RemoteObject>, S3Error> {
    let (bucket, prefix, state_prefix) =
        (scope.bucket(), scope.site_prefix(), scope.state_prefix());
    let mut out = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .set_prefix((!prefix.is_empty()).then(|| prefix.to_string()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| S3Error::from_sdk(Op::List, bucket, None, false, &e))?;
        out.extend(
            page.contents()
                .iter()
                .filter_map(|o| remote_object(o, prefix, state_prefix)),
        );
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// A listed object as the plan sees it; `None` for a key outside the prefix, the prefix
/// itself, a "folder" marker or a key of the state (see [`current`]).
fn remote_object(
    o: &aws_sdk_s3::types::Object,
    prefix: &str,
    state_prefix: &str,
) -> Option<RemoteObject> {
    let key = o.key()?;
    let rel = key.strip_prefix(prefix)?;
    if rel.is_empty() || rel.ends_with('/') || super::scope::is_reserved(key, state_prefix) {
        return None;
    }
    Some(RemoteObject {
        rel: rel.to_string(),
        size: u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
        etag: o.e_tag().unwrap_or_default().trim_matches('"').to_string(),
        last_modified: o.last_modified().map(|t| t.secs()).unwrap_or(0),
        version_id: None,
    })
}

/// [`current`], in the ranges of `split`, listed at once (at most its concurrency of requests
/// in flight). The same objects in the same order: the ranges partition the key space, and
/// an answer that could make them differ ([`Inconsistent`]) is said in one INFO line and the
/// prefix listed sequentially instead. Memory: the objects themselves, and the pages in
/// flight.
async fn current_split(
    client: &Client,
    scope: &Scope,
    split: &Split,
    out: &Output,
) -> Result<Vec<RemoteObject>, S3Error> {
    let ranges = split.ranges();
    if ranges.len() < 2 || !ranges::lists_in_ranges(scope.bucket()) {
        return current(client, scope).await;
    }
    match in_ranges(client, scope, &ranges, split.concurrency()).await {
        Ok(objects) => Ok(objects),
        Err(RangeError::S3(e)) => Err(e),
        Err(RangeError::Inconsistent(why)) => {
            out.info(format!(
                "The store's answers to the listing in {} ranges are not S3's ({why}): listing s3://{}/{} in one sequence instead",
                ranges.len(),
                scope.bucket(),
                scope.site_prefix()
            ));
            current(client, scope).await
        }
    }
}

/// Why a listing in ranges gave no result.
#[derive(Debug)]
enum RangeError {
    /// A request failed: the listing fails, as the sequential one would.
    S3(S3Error),
    /// An answer S3 would not give: the caller lists sequentially.
    Inconsistent(Inconsistent),
}

/// Every range at once (`concurrency` requests in flight), then the seams checked.
async fn in_ranges(
    client: &Client,
    scope: &Scope,
    ranges: &[Range],
    concurrency: usize,
) -> Result<Vec<RemoteObject>, RangeError> {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut set = tokio::task::JoinSet::new();
    for (i, range) in ranges.iter().cloned().enumerate() {
        let (client, scope, permits) = (client.clone(), scope.clone(), permits.clone());
        set.spawn(async move {
            // The semaphore is never closed; the permit is held while the range is read.
            let _permit = permits.acquire_owned().await.ok();
            (i, list_range(&client, &scope, &range).await)
        });
    }
    let mut parts: Vec<Option<(Vec<RemoteObject>, Edge)>> = vec![None; ranges.len()];
    // The first failure ends the listing: dropping the set aborts the other ranges.
    while let Some(joined) = set.join_next().await {
        let (i, part) = match joined {
            Ok(done) => done,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => {
                return Err(RangeError::S3(S3Error::Request {
                    op: Op::List,
                    code: String::new(),
                    message: format!("the listing was stopped ({e})"),
                }));
            }
        };
        parts[i] = Some(part?);
    }
    let parts: Vec<(Vec<RemoteObject>, Edge)> = parts.into_iter().flatten().collect();
    let edges: Vec<Edge> = parts.iter().map(|(_, edge)| edge.clone()).collect();
    ranges::check_seams(&edges, ranges).map_err(RangeError::Inconsistent)?;
    // Each range's keys are sorted (checked) and the ranges follow each other: sorted.
    let mut objects = Vec::with_capacity(parts.iter().map(|(o, _)| o.len()).sum());
    for (part, _) in parts {
        objects.extend(part);
    }
    Ok(objects)
}

/// One range's objects (as [`remote_object`] keeps them) and its edge.
async fn list_range(
    client: &Client,
    scope: &Scope,
    range: &Range,
) -> Result<(Vec<RemoteObject>, Edge), RangeError> {
    let (bucket, prefix, state_prefix) =
        (scope.bucket(), scope.site_prefix(), scope.state_prefix());
    let mut reader = Reader::new(prefix, range);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // As the SDK's paginator: StartAfter on every page (S3 follows the token).
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .set_prefix((!prefix.is_empty()).then(|| prefix.to_string()))
            .set_start_after(reader.start_after().map(str::to_string))
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| {
                let err = S3Error::from_sdk(Op::List, bucket, None, false, &e);
                match err.code() {
                    // A store without StartAfter (S3 has it since ListObjectsV2 exists).
                    Some(code @ ("NotImplemented" | "InvalidArgument"))
                        if reader.start_after().is_some() =>
                    {
                        RangeError::Inconsistent(Inconsistent::StartAfterRefused {
                            code: code.to_string(),
                        })
                    }
                    _ => RangeError::S3(err),
                }
            })?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            if reader.key(key).map_err(RangeError::Inconsistent)?
                && let Some(object) = remote_object(o, prefix, state_prefix)
            {
                out.push(object);
            }
        }
        match reader
            .page_end(page.is_truncated(), page.next_continuation_token())
            .map_err(RangeError::Inconsistent)?
        {
            Some(next) => token = Some(next),
            None => return Ok((out, reader.finish())),
        }
    }
}

/// As [`current`], from ListObjectVersions: the current version of every key, with its VersionId
/// (a key whose latest version is a delete marker is absent). With `all`, also every version
/// of every key, for a rollback to check that the versions it restores still exist.
/// One listing of the prefix's versions; noncurrent versions make it longer, which is what a
/// lifecycle rule expiring them after N days keeps in check.
pub(crate) async fn versions(
    client: &Client,
    scope: &Scope,
    all: bool,
) -> Result<(Vec<RemoteObject>, AllVersions), S3Error> {
    let (bucket, prefix, state_prefix) =
        (scope.bucket(), scope.site_prefix(), scope.state_prefix());
    let mut out = Vec::new();
    let mut versions = AllVersions::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = client
            .list_object_versions()
            .bucket(bucket)
            .set_prefix((!prefix.is_empty()).then(|| prefix.to_string()))
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .map_err(|e| S3Error::from_sdk(Op::List, bucket, None, false, &e))?;
        for v in page.versions() {
            let Some(key) = v.key() else { continue };
            let Some(rel) = key.strip_prefix(prefix) else {
                continue;
            };
            if rel.is_empty() || rel.ends_with('/') || super::scope::is_reserved(key, state_prefix)
            {
                continue;
            }
            if all && let Some(id) = v.version_id() {
                versions.insert((rel.to_string(), id.to_string()));
            }
            if v.is_latest() != Some(true) {
                continue;
            }
            out.push(RemoteObject {
                rel: rel.to_string(),
                size: u64::try_from(v.size().unwrap_or(0)).unwrap_or(0),
                etag: v.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                last_modified: v.last_modified().map(|t| t.secs()).unwrap_or(0),
                version_id: v.version_id().map(str::to_string),
            });
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        let next = (
            page.next_key_marker().map(str::to_string),
            page.next_version_id_marker().map(str::to_string),
        );
        if next.0.is_none() || (next.0 == key_marker && next.1 == version_marker) {
            break;
        }
        (key_marker, version_marker) = next;
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok((out, versions))
}

/// The bucket's versioning from GetBucketVersioning. A store that answers 200 with another
/// XML root than S3's `VersioningConfiguration` (moto's `GetBucketVersioningResponse`; the SDK
/// refuses it) is read from the raw answer: `<Status>Enabled</Status>` is what matters.
pub(crate) async fn versioning(
    client: &Client,
    bucket: &str,
) -> Result<
    Versioning,
    SdkError<aws_sdk_s3::operation::get_bucket_versioning::GetBucketVersioningError>,
> {
    match client.get_bucket_versioning().bucket(bucket).send().await {
        Ok(r) => Ok(match r.status() {
            Some(aws_sdk_s3::types::BucketVersioningStatus::Enabled) => Versioning::Enabled,
            _ => Versioning::Off,
        }),
        Err(e) => {
            if let Some(raw) = e.raw_response()
                && raw.status().is_success()
                && let Some(body) = raw.body().bytes()
            {
                let text = String::from_utf8_lossy(body);
                return Ok(if text.contains("<Status>Enabled</Status>") {
                    Versioning::Enabled
                } else {
                    Versioning::Off
                });
            }
            Err(e)
        }
    }
}
