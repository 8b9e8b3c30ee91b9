//! What a successful deploy hands over to be recorded as a release: the manifest of every
//! live key with its ETag and VersionId, the stale keys, the counts.

use std::collections::{BTreeMap, HashMap};

use super::execute::Executed;
use super::headers;
use super::local::LocalFile;
use crate::config::SyncConfig;
use crate::output::Output;
use crate::release::record::Draft;
use crate::release::store::{Loaded, Store};
use crate::release::{CopySettings, State};
use crate::s3::{RemoteObject, Versioning};

/// What the deploy knows when its execution has ended.
pub(super) struct Recording<'a> {
    pub(crate) cfg: &'a SyncConfig,
    pub(crate) store: Store,
    pub(crate) loaded: Loaded,
    pub(crate) versioning: Versioning,
    pub(crate) remote: &'a [RemoteObject],
    pub(crate) files: &'a [LocalFile],
    pub(crate) groups: &'a [headers::Group],
    /// The stale keys after this run.
    pub(crate) stale: BTreeMap<String, i64>,
    pub(crate) unchanged: usize,
    pub(crate) dry_run: bool,
}

/// The release to record, when the run succeeded, writes state and changed something.
pub(super) async fn draft(
    r: Recording<'_>,
    done: &Executed,
    succeeded: bool,
    out: &Output,
) -> Option<Draft> {
    let versioned = r.versioning == Versioning::Enabled;
    // A deploy whose live objects are the live release's (nothing uploaded or re-headered, no
    // key gone) is that release again: no new release, so that ROLLBACK=previous still means
    // the deploy before. Stale keys it deleted (or that became stale) update the state only.
    let same_release = r.loaded.state.releases.last().filter(|live| {
        done.uploaded.is_empty()
            && done.reheadered.is_empty()
            && r.files.len() == live.objects
            && live.versioned == versioned
    });
    let state_unchanged = done.deleted.is_empty() && r.stale == r.loaded.state.stale;
    if let Some(live) = same_release.filter(|_| succeeded && !r.dry_run) {
        out.info(if state_unchanged {
            format!("Nothing changed since release {}: no new release recorded", live.id)
        } else {
            format!(
                "The live objects are still those of release {}: no new release recorded; the stale keys are updated",
                live.id
            )
        });
    }
    let recording = succeeded
        && !r.dry_run
        && r.cfg.releases.uses_state()
        && !(same_release.is_some() && state_unchanged);
    let new_release = same_release.is_none();
    let fingerprints: Vec<String> = r.groups.iter().map(|g| g.fingerprint.clone()).collect();
    let known = if recording && new_release && versioned {
        let unchanged: Vec<&str> = r
            .files
            .iter()
            .filter(|f| !done.written.contains_key(&f.rel))
            .map(|f| f.rel.as_str())
            .collect();
        known_versions(&r.store, &r.loaded.state, r.remote, &unchanged, r.cfg, out).await
    } else {
        HashMap::new()
    };
    recording.then(|| {
        let objects = r
            .files
            .iter()
            .filter_map(|f| {
                let (etag, version_id) = match done.written.get(&f.rel) {
                    Some(w) => (w.etag.clone(), w.version_id.clone()),
                    None => {
                        let j = r
                            .remote
                            .binary_search_by(|r| r.rel.as_str().cmp(f.rel.as_str()))
                            .ok()?;
                        (r.remote[j].etag.clone(), known.get(f.rel.as_str()).cloned())
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
            store: r.store,
            prefix: r.cfg.prefix.clone(),
            loaded: r.loaded,
            history: r.cfg.releases.history,
            id: r.cfg.releases.release_id.clone(),
            commit: r.cfg.releases.commit.clone(),
            kind: "deploy",
            new_release,
            rollback_of: None,
            manifest: crate::release::Manifest {
                schema: crate::release::MANIFEST_SCHEMA,
                prefix: r.cfg.prefix.clone(),
                copy: copy_settings(r.groups),
                objects,
            },
            stale: r.stale,
            deleted: done.deleted.iter().cloned().collect(),
            uploaded: done.uploaded.len(),
            reheadered: done.reheadered.len(),
            unchanged: r.unchanged,
        }
    })
}

/// What CopyObject must set again on a restore, per header fingerprint (only the groups that
/// set something).
pub(crate) fn copy_settings(groups: &[headers::Group]) -> BTreeMap<String, CopySettings> {
    groups
        .iter()
        .map(|g| {
            let s = &g.settings;
            let c = CopySettings {
                acl: s.acl.clone(),
                storage_class: s.storage_class.clone(),
                sse: s.sse.clone(),
                sse_kms_key_id: s.sse_kms_key_id.clone(),
            };
            (g.fingerprint.clone(), c)
        })
        .filter(|(_, c)| *c != CopySettings::default())
        .collect()
}

/// The current VersionId of each unchanged key (relative), for the release manifest, without a
/// request per key: from the live release's manifest where the object is still the one it
/// recorded (same ETag, not modified after the release was recorded); when some key is not
/// covered (the first release with versioning, objects another tool wrote), from one listing
/// of versions. Keys it cannot find get none (the release then cannot be rolled back to).
async fn known_versions(
    store: &Store,
    state: &State,
    remote: &[RemoteObject],
    unchanged: &[&str],
    cfg: &SyncConfig,
    out: &Output,
) -> HashMap<String, String> {
    let mut known = HashMap::new();
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
            Err(e) => out.warn(format!(
                "The live release's manifest cannot be used ({e}): the VersionIds of unchanged keys are read from a listing of versions instead"
            )),
        }
    }
    let missing = unchanged
        .iter()
        .any(|k| !known.contains_key(*k) && find(k).is_some());
    if missing {
        match crate::s3::list::versions(store.writer.client(), store.writer.scope(), false).await {
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
