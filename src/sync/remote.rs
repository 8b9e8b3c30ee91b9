//! List the target prefix once with ListObjectsV2, paginated. No HEAD per object.

use aws_sdk_s3::Client;

use crate::sync::SyncError;

/// One remote object below the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    /// Key relative to the prefix.
    pub rel: String,
    pub size: u64,
    /// The ETag without quotes.
    pub etag: String,
    /// LastModified, seconds since the epoch.
    pub last_modified: i64,
    /// The current version's id, when the listing was of versions (a versioned bucket).
    pub version_id: Option<String>,
}

/// Every version of every key below the prefix, for a rollback's checks: (key relative to the
/// prefix, VersionId).
pub type AllVersions = std::collections::HashSet<(String, String)>;

/// List every object under `prefix` (empty or ending in `/`), sorted by `rel`.
///
/// Keys ending in `/` are "folder" markers made by consoles; they have no local counterpart and
/// are left alone (never deleted), as they hold no content. Keys of the pipe's own state
/// ([`crate::release::is_reserved`]) are left out.
pub async fn list(
    client: &Client,
    bucket: &str,
    prefix: &str,
    state_prefix: &str,
) -> Result<Vec<RemoteObject>, SyncError> {
    let mut out = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .set_prefix((!prefix.is_empty()).then(|| prefix.to_string()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| match bucket_region(&e) {
            Some(region) => SyncError::WrongRegion(region),
            None => SyncError::from_sdk("list", bucket, None, e),
        })?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            let Some(rel) = key.strip_prefix(prefix) else {
                continue;
            };
            if rel.is_empty()
                || rel.ends_with('/')
                || crate::release::is_reserved(key, state_prefix)
            {
                continue;
            }
            out.push(RemoteObject {
                rel: rel.to_string(),
                size: u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
                etag: o.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                last_modified: o.last_modified().map(|t| t.secs()).unwrap_or(0),
                version_id: None,
            });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// As [`list`], from ListObjectVersions: the current version of every key, with its VersionId
/// (a key whose latest version is a delete marker is absent). With `all`, also every version
/// of every key, for a rollback to check that the versions it restores still exist.
/// One listing of the prefix's versions; noncurrent versions make it longer, which is what a
/// lifecycle rule expiring them after N days keeps in check.
pub async fn list_versions(
    client: &Client,
    bucket: &str,
    prefix: &str,
    state_prefix: &str,
    all: bool,
) -> Result<(Vec<RemoteObject>, AllVersions), SyncError> {
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
            .map_err(|e| match bucket_region(&e) {
                Some(region) => SyncError::WrongRegion(region),
                None => SyncError::from_sdk("list", bucket, None, e),
            })?;
        for v in page.versions() {
            let Some(key) = v.key() else { continue };
            let Some(rel) = key.strip_prefix(prefix) else {
                continue;
            };
            if rel.is_empty()
                || rel.ends_with('/')
                || crate::release::is_reserved(key, state_prefix)
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

/// The bucket's real region, when S3 refused the request because it was sent to (or signed
/// for) another one: a `301 PermanentRedirect`, a `400 AuthorizationHeaderMalformed` or an
/// `IllegalLocationConstraintException`, each naming the region in `x-amz-bucket-region`
/// (aws-cli follows the same answers).
pub(crate) fn bucket_region<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Option<String>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    let raw = err.raw_response()?;
    let code = err.as_service_error().and_then(|e| e.code()).unwrap_or("");
    let redirect = raw.status().as_u16() == 301
        || matches!(
            code,
            "PermanentRedirect"
                | "AuthorizationHeaderMalformed"
                | "IllegalLocationConstraintException"
        );
    let region = raw.headers().get("x-amz-bucket-region")?;
    (redirect && !region.is_empty()).then(|| region.to_string())
}
