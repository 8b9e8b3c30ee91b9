//! Recording a release once a deploy (or a rollback) has succeeded: the manifest first, then
//! the state that names it, conditionally (see [`super::store`]).

use std::collections::{BTreeMap, BTreeSet};

use super::store::{Loaded, Store, StoreError};
use super::{Manifest, Release, grace};
use crate::output::Output;

/// Everything a successful run hands over to be recorded.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub(crate) store: Store,
    /// The deployed prefix.
    pub(crate) prefix: String,
    /// The state as this run read it.
    pub(crate) loaded: Loaded,
    /// Releases to keep; 0: none recorded (the state then holds only the stale keys).
    pub(crate) history: usize,
    /// `BITBUCKET_BUILD_NUMBER`, when there is one.
    pub(crate) id: Option<String>,
    pub(crate) commit: Option<String>,
    /// `deploy` or `rollback`.
    pub(crate) kind: &'static str,
    /// False when the live objects are the live release's: only the stale keys are written.
    pub(crate) new_release: bool,
    pub(crate) rollback_of: Option<String>,
    pub(crate) manifest: Manifest,
    /// The stale keys after this run.
    pub(crate) stale: BTreeMap<String, i64>,
    /// Keys this run deleted.
    pub(crate) deleted: BTreeSet<String>,
    pub(crate) uploaded: usize,
    pub(crate) reheadered: usize,
    pub(crate) unchanged: usize,
}

/// What was recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Recorded {
    /// `None` when no release was recorded (`RELEASE_HISTORY=0`).
    pub(crate) id: Option<String>,
    pub(crate) manifest: Option<String>,
    /// Whether the release can be rolled back to.
    pub(crate) versioned: bool,
    /// Releases dropped from the history (their manifests deleted).
    pub(crate) dropped: usize,
    /// Attempts the conditional write of the state took (more than 1: another deploy wrote it).
    pub(crate) attempts: usize,
    /// An unsigned request could read `state.json` (its key: to name it in the warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) public_state: Option<String>,
}

/// An id for a run outside Bitbucket: the time, `20261202-102211`.
pub(crate) fn timestamp_id(now: i64) -> String {
    let t = super::format_time(now); // "2026-12-02 10:22 UTC"
    let date: String = t.chars().take(10).filter(|c| c.is_ascii_digit()).collect();
    let secs = now.rem_euclid(86_400);
    format!(
        "{date}-{:02}{:02}{:02}",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// `id`, or `id.2`, `id.3`, … when a release of that id is recorded already (a re-run step
/// has the same build number).
pub(crate) fn unique_id(base: &str, releases: &[Release]) -> String {
    let taken = |id: &str| releases.iter().any(|r| r.id == id);
    if !taken(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}.{n}"))
        .find(|id| !taken(id))
        .unwrap_or_else(|| base.to_string())
}

/// Record the release: write the manifest, then the state. A run that fails here leaves the
/// previous state as it was (the new manifest is deleted again, best effort).
pub(crate) async fn record(draft: Draft, now: i64, out: &Output) -> Result<Recorded, StoreError> {
    let now_ms = u128::try_from(now).unwrap_or(0) * 1000
        + u128::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_millis())
                .unwrap_or(0),
        );
    let base_id = draft.id.clone().unwrap_or_else(|| timestamp_id(now));
    let versioned = draft
        .manifest
        .objects
        .iter()
        .all(|e| e.version_id.is_some());
    let content_etags = draft
        .manifest
        .objects
        .iter()
        .any(|e| e.content_etag.is_some());
    let manifest_key = (draft.history > 0 && draft.new_release)
        .then(|| draft.store.manifest_key(&base_id, now_ms));
    if let Some(key) = &manifest_key {
        draft.store.put_manifest(key, &draft.manifest).await?;
    }
    let live: BTreeSet<String> = draft
        .manifest
        .objects
        .iter()
        .map(|e| e.key.clone())
        .collect();
    let base_stale = draft.loaded.state.stale.clone();
    let mut recorded_id = None;
    let mut dropped: Vec<String> = Vec::new();
    let mut attempts = 0;
    let saved = draft
        .store
        .save(draft.loaded.clone(), &draft.prefix, out, |current| {
            attempts += 1;
            let mut next = current.clone();
            next.stale = grace::merge(
                &draft.stale,
                &base_stale,
                &current.stale,
                &live,
                &draft.deleted,
            );
            dropped.clear();
            recorded_id = None;
            if let Some(key) = &manifest_key {
                let id = unique_id(&base_id, &next.releases);
                next.releases.push(Release {
                    id: id.clone(),
                    time: now,
                    commit: draft.commit.clone(),
                    kind: draft.kind.to_string(),
                    rollback_of: draft.rollback_of.clone(),
                    uploaded: draft.uploaded,
                    reheadered: draft.reheadered,
                    deleted: draft.deleted.len(),
                    unchanged: draft.unchanged,
                    objects: draft.manifest.objects.len(),
                    manifest: key.clone(),
                    versioned,
                    content_etags,
                });
                recorded_id = Some(id);
            }
            let keep = draft.history.max(usize::from(manifest_key.is_some()));
            if draft.history > 0 && next.releases.len() > keep {
                let n = next.releases.len() - keep;
                dropped.extend(next.releases.drain(..n).map(|r| r.manifest));
            }
            next
        })
        .await;
    match saved {
        Ok(_) => {
            if !dropped.is_empty() {
                draft.store.delete(&dropped, out).await?;
            }
            let public = draft.store.publicly_readable().await == Some(true);
            Ok(Recorded {
                public_state: public.then(|| draft.store.state_key()),
                id: recorded_id,
                manifest: manifest_key,
                versioned,
                dropped: dropped.len(),
                attempts,
            })
        }
        Err(e) => {
            if let Some(key) = &manifest_key
                && let Err(refused) = draft.store.delete(std::slice::from_ref(key), out).await
            {
                tracing::debug!(error = %refused, "removing this run's manifest");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(id: &str) -> Release {
        Release::for_test(id)
    }

    #[test]
    fn ids() {
        assert_eq!(timestamp_id(1_796_206_931), "20261202-102211");
        let rs = vec![release("41"), release("42"), release("42.2")];
        assert_eq!(unique_id("43", &rs), "43");
        assert_eq!(unique_id("42", &rs), "42.3");
        assert_eq!(unique_id("41", &rs), "41.2");
    }
}
