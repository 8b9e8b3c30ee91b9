//! Comparison strategies: does a local file need uploading over the remote object?
//!
//! One function per `SYNC_COMPARE` mode; [`compare`] dispatches.

use crate::config::CompareMode;
use crate::s3::RemoteObject;
use crate::sync::etag::{self, EtagKind, LocalDigest};
use crate::sync::local::LocalFile;

/// Why a file is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Reason {
    /// No object at the key.
    New,
    SizeDiffers,
    /// Same size, different MD5 / multipart ETag.
    ContentDiffers,
    /// size-and-mtime: the local file is newer than LastModified.
    Newer,
    /// The ETag cannot be an MD5 (SSE-KMS/SSE-C or a store's own form): treated as changed.
    EtagNotMd5,
}

/// The outcome of comparing one local file with its remote object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Upload(Reason),
    Same,
}

/// Which digests the checksum mode needs to decide, or `None` when no hashing can help.
/// `Some(part_sizes)`: hash the file, plus multipart ETags for these part sizes.
pub(crate) fn digest_needed(
    mode: CompareMode,
    local: &LocalFile,
    remote: &RemoteObject,
) -> Option<Vec<u64>> {
    if mode != CompareMode::Checksum || local.size != remote.size {
        return None;
    }
    match etag::classify(&remote.etag) {
        EtagKind::Md5 => Some(Vec::new()),
        EtagKind::Multipart { parts } => Some(etag::candidate_part_sizes(local.size, parts)),
        EtagKind::NotMd5 => None,
    }
}

/// Compare one file with its object under `mode`. `digest` is the file's digest, when hashed.
pub(crate) fn compare(
    mode: CompareMode,
    local: &LocalFile,
    remote: &RemoteObject,
    digest: Option<&LocalDigest>,
) -> Verdict {
    match mode {
        CompareMode::Checksum => checksum(local, remote, digest),
        CompareMode::SizeAndMtime => size_and_mtime(local, remote),
        CompareMode::SizeOnly => size_only(local, remote),
    }
}

/// Upload when the size differs or the content's MD5 / multipart ETag differs.
fn checksum(local: &LocalFile, remote: &RemoteObject, digest: Option<&LocalDigest>) -> Verdict {
    if local.size != remote.size {
        return Verdict::Upload(Reason::SizeDiffers);
    }
    if etag::classify(&remote.etag) == EtagKind::NotMd5 {
        return Verdict::Upload(Reason::EtagNotMd5);
    }
    match digest {
        Some(d) if d.matches(&remote.etag) => Verdict::Same,
        _ => Verdict::Upload(Reason::ContentDiffers),
    }
}

/// aws-cli's default: upload when the size differs or the local mtime is newer than LastModified.
fn size_and_mtime(local: &LocalFile, remote: &RemoteObject) -> Verdict {
    if local.size != remote.size {
        return Verdict::Upload(Reason::SizeDiffers);
    }
    let local_secs = local
        .mtime
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // aws-cli compares the float mtime with LastModified (whole seconds): newer means upload.
    #[allow(clippy::cast_precision_loss)]
    if local_secs > remote.last_modified as f64 {
        Verdict::Upload(Reason::Newer)
    } else {
        Verdict::Same
    }
}

/// aws-cli's `--size-only`.
fn size_only(local: &LocalFile, remote: &RemoteObject) -> Verdict {
    if local.size != remote.size {
        Verdict::Upload(Reason::SizeDiffers)
    } else {
        Verdict::Same
    }
}
