//! What a person reads at the end of a run: the sync's and the rollback's closing lines, the
//! release line, the failures named. `output` prints them; `report` is the JSON twin for a
//! later step.

use crate::output::Output;
use crate::{cancel, config, release, sync};

/// The release line after a recorded deploy or rollback.
pub(crate) fn report_release(
    out: &Output,
    cfg: &config::SyncConfig,
    r: &release::record::Recorded,
) {
    if let Some(key) = &r.public_state {
        let dir = key.rsplit_once('/').map_or("", |(d, _)| d);
        out.warn(format!(
            "Anyone can read the release state s3://{}/{key} (an unsigned request was answered): it lists every key, commit and build of the site. Deny s3:GetObject on arn:aws:s3:::{}/{dir}/* to everyone but the deploy role, and keep it out of CloudFront (README: \"Who can read the release state\")",
            cfg.bucket, cfg.bucket
        ));
    }
    let Some(id) = &r.id else {
        return;
    };
    let restorable = if r.versioned {
        format!("roll back to it with ROLLBACK={id}")
    } else {
        "it cannot be rolled back to: the bucket has no versioning (see the README's \"Releases and rollback\")".to_string()
    };
    out.info(format!(
        "Release {id} recorded in s3://{}/{}: {restorable}",
        cfg.bucket, cfg.releases.state_prefix
    ));
}

/// The report's `error` for a sync that ended with failed operations or skipped files (their
/// own `✖` lines were printed by `report_sync`).
pub(crate) fn sync_failure_summary(o: Option<&sync::SyncOutcome>) -> String {
    let Some(o) = o else {
        return "the sync failed".to_string();
    };
    let mut parts = Vec::new();
    if !o.failures.is_empty() {
        parts.push(format!("{} operation(s) failed", o.failures.len()));
    }
    if !o.skipped.is_empty() {
        parts.push(format!(
            "{} file(s) or folder(s) in LOCAL_PATH were skipped",
            o.skipped.len()
        ));
    }
    format!(
        "Sync to s3://{}/{}: {}",
        o.bucket,
        o.prefix,
        parts.join("; ")
    )
}

/// Multipart uploads that could not be aborted: named, with the rule that cleans them up.
pub(crate) fn report_open_uploads(out: &Output, cancel: &cancel::Cancel) {
    let open = cancel.still_open();
    for u in &open {
        out.fail(format!(
            "multipart upload {} of s3://{}/{} could not be aborted: its parts stay stored (and billed) until it is",
            u.upload_id, u.bucket, u.key
        ));
    }
    if let Some(u) = open.first() {
        out.fail(format!(
            "Abort them with `aws s3api abort-multipart-upload --bucket {} --key KEY --upload-id ID`, or add to the bucket a lifecycle rule with an AbortIncompleteMultipartUpload action (DaysAfterInitiation: 1; S3 console > {} > Management > Lifecycle rules), which removes such leftovers by itself",
            u.bucket, u.bucket
        ));
    }
}

/// The sync's closing line: ✔ with the counts, or ✖ naming what failed (and, when
/// `skipped_fail`, the files that were skipped or need attention).
pub(crate) fn report_sync(out: &Output, o: &sync::SyncOutcome, skipped_fail: bool) {
    let mb = o.bytes as f64 / 1_000_000.0;
    let rate = if o.seconds > 0.0 { mb / o.seconds } else { 0.0 };
    let counts = format!(
        "{} uploaded, {} headers re-applied, {} unchanged, {} deleted; {} in {:.1} s ({:.2} MB/s)",
        o.uploaded.len(),
        o.reheadered.len(),
        o.unchanged,
        o.deleted.len(),
        sync::execute::human_bytes(o.bytes),
        o.seconds,
        rate
    );
    let counts = if o.compression_saved > 0 {
        format!(
            "{counts}; compression saved {}",
            sync::execute::human_bytes(o.compression_saved)
        )
    } else {
        counts
    };
    let counts = match &o.grace {
        Some(g) => format!("{counts}; {}", g.line()),
        None => counts,
    };
    let target = format!("s3://{}/{}", o.bucket, o.prefix);
    if !o.failures.is_empty() {
        let names: Vec<&str> = o
            .failures
            .iter()
            .take(5)
            .map(|(k, _)| k.as_deref().unwrap_or("an internal error"))
            .collect();
        let more = if o.failures.len() > 5 { ", …" } else { "" };
        out.fail(format!(
            "Sync to {target} failed: {} operation(s) failed ({}{more}); {counts}",
            o.failures.len(),
            names.join(", ")
        ));
        if o.html_held_back > 0 {
            out.fail(format!(
                "{} HTML upload(s) held back, so that no page refers to an asset that failed to upload",
                o.html_held_back
            ));
        }
        if o.reheaders_held_back > 0 {
            out.fail(format!(
                "{} header update(s) held back until the others succeed: the next run re-applies them",
                o.reheaders_held_back
            ));
        }
        if o.deletes_held_back > 0 {
            out.fail(format!(
                "{} delete(s) not done: nothing is deleted unless every upload succeeded",
                o.deletes_held_back
            ));
        }
    }
    if skipped_fail {
        let names: Vec<&str> = o.skipped.iter().take(5).map(|s| s.path.as_str()).collect();
        let more = if o.skipped.len() > 5 { ", …" } else { "" };
        out.fail(format!(
            "{}: {} file(s) or folder(s) in LOCAL_PATH were skipped or need attention ({}{more}; see the warnings above): make them readable regular files with a valid time, leave them out with EXTRA_ARGS --exclude, or set ALLOW_SKIPPED_FILES=true to let the step succeed anyway; {counts}",
            if o.dry_run {
                format!("Dry run of {target}")
            } else {
                format!("Sync to {target}")
            },
            o.skipped.len(),
            names.join(", ")
        ));
    } else if o.failures.is_empty() {
        if o.dry_run {
            out.success(format!(
                "Dry run of {target}: would have {counts}{}",
                skipped_note(o)
            ));
        } else {
            out.success(format!("Synced to {target}: {counts}{}", skipped_note(o)));
        }
    }
}

/// `; 2 file(s) skipped (ALLOW_SKIPPED_FILES)` when skipped files were allowed.
fn skipped_note(o: &sync::SyncOutcome) -> String {
    if o.skipped.is_empty() {
        String::new()
    } else {
        format!(
            "; {} file(s) skipped (ALLOW_SKIPPED_FILES)",
            o.skipped.len()
        )
    }
}
