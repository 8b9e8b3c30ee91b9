//! What a successful deploy hands over to be recorded as a release: the manifest of every
//! live key with its ETag and VersionId, the stale keys, the counts.

use std::collections::{BTreeMap, HashMap};

use super::content_etags::ContentEtags;
use super::execute::Executed;
use super::headers;
use super::local::LocalFile;
use crate::config::SyncConfig;
use crate::output::Output;
use crate::release::record::Draft;
use crate::release::store::{Loaded, Store};
use crate::release::{CopySettings, Manifest, State};
use crate::s3::{RemoteObject, Versioning};

/// What the deploy knows when its execution has ended.
pub(super) struct Recording<'a> {
    pub(crate) cfg: &'a SyncConfig,
    pub(crate) store: Store,
    pub(crate) loaded: Loaded,
    pub(crate) versioning: Versioning,
    pub(crate) remote: &'a [RemoteObject],
    /// The content ETags of the listed objects the live release recorded.
    pub(crate) content: &'a ContentEtags,
    /// The live release's manifest, when the listing step read it.
    pub(crate) live_manifest: Option<Manifest>,
    pub(crate) files: &'a [LocalFile],
    pub(crate) groups: &'a [headers::Group],
    /// The stale keys after this run.
    pub(crate) stale: BTreeMap<String, i64>,
    pub(crate) unchanged: usize,
    pub(crate) dry_run: bool,
}

/// The release to record, when the run succeeded, writes state and changed something.
pub(super) async fn draft(
    mut r: Recording<'_>,
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
            && !written_since(r.files, r.remote, live.time)
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
    let serves = state_serves(&r, done);
    if let (None, Some(_), true) = (serves, &r.loaded.etag, succeeded && !r.dry_run) {
        out.info(format!(
            "The release state s3://{}/{} is no longer updated: on this bucket it serves nothing (no versioning to roll back with, no DELETE_GRACE, ETags that are MD5s). Set RELEASE_HISTORY to keep recording releases anyway, or delete the folder s3://{}/{}",
            r.cfg.bucket,
            r.store.state_key(),
            r.cfg.bucket,
            r.store.prefix()
        ));
    }
    let recording = succeeded
        && !r.dry_run
        && r.cfg.releases.uses_state()
        && serves.is_some()
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
        let pre_read = r.live_manifest.take();
        known_versions(
            &r.store,
            &r.loaded.state,
            pre_read,
            r.remote,
            &unchanged,
            r.cfg,
            out,
        )
        .await
    } else {
        HashMap::new()
    };
    explain_first_index(&r, done, recording, out);
    recording.then(|| {
        let objects = r
            .files
            .iter()
            .filter_map(|f| {
                // A copy (re-headered) and an unchanged object keep the recorded content ETag.
                let carried = || r.content.get(&f.rel).map(str::to_string);
                let (etag, version_id, content_etag) = match done.written.get(&f.rel) {
                    Some(w) => (
                        w.etag.clone(),
                        w.version_id.clone(),
                        w.content_etag.clone().or_else(carried),
                    ),
                    None => {
                        let j = r
                            .remote
                            .binary_search_by(|r| r.rel.as_str().cmp(f.rel.as_str()))
                            .ok()?;
                        let version = known.get(f.rel.as_str()).cloned();
                        (r.remote[j].etag.clone(), version, carried())
                    }
                };
                let content_etag = content_etag.filter(|c| *c != etag);
                Some(crate::release::Entry {
                    key: f.rel.clone(),
                    etag,
                    size: f.size,
                    fingerprint: fingerprints.get(f.group).cloned().unwrap_or_default(),
                    version_id: version_id.filter(|_| versioned),
                    content_etag,
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

/// Seconds a store's clock may run ahead of the runner's before an object written before a
/// release was recorded looks written after it.
const CLOCK_SKEW_SECS: i64 = 2;

/// Whether an object of a local file was written after the release recorded at `time`: by a
/// deploy whose release could not be recorded, or by another tool. The live objects are then
/// not that release's, even when this run wrote nothing.
fn written_since(files: &[LocalFile], remote: &[RemoteObject], time: i64) -> bool {
    files.iter().any(|f| {
        remote
            .binary_search_by(|o| o.rel.as_str().cmp(f.rel.as_str()))
            .is_ok_and(|j| remote[j].last_modified > time + CLOCK_SKEW_SECS)
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
    pre_read: Option<Manifest>,
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
        let manifest = match pre_read {
            Some(m) => Ok(m),
            None => store.get_manifest(&live.manifest).await,
        };
        match manifest {
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

/// Why this deploy keeps the release state, or `None` where it would serve nothing: a
/// release cannot be rolled back to without versioning, and the stale keys matter only with
/// `DELETE_GRACE`. Writing it anyway would leave the bucket different from what `aws s3 sync`
/// leaves, and on a public site the state (every key, commit and build) readable by anyone.
pub(super) fn state_serves(r: &Recording<'_>, done: &Executed) -> Option<&'static str> {
    let releases = &r.cfg.releases;
    if releases.history_set && releases.history > 0 {
        Some("RELEASE_HISTORY is set")
    } else if releases.grace_secs.is_some() {
        Some("DELETE_GRACE keeps the stale keys")
    } else if r.versioning == Versioning::Enabled && releases.history > 0 {
        Some("the bucket has versioning: releases can be rolled back to")
    } else if releases.history > 0
        && (!r.content.is_empty() || done.written.values().any(|w| w.content_etag.is_some()))
    {
        Some("the bucket's ETags are not MD5s: the manifest records the content's")
    } else {
        None
    }
}

/// On a bucket whose ETags are not MD5s (SSE-KMS, SSE-C), files whose object had the same
/// size but no recorded content ETag were uploaded to be sure: say so once, and what the
/// next deploy does.
fn explain_first_index(r: &Recording<'_>, done: &Executed, recording: bool, out: &Output) {
    let candidates: Vec<&String> = done
        .written
        .iter()
        .filter(|(rel, w)| w.content_etag.is_some() && r.content.get(rel).is_none())
        .map(|(rel, _)| rel)
        .collect();
    if candidates.is_empty() {
        return;
    }
    let sizes: HashMap<&str, u64> = r.files.iter().map(|f| (f.rel.as_str(), f.size)).collect();
    let again = candidates
        .into_iter()
        .filter(|rel| {
            r.remote
                .binary_search_by(|o| o.rel.as_str().cmp(rel))
                .ok()
                .is_some_and(|j| sizes.get(rel.as_str()) == Some(&r.remote[j].size))
        })
        .count();
    if again == 0 {
        return;
    }
    let next = if recording && r.cfg.releases.history > 0 {
        "their content ETags are now recorded in the release manifest, so the next deploy uploads only what changed"
    } else {
        "no release manifest is kept (RELEASE_HISTORY=0), so every deploy uploads them again; unset RELEASE_HISTORY to keep one"
    };
    out.info(format!(
        "{again} file(s) with an object of the same size were uploaded because the bucket's ETags are not MD5s of the content (SSE-KMS or SSE-C): {next}"
    ));
}
