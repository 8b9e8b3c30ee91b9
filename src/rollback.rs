//! `ROLLBACK`: restore the prefix to a recorded release, server-side, from the VersionIds its
//! manifest recorded. No local files, no rebuild.
//!
//! Order, as in a deploy: every refusal (no versioning, a release recorded without
//! VersionIds, a version that no longer exists, an object over CopyObject's 5 GiB) comes
//! before anything is written. Then the non-HTML keys are restored, then the HTML, then the
//! keys the release did not have are deleted (through the grace period, if one is set), and
//! only if every restore succeeded. The rollback is then recorded as a release of its own, so
//! rolling forward again is another rollback.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_config::SdkConfig;
use serde::Serialize;

use crate::cancel::Cancel;
use crate::config::{Concurrency, RollbackTarget, SyncConfig};
use crate::output::Output;
use crate::release::grace::GraceSummary;
use crate::release::record::Draft;
use crate::release::store::Store;
use crate::release::{CopySettings, Entry, Manifest, Release, State, Versioning};
use crate::s3::pace::{Gate, paced};
use crate::s3::{AllVersions, CopyFrom, ListMode, Op, RemoteObject, S3Error, Scope, Writer};

/// CopyObject copies at most 5 GiB in one request.
const COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// One key to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Restore {
    /// Index into the manifest's objects.
    pub(crate) entry: usize,
    pub(crate) html: bool,
}

/// What a rollback does. Pure output of [`plan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RollbackPlan {
    /// Non-HTML first, then HTML; by key within each.
    pub(crate) restores: Vec<Restore>,
    pub(crate) unchanged: usize,
    /// Live keys the release did not have (relative, sorted).
    pub(crate) delete_candidates: Vec<String>,
}

/// The release to restore: `previous` is the one before the live (last recorded) one.
pub(crate) fn choose<'a>(state: &'a State, target: &RollbackTarget) -> Result<&'a Release, String> {
    let Some(live) = state.releases.last() else {
        return Err("no release is recorded for this prefix: deploy it with this pipe first (with bucket versioning enabled), then a later deploy can be rolled back".to_string());
    };
    match target {
        RollbackTarget::Previous => {
            let n = state.releases.len();
            if n < 2 {
                return Err(format!(
                    "only one release ({}) is recorded: there is no previous release to roll back to",
                    live.id
                ));
            }
            Ok(&state.releases[n - 2])
        }
        RollbackTarget::Id(id) => state.releases.iter().rev().find(|r| &r.id == id).ok_or_else(|| {
            let ids: Vec<&str> = state.releases.iter().rev().take(10).map(|r| r.id.as_str()).collect();
            format!(
                "no release {id:?} is recorded (the newest: {}): set ROLLBACK to one of them or to previous; RELEASES=list shows them all",
                ids.join(", ")
            )
        }),
    }
}

/// Compare the release's manifest with the prefix now. Pure. Refuses a release that cannot be
/// restored exactly: a key without a VersionId, a version that no longer exists, an object
/// larger than one CopyObject can copy.
pub(crate) fn plan(
    manifest: &Manifest,
    current: &[RemoteObject],
    versions: &AllVersions,
    release_id: &str,
) -> Result<RollbackPlan, String> {
    let mut out = RollbackPlan::default();
    let mut html = Vec::new();
    let by_key: BTreeMap<&str, &RemoteObject> =
        current.iter().map(|r| (r.rel.as_str(), r)).collect();
    for (i, e) in manifest.objects.iter().enumerate() {
        let Some(v) = &e.version_id else {
            return Err(format!(
                "release {release_id} was recorded without VersionIds ({} has none): the bucket's versioning was off, or could not be read, when it was deployed; only releases deployed with versioning enabled can be restored",
                e.key
            ));
        };
        match by_key.get(e.key.as_str()) {
            Some(r) if r.version_id.as_deref() == Some(v.as_str()) => {
                out.unchanged += 1;
                continue;
            }
            _ => {}
        }
        if !versions.contains(&(e.key.clone(), v.clone())) {
            return Err(format!(
                "version {v} of {} (release {release_id}) no longer exists: a lifecycle rule expired it, or it was deleted; this release cannot be restored exactly, choose a newer one",
                e.key
            ));
        }
        if e.size > COPY_LIMIT {
            return Err(format!(
                "{} is {} bytes, more than the 5 GiB one CopyObject restores: this release cannot be restored by the pipe",
                e.key, e.size
            ));
        }
        let r = Restore {
            entry: i,
            html: crate::sync::headers::is_html(&e.key),
        };
        if r.html {
            html.push(r);
        } else {
            out.restores.push(r);
        }
    }
    out.restores.extend(html);
    let wanted: BTreeSet<&str> = manifest.objects.iter().map(|e| e.key.as_str()).collect();
    out.delete_candidates = current
        .iter()
        .filter(|r| !wanted.contains(r.rel.as_str()))
        .map(|r| r.rel.clone())
        .collect();
    Ok(out)
}

/// What the rollback did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct RollbackOutcome {
    pub(crate) bucket: String,
    pub(crate) prefix: String,
    /// The live release before the rollback.
    pub(crate) from: Option<String>,
    /// The release restored.
    pub(crate) to: String,
    /// Full keys restored from their recorded versions.
    pub(crate) restored: Vec<String>,
    /// Full keys deleted (the release did not have them).
    pub(crate) deleted: Vec<String>,
    pub(crate) unchanged: usize,
    /// (full key, message) of every failed operation.
    pub(crate) failed: Vec<(String, String)>,
    pub(crate) grace: Option<GraceSummary>,
    pub(crate) dry_run: bool,
    pub(crate) seconds: f64,
    /// To record, when it succeeded.
    #[serde(skip)]
    pub(crate) release: Option<Draft>,
}

impl RollbackOutcome {
    /// Keys whose content changed, relative to the prefix: what `PATHS=changed` invalidates.
    pub(crate) fn changed_rel(&self) -> Vec<&str> {
        self.restored
            .iter()
            .chain(&self.deleted)
            .map(|k| k.strip_prefix(self.prefix.as_str()).unwrap_or(k))
            .collect()
    }
}

/// Errors that stop a rollback. `Refused` and `Guard` come before anything is written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RollbackError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    State(#[from] crate::release::store::StoreError),
    #[error(transparent)]
    Guard(#[from] crate::sync::plan::GuardError),
}

fn versioning_refusal(bucket: &str) -> String {
    format!(
        "rollback needs bucket versioning, and s3://{bucket} has none: nothing was changed. Enable it (S3 console > {bucket} > Properties > Bucket Versioning > Enable, or `aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled`); deploys from then on can be rolled back to. A lifecycle rule with NoncurrentVersionExpiration (e.g. 30 days) keeps old versions from piling up"
    )
}

/// A writer for the bucket (in the bucket's region, which S3 names when asked in another) and
/// the bucket's versioning, or why it cannot be read.
pub(crate) async fn connect(
    sdk: &SdkConfig,
    cfg: &SyncConfig,
    out: &Output,
) -> (Writer, Result<Versioning, String>) {
    let scope = Scope::new(&cfg.bucket, &cfg.prefix, &cfg.releases.state_prefix);
    let mut client = crate::s3::client::state_client(sdk, cfg);
    let mut versioning = crate::s3::list::versioning(&client, &cfg.bucket).await;
    if let Err(e) = &versioning
        && let Some(region) = crate::s3::error::bucket_region(e)
    {
        let there = crate::s3::client::sdk_in_region(sdk, cfg, &region, out);
        client = crate::s3::client::state_client(&there, cfg);
        versioning = crate::s3::list::versioning(&client, &cfg.bucket).await;
    }
    let versioning = match versioning {
        Ok(v) => Ok(v),
        Err(e) => {
            let (code, detail) = crate::s3::error::code_and_detail(&e);
            let fix = match code.as_str() {
                "NoSuchBucket" => "create it, or fix S3_BUCKET".to_string(),
                "AccessDenied" => format!(
                    "allow s3:GetBucketVersioning on arn:aws:s3:::{}",
                    cfg.bucket
                ),
                _ => "check S3_BUCKET, AWS_ENDPOINT_URL and the credentials".to_string(),
            };
            Err(format!(
                "cannot read the versioning of s3://{} ({detail}): {fix}; nothing was changed",
                cfg.bucket
            ))
        }
    };
    (Writer::new(client, scope), versioning)
}

/// Run a rollback.
pub(crate) async fn run(
    sdk: &SdkConfig,
    cfg: &SyncConfig,
    target: &RollbackTarget,
    dry_run: bool,
    out: &Output,
    cancel: &Cancel,
) -> Result<RollbackOutcome, RollbackError> {
    let start = std::time::Instant::now();
    let p = prepare(sdk, cfg, target, dry_run, out).await?;
    let full = |rel: &str| format!("{}{rel}", cfg.prefix);
    let mut outcome = RollbackOutcome {
        bucket: cfg.bucket.clone(),
        prefix: cfg.prefix.clone(),
        from: p.live.clone(),
        to: p.release.id.clone(),
        unchanged: p.the_plan.unchanged,
        grace: p.grace.clone(),
        dry_run,
        ..RollbackOutcome::default()
    };
    if dry_run {
        for r in &p.the_plan.restores {
            let e = &p.manifest.objects[r.entry];
            out.line(format!(
                "(dryrun) restore: s3://{}/{} version {}",
                cfg.bucket,
                full(&e.key),
                e.version_id.as_deref().unwrap_or_default()
            ));
            outcome.restored.push(full(&e.key));
        }
        for rel in &p.graced.deletes {
            out.line(format!(
                "(dryrun) delete: s3://{}/{}",
                cfg.bucket,
                full(rel)
            ));
            outcome.deleted.push(full(rel));
        }
        outcome.seconds = start.elapsed().as_secs_f64();
        return Ok(outcome);
    }
    let (restored, mut failed) = restore_all(&p, cfg, out, cancel).await;
    let mut deleted = Vec::new();
    if failed.is_empty() && !cancel.is_cancelled() {
        for batch in p.graced.deletes.chunks(crate::s3::writer::DELETE_BATCH) {
            let (d, f, stop) =
                crate::s3::delete::batch(&p.writer, &cfg.prefix, batch, true, out).await;
            deleted.extend(d);
            failed.extend(
                f.into_iter()
                    .map(|(k, m)| (k.map(|k| full(&k)).unwrap_or_default(), m)),
            );
            if stop {
                break;
            }
        }
    }
    outcome.restored = restored.keys().map(|k| full(k)).collect();
    outcome.deleted = deleted.iter().map(|k| full(k)).collect();
    outcome.failed = failed;
    outcome.seconds = start.elapsed().as_secs_f64();
    if outcome.failed.is_empty() && !cancel.is_cancelled() {
        outcome.release = Some(draft(p, cfg, &restored, deleted, &outcome));
    }
    Ok(outcome)
}

/// Everything a rollback decides before it writes.
struct Prepared {
    writer: Writer,
    store: Store,
    loaded: crate::release::store::Loaded,
    release: Release,
    /// The live release's id.
    live: Option<String>,
    manifest: Manifest,
    /// The live objects, with their VersionIds.
    current: Vec<RemoteObject>,
    the_plan: RollbackPlan,
    graced: crate::release::grace::Graced,
    grace: Option<GraceSummary>,
}

/// Every refusal, before anything is written: versioning, the release, its manifest, the
/// versions it needs, the guards. Prints the plan line.
async fn prepare(
    sdk: &SdkConfig,
    cfg: &SyncConfig,
    target: &RollbackTarget,
    dry_run: bool,
    out: &Output,
) -> Result<Prepared, RollbackError> {
    let (writer, versioning) = connect(sdk, cfg, out).await;
    let versioning = versioning.map_err(RollbackError::Refused)?;
    if versioning != Versioning::Enabled {
        return Err(RollbackError::Refused(versioning_refusal(&cfg.bucket)));
    }
    let store = Store {
        writer: writer.clone(),
    };
    let loaded = store.load(&cfg.prefix).await?;
    let release = choose(&loaded.state, target)
        .map_err(|e| RollbackError::Refused(format!("{e}; nothing was changed")))?
        .clone();
    let live = loaded.state.releases.last().map(|r| r.id.clone());
    if !release.versioned {
        return Err(RollbackError::Refused(format!(
            "release {} was recorded while the bucket had no versioning (or it could not be read): it cannot be restored; nothing was changed. Releases deployed with versioning enabled can",
            release.id
        )));
    }
    out.info(format!(
        "Rolling back s3://{}/{} from release {} to release {}{}{}",
        cfg.bucket,
        cfg.prefix,
        live.as_deref().unwrap_or("?"),
        release.id,
        release
            .commit
            .as_deref()
            .map(|c| format!(" (commit {})", c.chars().take(12).collect::<String>()))
            .unwrap_or_default(),
        if dry_run { " (dry run)" } else { "" }
    ));
    let manifest = store.get_manifest(&release.manifest).await?;
    crate::release::validate::manifest(&manifest, &release, writer.scope())
        .map_err(RollbackError::Refused)?;
    copy_settings_allowed(&manifest, &release, cfg).map_err(RollbackError::Refused)?;
    let (current, _, all) = crate::s3::list::list(
        writer.client(),
        writer.scope(),
        ListMode::AllVersions,
        &crate::s3::list::Split::none(),
        out,
    )
    .await?;
    let the_plan = plan(&manifest, &current, &all, &release.id)
        .map_err(|e| RollbackError::Refused(format!("{e}; nothing was changed")))?;
    if the_plan.restores.is_empty() && the_plan.delete_candidates.is_empty() {
        let other = newest_other_content(&store, &loaded.state, &current, &all, &writer).await;
        return Err(RollbackError::Refused(format!(
            "release {} has the live content already: nothing to roll back, nothing was changed. {}",
            release.id,
            match other {
                Some(id) => format!("The newest release with other content is {id}: ROLLBACK={id}"),
                None => "No other recorded release has other content (RELEASES=list shows them)"
                    .to_string(),
            }
        )));
    }
    let now = crate::release::now_secs();
    let graced = crate::release::grace::apply(
        &the_plan.delete_candidates,
        &loaded.state.stale,
        now,
        cfg.releases.grace_secs,
    );
    if let Some(max) = cfg.max_delete
        && graced.deletes.len() as u64 > max
    {
        return Err(crate::sync::plan::GuardError::TooManyDeletes {
            deletes: graced.deletes.len(),
            max,
        }
        .into());
    }
    let grace = cfg.releases.grace_secs.map(|g| GraceSummary {
        grace_seconds: g,
        became_stale: graced.became_stale,
        stale_deleted: graced.stale_deleted,
        stale_waiting: graced.stale.len(),
    });
    out.info(format!(
        "Rollback plan: {} to restore, {} unchanged, {} to delete ({} keys in release {}, {} live objects){}",
        the_plan.restores.len(),
        the_plan.unchanged,
        graced.deletes.len(),
        manifest.objects.len(),
        release.id,
        current.len(),
        grace.as_ref().map(|g| format!("; {}", g.line())).unwrap_or_default()
    ));
    Ok(Prepared {
        writer,
        store,
        loaded,
        release,
        live,
        manifest,
        current,
        the_plan,
        graced,
        grace,
    })
}

/// A restore sets again what the manifest records per header group (ACL, storage class,
/// SSE-KMS): only settings that this step's own settings would give some group are accepted,
/// so that a manifest someone edited cannot make objects public or move them to another key.
fn copy_settings_allowed(m: &Manifest, release: &Release, cfg: &SyncConfig) -> Result<(), String> {
    let groups = crate::sync::headers::groups(&cfg.headers, &cfg.rules);
    let allowed = crate::sync::release_draft::copy_settings(&groups);
    for settings in m.copy.values() {
        if *settings != CopySettings::default() && !allowed.values().any(|a| a == settings) {
            return Err(format!(
                "the manifest of release {} asks its restores to set {}, which this step's settings (ACL, STORAGE_CLASS, SSE, RULES) would not set on any object: nothing was changed. Run the rollback with the settings that release was deployed with",
                release.id,
                describe(settings)
            ));
        }
    }
    Ok(())
}

/// `ACL public-read, storage class GLACIER` for a message.
fn describe(c: &CopySettings) -> String {
    let clip = crate::release::validate::clip;
    [
        c.acl.as_deref().map(|v| format!("ACL {}", clip(v))),
        c.storage_class
            .as_deref()
            .map(|v| format!("storage class {}", clip(v))),
        c.sse
            .as_deref()
            .map(|v| format!("server-side encryption {}", clip(v))),
        c.sse_kms_key_id
            .as_deref()
            .map(|v| format!("KMS key {}", clip(v))),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ")
}

/// The newest recorded release whose content differs from the live objects (at most
/// [`OTHER_CONTENT_LOOKUPS`] manifests read), for a rollback that would change nothing.
async fn newest_other_content(
    store: &Store,
    state: &State,
    current: &[RemoteObject],
    all: &AllVersions,
    writer: &Writer,
) -> Option<String> {
    for r in state.releases.iter().rev().take(OTHER_CONTENT_LOOKUPS) {
        if !r.versioned {
            continue;
        }
        let Ok(m) = store.get_manifest(&r.manifest).await else {
            continue;
        };
        if crate::release::validate::manifest(&m, r, writer.scope()).is_err() {
            continue;
        }
        if let Ok(p) = plan(&m, current, all, &r.id)
            && (!p.restores.is_empty() || !p.delete_candidates.is_empty())
        {
            return Some(r.id.clone());
        }
    }
    None
}

/// Manifests read to name another release when the one asked for has the live content.
const OTHER_CONTENT_LOOKUPS: usize = 20;

/// Restore the non-HTML keys, then the HTML ones once every other key is back. Returns the
/// restored keys (relative) with their new ETag and VersionId, and the failures.
async fn restore_all(
    p: &Prepared,
    cfg: &SyncConfig,
    out: &Output,
    cancel: &Cancel,
) -> (
    BTreeMap<String, (String, Option<String>)>,
    Vec<(String, String)>,
) {
    let full = |rel: &str| format!("{}{rel}", cfg.prefix);
    let (first, html): (Vec<&Restore>, Vec<&Restore>) =
        p.the_plan.restores.iter().partition(|r| !r.html);
    let mut restored: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    let permits = Arc::new(Gate::new(cfg.max_concurrency));
    let writer = match cfg.max_concurrency {
        // The gate learns of throttled attempts from the client's own retries.
        Concurrency::Adaptive { .. } => p
            .writer
            .with_client(paced(p.writer.client(), permits.clone())),
        Concurrency::Fixed(_) => p.writer.clone(),
    };
    let copy = Arc::new(CopyJob {
        writer,
        prefix: cfg.prefix.clone(),
        permits,
    });
    for tier in [first, html] {
        if !failed.is_empty() || cancel.is_cancelled() {
            break;
        }
        let mut set = tokio::task::JoinSet::new();
        for r in tier {
            let e = p.manifest.objects[r.entry].clone();
            let settings = p
                .manifest
                .copy
                .get(&e.fingerprint)
                .cloned()
                .unwrap_or_default();
            let copy = copy.clone();
            set.spawn(async move {
                let res = copy.restore(&e, &settings).await;
                (e.key, res)
            });
        }
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((key, Ok(w))) => {
                    out.line(format!("restore: s3://{}/{}", cfg.bucket, full(&key)));
                    restored.insert(key, w);
                }
                Ok((key, Err(msg))) => {
                    out.error_line(format!(
                        "restore failed: s3://{}/{} {msg}",
                        cfg.bucket,
                        full(&key)
                    ));
                    failed.push((full(&key), msg));
                }
                Err(e) => failed.push((String::new(), format!("internal error: {e}"))),
            }
        }
    }
    (restored, failed)
}

/// The rollback as a release of its own: the restored release's manifest with the new ETags
/// and VersionIds, so that rolling forward again is another rollback.
fn draft(
    p: Prepared,
    cfg: &SyncConfig,
    restored: &BTreeMap<String, (String, Option<String>)>,
    deleted: Vec<String>,
    outcome: &RollbackOutcome,
) -> Draft {
    let mut m = p.manifest;
    for e in &mut m.objects {
        if let Some((etag, version)) = restored.get(&e.key) {
            if !etag.is_empty() {
                e.etag.clone_from(etag);
            }
            if version.is_some() {
                e.version_id.clone_from(version);
            }
        } else if let Ok(j) = p
            .current
            .binary_search_by(|r| r.rel.as_str().cmp(e.key.as_str()))
        {
            e.version_id.clone_from(&p.current[j].version_id);
        }
    }
    let recorded = p.loaded.state.releases.len();
    Draft {
        store: p.store,
        prefix: cfg.prefix.clone(),
        loaded: p.loaded,
        // RELEASE_HISTORY=0 in a rollback step: keep the history as it is (plus this one).
        history: if cfg.releases.history == 0 {
            recorded + 1
        } else {
            cfg.releases.history
        },
        id: cfg.releases.release_id.clone(),
        commit: p.release.commit.clone(),
        kind: "rollback",
        new_release: true,
        rollback_of: Some(p.release.id.clone()),
        manifest: m,
        stale: p.graced.stale,
        deleted: deleted.into_iter().collect(),
        uploaded: outcome.restored.len(),
        reheadered: 0,
        unchanged: outcome.unchanged,
    }
}

/// What every restore shares.
struct CopyJob {
    writer: Writer,
    prefix: String,
    /// The restores in flight (`MAX_CONCURRENCY`, fixed or adaptive).
    permits: Arc<Gate>,
}

impl CopyJob {
    /// CopyObject from the recorded version onto the key: content, Content-Type and the other
    /// headers and metadata come with the copy; the ACL, storage class and SSE-KMS settings the
    /// deploy set are set again. Returns the new ETag and VersionId.
    async fn restore(
        &self,
        e: &Entry,
        settings: &CopySettings,
    ) -> Result<(String, Option<String>), String> {
        let key = format!("{}{}", self.prefix, e.key);
        let version = e.version_id.as_deref().unwrap_or_default();
        let mut req = self
            .writer
            .copy(&key, CopyFrom::Version(version))
            .map_err(|e| e.to_string())?;
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        if let Some(acl) = &settings.acl {
            req = req.acl(acl.as_str().into());
        }
        if let Some(sc) = &settings.storage_class {
            req = req.storage_class(sc.as_str().into());
        }
        if let Some(sse) = &settings.sse {
            req = req.server_side_encryption(sse.as_str().into());
        }
        if let Some(kms) = &settings.sse_kms_key_id {
            req = req.ssekms_key_id(kms);
        }
        match req.send().await {
            Ok(r) => Ok((
                r.copy_object_result()
                    .and_then(|c| c.e_tag())
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string(),
                r.version_id().map(str::to_string),
            )),
            Err(err) => Err(crate::s3::error::explain(
                Op::Copy,
                self.writer.bucket(),
                Some(&key),
                settings.acl.is_some(),
                &err,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, v: Option<&str>) -> Entry {
        Entry {
            key: key.into(),
            etag: "e".into(),
            size: 1,
            fingerprint: "f".into(),
            version_id: v.map(str::to_string),
            content_etag: None,
        }
    }
    fn live(key: &str, v: &str) -> RemoteObject {
        RemoteObject {
            rel: key.into(),
            size: 1,
            etag: "e".into(),
            last_modified: 0,
            version_id: Some(v.into()),
        }
    }
    fn release(id: &str) -> Release {
        Release::for_test(id)
    }

    #[test]
    fn restores_changed_and_missing_keys_html_last_and_deletes_the_rest() {
        let m = Manifest {
            objects: vec![
                entry("a.js", Some("1")),
                entry("index.html", Some("2")),
                entry("same.css", Some("3")),
                entry("gone.png", Some("4")),
            ],
            ..Manifest::default()
        };
        let current = vec![
            live("a.js", "9"),
            live("added.js", "5"),
            live("index.html", "8"),
            live("same.css", "3"),
        ];
        let all: AllVersions = [
            ("a.js", "1"),
            ("index.html", "2"),
            ("same.css", "3"),
            ("gone.png", "4"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = plan(&m, &current, &all, "7").expect("plan");
        let keys: Vec<&str> = p
            .restores
            .iter()
            .map(|r| m.objects[r.entry].key.as_str())
            .collect();
        assert_eq!(keys, vec!["a.js", "gone.png", "index.html"]);
        assert_eq!(p.unchanged, 1);
        assert_eq!(p.delete_candidates, vec!["added.js".to_string()]);
    }

    #[test]
    fn refusals() {
        let all: AllVersions = [("a", "1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let unversioned = Manifest {
            objects: vec![entry("a", None)],
            ..Manifest::default()
        };
        assert!(
            plan(&unversioned, &[], &all, "7")
                .expect_err("refused")
                .contains("without VersionIds")
        );
        let expired = Manifest {
            objects: vec![entry("a", Some("0"))],
            ..Manifest::default()
        };
        assert!(
            plan(&expired, &[], &all, "7")
                .expect_err("refused")
                .contains("no longer exists")
        );
        let mut big = entry("a", Some("1"));
        big.size = COPY_LIMIT + 1;
        let big = Manifest {
            objects: vec![big],
            ..Manifest::default()
        };
        assert!(
            plan(&big, &[], &all, "7")
                .expect_err("refused")
                .contains("5 GiB")
        );
    }

    #[test]
    fn choosing_a_release() {
        let mut s = State::default();
        assert!(
            choose(&s, &RollbackTarget::Previous)
                .expect_err("refused")
                .contains("no release")
        );
        s.releases = vec![release("1")];
        assert!(
            choose(&s, &RollbackTarget::Previous)
                .expect_err("refused")
                .contains("only one")
        );
        s.releases = vec![release("1"), release("2"), release("3")];
        assert_eq!(
            choose(&s, &RollbackTarget::Previous).map(|r| r.id.as_str()),
            Ok("2")
        );
        assert_eq!(
            choose(&s, &RollbackTarget::Id("1".into())).map(|r| r.id.as_str()),
            Ok("1")
        );
        let e = choose(&s, &RollbackTarget::Id("9".into())).expect_err("refused");
        assert!(e.contains("3, 2, 1"), "{e}");
    }
}
