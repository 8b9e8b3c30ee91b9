//! Releases: the state a deploy keeps in the bucket, so that replaced files get a grace period
//! before they are deleted and a prefix can be rolled back to an earlier deploy in one step.
//!
//! Layout, below the state prefix (`<prefix>.s3-deploy-pipe/` unless `STATE_PREFIX` moves it):
//! - `state.json`: the release history (newest last) and the stale keys with the time each
//!   became stale. Small; read once and written once (then read back) per deploy, with S3 conditional writes
//!   (`If-Match` its ETag, or `If-None-Match: *` for the first), so that two deploys of the
//!   same prefix at the same time cannot lose each other's release: the one that loses the
//!   race reads the state again, merges and writes again ([`store::save`]).
//! - `releases/<time>-<id>.json.gz`: one manifest per release, gzip-compressed JSON: every key
//!   the release left live with its ETag, size, header fingerprint and VersionId.
//!
//! A manifest is written before the state that names it, and the state is replaced in one PUT:
//! a run that fails or is stopped leaves the previous state as it was.

pub(crate) mod grace;
pub(crate) mod list;
pub(crate) mod record;
pub(crate) mod store;
pub(crate) mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of `state.json`. A state written by a newer pipe is refused, never overwritten.
pub(crate) const STATE_SCHEMA: u32 = 1;
/// Version of a manifest.
pub(crate) const MANIFEST_SCHEMA: u32 = 1;
pub(crate) use crate::s3::Versioning;
pub(crate) use crate::s3::scope::{MANIFEST_DIR, STATE_OBJECT};

/// The state kept in `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) schema: u32,
    /// The deployed prefix this state is for (informational).
    #[serde(default)]
    pub(crate) prefix: String,
    /// Oldest first; the last is the live one.
    #[serde(default)]
    pub(crate) releases: Vec<Release>,
    /// Keys (relative to the prefix) that no local file has any more, with the time (seconds
    /// since 1970) they first became stale. Deleted once stale for longer than `DELETE_GRACE`.
    #[serde(default)]
    pub(crate) stale: BTreeMap<String, i64>,
}

/// One recorded release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Release {
    pub(crate) id: String,
    /// Seconds since 1970.
    pub(crate) time: i64,
    pub(crate) commit: Option<String>,
    /// `deploy` or `rollback`.
    pub(crate) kind: String,
    /// For a rollback: the release it restored.
    #[serde(default)]
    pub(crate) rollback_of: Option<String>,
    pub(crate) uploaded: usize,
    pub(crate) reheadered: usize,
    pub(crate) deleted: usize,
    pub(crate) unchanged: usize,
    /// Keys in the manifest.
    pub(crate) objects: usize,
    /// Full key of the manifest.
    pub(crate) manifest: String,
    /// Every manifest entry has a VersionId: the release can be restored.
    pub(crate) versioned: bool,
    /// Its manifest records the content's ETag of objects whose stored ETag is not an MD5
    /// (SSE-KMS, SSE-C): the next deploy reads it to compare them without uploading.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) content_etags: bool,
}

#[cfg(test)]
impl Release {
    /// A versioned deploy release `id` with no objects, for the unit tests.
    pub(crate) fn for_test(id: &str) -> Release {
        Release {
            id: id.into(),
            time: 0,
            commit: None,
            kind: "deploy".into(),
            rollback_of: None,
            uploaded: 0,
            reheadered: 0,
            deleted: 0,
            unchanged: 0,
            objects: 0,
            manifest: String::new(),
            versioned: true,
            content_etags: false,
        }
    }
}

/// The keys one release left live.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) schema: u32,
    pub(crate) prefix: String,
    /// What CopyObject must set again when a version is restored (a copy does not keep the
    /// ACL, the storage class or SSE-KMS settings), per header fingerprint.
    #[serde(default)]
    pub(crate) copy: BTreeMap<String, CopySettings>,
    /// Sorted by key.
    pub(crate) objects: Vec<Entry>,
}

/// One key of a manifest. Short names: a manifest of 100,000 keys stays small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Key relative to the prefix.
    #[serde(rename = "k")]
    pub(crate) key: String,
    /// ETag without quotes.
    #[serde(rename = "e")]
    pub(crate) etag: String,
    #[serde(rename = "s")]
    pub(crate) size: u64,
    /// The header fingerprint (`x-amz-meta-s3-deploy-pipe-headers`) of its settings.
    #[serde(rename = "f")]
    pub(crate) fingerprint: String,
    /// The VersionId, when the bucket has versioning enabled.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub(crate) version_id: Option<String>,
    /// The content's ETag where the stored one is not it (SSE-KMS, SSE-C, a store's own
    /// scheme): the MD5 of a single upload, or `<MD5 of the parts' MD5s>-<parts>` of a
    /// multipart one, as S3 gives them without encryption. While the listing still shows
    /// [`Entry::etag`], the object is the one this pipe wrote, and a local file's digest is
    /// compared with this instead.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub(crate) content_etag: Option<String>,
}

/// Object settings that a copy does not carry over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CopySettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) acl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sse: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sse_kms_key_id: Option<String>,
}

/// Seconds since 1970, now.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `2026-12-02 10:22 UTC` for a time in seconds since 1970.
pub(crate) fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// `7d`, `48h`, `90m`, `30s`: a duration as `DELETE_GRACE` writes it.
pub(crate) fn format_duration(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_796_206_920), "2026-12-02 10:22 UTC");
        assert_eq!(format_duration(604_800), "7d");
        assert_eq!(format_duration(5400), "90m");
        assert_eq!(format_duration(7200), "2h");
        assert_eq!(format_duration(61), "61s");
    }
}
