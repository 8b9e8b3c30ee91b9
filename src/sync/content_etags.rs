//! Comparing objects whose ETag is not their content's MD5 (SSE-KMS, DSSE-KMS, SSE-C, or a
//! store's own scheme) without uploading them again.
//!
//! Such ETags look like MD5s (32 hex digits) but are not: the checksum comparison would
//! find every same-size file different. The release manifest therefore records, for each
//! object the pipe wrote whose stored ETag differed from the content's, the content's ETag
//! (`Entry::content_etag`). While the listing still shows the ETag the manifest recorded, the
//! object is the one the pipe wrote, and its content ETag stands in for the listed one in the
//! comparison: zero extra requests per object.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::release::Manifest;
use crate::s3::RemoteObject;

/// Key (relative) → the content's ETag, for the listed objects that are still the ones the
/// live release's manifest recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ContentEtags(HashMap<String, String>);

impl ContentEtags {
    /// The entries of `manifest` with a content ETag whose object the listing shows unchanged
    /// (same ETag, same size). `remote` is sorted by key.
    pub(crate) fn from_manifest(manifest: &Manifest, remote: &[RemoteObject]) -> ContentEtags {
        let find = |key: &str| {
            remote
                .binary_search_by(|r| r.rel.as_str().cmp(key))
                .ok()
                .map(|j| &remote[j])
        };
        ContentEtags(
            manifest
                .objects
                .iter()
                .filter_map(|e| {
                    let content = e.content_etag.as_ref()?;
                    let r = find(&e.key)?;
                    (r.etag == e.etag && r.size == e.size).then(|| (e.key.clone(), content.clone()))
                })
                .collect(),
        )
    }

    pub(crate) fn get(&self, rel: &str) -> Option<&str> {
        self.0.get(rel).map(String::as_str)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The listing as the comparison sees it: each covered object with its content ETag.
    pub(crate) fn compare_view<'a>(&self, remote: &'a [RemoteObject]) -> Cow<'a, [RemoteObject]> {
        if self.0.is_empty() {
            return Cow::Borrowed(remote);
        }
        Cow::Owned(
            remote
                .iter()
                .map(|r| match self.0.get(&r.rel) {
                    Some(content) => RemoteObject {
                        etag: content.clone(),
                        ..r.clone()
                    },
                    None => r.clone(),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::Entry;

    fn remote(rel: &str, etag: &str, size: u64) -> RemoteObject {
        RemoteObject {
            rel: rel.into(),
            size,
            etag: etag.into(),
            last_modified: 0,
            version_id: None,
        }
    }

    fn entry(key: &str, etag: &str, size: u64, content: Option<&str>) -> Entry {
        Entry {
            key: key.into(),
            etag: etag.into(),
            size,
            fingerprint: String::new(),
            version_id: None,
            content_etag: content.map(str::to_string),
        }
    }

    #[test]
    fn only_objects_still_as_recorded_are_covered() {
        let m = Manifest {
            objects: vec![
                entry("a", "kms-a", 1, Some("md5-a")),
                // Overwritten since (another ETag): the listing's ETag is what it is.
                entry("b", "kms-b", 1, Some("md5-b")),
                // Its stored ETag was its MD5: nothing to stand in.
                entry("c", "md5-c", 1, None),
                // Gone from the bucket.
                entry("d", "kms-d", 1, Some("md5-d")),
                // Same ETag, other size: not trusted.
                entry("e", "kms-e", 1, Some("md5-e")),
            ],
            ..Manifest::default()
        };
        let listed = vec![
            remote("a", "kms-a", 1),
            remote("b", "kms-b2", 1),
            remote("c", "md5-c", 1),
            remote("e", "kms-e", 2),
            remote("f", "kms-f", 1),
        ];
        let idx = ContentEtags::from_manifest(&m, &listed);
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.get("a"), Some("md5-a"));
        let view = idx.compare_view(&listed);
        let etags: Vec<&str> = view.iter().map(|r| r.etag.as_str()).collect();
        assert_eq!(etags, ["md5-a", "kms-b2", "md5-c", "kms-e", "kms-f"]);
        assert!(matches!(
            ContentEtags::default().compare_view(&listed),
            Cow::Borrowed(_)
        ));
    }
}
