//! s3-deploy-pipe: a Bitbucket Pipe that syncs a folder to S3 the way `aws s3 sync` does and
//! invalidates CloudFront, with credentials from Bitbucket OIDC.
//!
//! A deploy is a straight line, one module per stage:
//! `config` → `credentials` → `sync` (scan, list, plan, execute) → `invalidate` → `report`.
//! `output` is the only module that prints.

#![deny(clippy::unwrap_used)]

mod cancel;
mod compress;
pub mod config;
mod credentials;
mod filter;
mod iam;
mod invalidate;
pub mod jwt;
mod network;
mod output;
mod release;
mod report;
mod rollback;
mod s3;
mod summary;
mod sync;

use config::{Config, ConfigError, Env, Job};
use output::{Output, Redactor};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a job failed (AWS refused, an upload failed, …).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad configuration; nothing was touched.
pub const EXIT_CONFIG: u8 = 2;

/// glibc's malloc raises its mmap threshold (up to 32 MiB) each time a large block is freed;
/// from then on buffers of a few MiB (a file compressed in memory, its bytes) come from the
/// heap arenas of the many threads, and their memory stays with the process after they are
/// freed. A fixed threshold of 1 MiB gives every such buffer back when it is freed: for 200
/// files of 15 MiB with `compress: br`, peak RSS went from about 300 MB to about 140 MB at
/// the same speed (BENCHMARKS.md, `bench/memory`). Call once, before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of glibc's allocator; it is called before the
    // runtime starts any thread. A failure (0) leaves glibc's default, which is still correct.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Run the pipe with this environment on a new runtime; returns the exit code.
pub fn main_with_env(env: Env) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("✖ could not start the async runtime: {e}");
            return EXIT_FAILED;
        }
    };
    let code = runtime.block_on(run(env));
    // Do not wait for background hashing when the run ended early (an error, a signal):
    // dropping the runtime would block until every blocking task finished.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

/// Run the pipe; returns the exit code. Every run that gets as far as knowing where the report
/// goes writes it, whatever ends it: a configuration error, STS refusing, a failed listing, a
/// guard, a signal.
pub async fn run(env: Env) -> u8 {
    let redactor = Redactor::default();
    let config = match Config::from_env(&env) {
        Ok(c) => c,
        Err(ConfigError::Invalid(problems)) => {
            let out = Output::new(true, redactor);
            for p in &problems {
                out.fail(p.to_string());
            }
            out.fail(format!(
                "{} pipe variable(s) need fixing; nothing was changed.",
                problems.len()
            ));
            if let Some(path) = config::report_path(&env) {
                let error = problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n");
                let mut ended = Ended::new(EXIT_CONFIG);
                ended.error = Some(error);
                // The secrets are not known without a configuration: the problems name
                // variables and never print credential values.
                write_report(&path, &out, &ended, false);
            }
            return EXIT_CONFIG;
        }
    };
    for s in &config.secrets {
        redactor.add(s.expose());
    }
    output::init_tracing(config.debug, config.color, redactor.clone());
    let out = Output::new(config.color, redactor.clone());
    for w in &config.warnings {
        out.warn(w);
    }
    for n in &config.notes {
        out.info(n);
    }
    let cancel = cancel::Cancel::default();
    {
        let (out, out2) = (out.clone(), out.clone());
        cancel.listen_for_signals(
            EXIT_FAILED,
            move |name| {
                out.warn(format!(
                    "{name} received: stopping. No new uploads start, open multipart uploads are aborted, nothing is deleted"
                ));
            },
            move |name| out2.fail(format!("second {name} received: exiting at once")),
        );
    }
    let mut ended = Ended::new(EXIT_OK);
    if let Err(stop) = stages(&config, &out, &cancel, &mut ended).await {
        ended.stop(&out, stop);
    }
    if let Some(path) = &config.report_file {
        ended.error = ended.error.map(|e| redactor.redact(&e));
        write_report(path, &out, &ended, config.dry_run);
    }
    ended.code
}

/// How a run ended, for the report.
struct Ended {
    code: u8,
    /// The `✖` line of the failure that ended the run early, if one did.
    error: Option<String>,
    sync: Option<sync::SyncOutcome>,
    invalidations: Vec<invalidate::Invalidation>,
    invalidation_skipped: Option<&'static str>,
    release: Option<release::record::Recorded>,
    rollback: Option<rollback::RollbackOutcome>,
}

impl Ended {
    fn new(code: u8) -> Ended {
        Ended {
            code,
            error: None,
            release: None,
            rollback: None,
            sync: None,
            invalidations: Vec::new(),
            invalidation_skipped: None,
        }
    }

    /// End the run with `stop`: print its `✖` line, and keep it for the report.
    fn stop(&mut self, out: &Output, stop: Stop) {
        out.fail(&stop.error);
        self.code = stop.code;
        self.error = Some(stop.error);
    }
}

/// What ended a run early: the exit code and the `✖` line. Each stage returns it as its
/// error; `run` prints it and puts it in the report.
#[derive(Debug)]
struct Stop {
    code: u8,
    error: String,
}

impl Stop {
    fn failed(error: impl ToString) -> Stop {
        Stop {
            code: EXIT_FAILED,
            error: error.to_string(),
        }
    }
}

fn write_report(path: &std::path::Path, out: &Output, ended: &Ended, dry_run: bool) {
    let report = report::Report {
        schema: report::SCHEMA,
        pipe_version: env!("CARGO_PKG_VERSION"),
        success: ended.code == EXIT_OK,
        exit_code: ended.code,
        error: ended.error.as_deref(),
        dry_run,
        sync: ended.sync.as_ref().map(report::SyncReport::from_outcome),
        invalidations: &ended.invalidations,
        invalidation_skipped: ended.invalidation_skipped,
        release: ended.release.as_ref(),
        rollback: ended.rollback.as_ref(),
    };
    match report::write(path, &report) {
        Ok(()) => out.info(format!("Report written to {}", path.display())),
        Err(e) => out.warn(format!(
            "Could not write the report to {}: {e}",
            path.display()
        )),
    }
}

/// Credentials, then the job, then the invalidation: what a run does once configured. What
/// it did goes into `ended` (for the report) as it goes; what ended it early is the error.
async fn stages(
    config: &Config,
    out: &Output,
    cancel: &cancel::Cancel,
    ended: &mut Ended,
) -> Result<(), Stop> {
    let sdk = match cancel.bounded(credentials::resolve(config, out)).await {
        None => return Err(interrupted(out, cancel, ended)),
        Some(Ok(sdk)) => sdk,
        Some(Err(e)) => {
            let code = if e.is_config() {
                EXIT_CONFIG
            } else {
                EXIT_FAILED
            };
            return Err(Stop {
                code,
                error: e.to_string(),
            });
        }
    };
    match &config.job {
        Job::ListReleases(sync_cfg) => list_releases(&sdk, sync_cfg, out, ended).await,
        Job::Rollback(sync_cfg, target) => {
            rollback(&sdk, config, sync_cfg, target, out, cancel, ended).await
        }
        Job::Deploy(sync_cfg) => {
            let failed = deploy(&sdk, config, sync_cfg, out, cancel, ended).await?;
            invalidate_after(&sdk, config, failed, out, cancel, ended).await
        }
        Job::InvalidateOnly => invalidate_after(&sdk, config, false, out, cancel, ended).await,
    }
}

/// The sync, and the release it records: whether the step fails once the invalidation has
/// run.
async fn deploy(
    sdk: &aws_config::SdkConfig,
    config: &Config,
    sync_cfg: &config::SyncConfig,
    out: &Output,
    cancel: &cancel::Cancel,
    ended: &mut Ended,
) -> Result<bool, Stop> {
    let run = cancel
        .bounded(sync::run(sdk, sync_cfg, config.dry_run, out, cancel))
        .await;
    summary::report_open_uploads(out, cancel);
    let Some(run) = run else {
        return Err(interrupted(out, cancel, ended));
    };
    let mut outcome = run.map_err(Stop::failed)?;
    // Skipped files fail the step, but only once everything else is done (the invalidation
    // still runs), as aws-cli's exit code 2 does.
    let skipped_fail = !outcome.skipped.is_empty() && !sync_cfg.allow_skipped_files;
    let mut failed = !outcome.failures.is_empty() || skipped_fail;
    let draft = outcome.release.take();
    // Recorded before the summary and before the invalidation: a failure here fails the step,
    // but the bucket changed, so the invalidation still runs. Its ✖ line comes after the
    // sync's summary, so that the last line says how the step ended.
    let mut not_recorded = None;
    if let Some(draft) = draft.filter(|_| !failed) {
        match cancel
            .bounded(release::record::record(draft, release::now_secs(), out))
            .await
        {
            None => {
                ended.sync = Some(outcome);
                return Err(interrupted(out, cancel, ended));
            }
            Some(Ok(r)) => {
                summary::report_release(out, sync_cfg, &r);
                ended.release = Some(r);
            }
            Some(Err(e)) => {
                let msg = format!("the deploy succeeded but its release was not recorded: {e}");
                not_recorded = Some(msg.clone());
                ended.error = Some(msg);
                failed = true;
            }
        }
    }
    summary::report_sync(out, &outcome, skipped_fail);
    if let Some(msg) = not_recorded {
        out.fail(&msg);
    }
    ended.sync = Some(outcome);
    Ok(failed)
}

/// After a deploy (or with nothing to sync): invalidate what changed, then end with the
/// deploy's failure, if it failed.
async fn invalidate_after(
    sdk: &aws_config::SdkConfig,
    config: &Config,
    failed: bool,
    out: &Output,
    cancel: &cancel::Cancel,
    ended: &mut Ended,
) -> Result<(), Stop> {
    if cancel.is_cancelled() {
        ended.invalidation_skipped = Some("interrupted");
        return Err(Stop::failed(
            "Interrupted: the deploy stopped early; see the summary above. Re-run the step to finish it",
        ));
    }
    // What the sync changed, relative to its prefix. After a partial sync failure the keys
    // that did change are still invalidated, so that a retried step (which will find them
    // unchanged) does not leave stale copies in the cache.
    let changed: Option<Vec<String>> = ended.sync.as_ref().map(|o| {
        o.changed_keys()
            .map(|k| k.strip_prefix(o.prefix.as_str()).unwrap_or(k).to_string())
            .collect()
    });
    invalidate_stage(sdk, config, changed, out, cancel, ended).await?;
    if failed {
        ended.code = EXIT_FAILED;
        if ended.error.is_none() {
            ended.error = Some(summary::sync_failure_summary(ended.sync.as_ref()));
        }
    }
    Ok(())
}

/// `RELEASES=list`: print the recorded releases.
async fn list_releases(
    sdk: &aws_config::SdkConfig,
    cfg: &config::SyncConfig,
    out: &Output,
    ended: &mut Ended,
) -> Result<(), Stop> {
    let (writer, versioning) = rollback::connect(sdk, cfg, out).await;
    let store = release::store::Store { writer };
    let loaded = store.load(&cfg.prefix).await.map_err(Stop::failed)?;
    ended.invalidation_skipped = Some("listing releases");
    let versioning = match versioning {
        Ok(release::Versioning::Enabled) => "enabled",
        Ok(_) => "off: releases cannot be rolled back to until it is enabled",
        Err(_) => "unknown (allow s3:GetBucketVersioning)",
    };
    let target = format!("s3://{}/{}", cfg.bucket, cfg.prefix);
    if loaded.state.releases.is_empty() {
        out.success(format!(
            "No release is recorded for {target} (state: s3://{}/{}); bucket versioning {versioning}. Deploys record releases on a bucket with versioning, with DELETE_GRACE or SSE-KMS objects, or with RELEASE_HISTORY set",
            cfg.bucket, cfg.releases.state_prefix
        ));
        return Ok(());
    }
    for line in release::list::table(&loaded.state) {
        out.line(line);
    }
    let stale = if loaded.state.stale.is_empty() {
        String::new()
    } else {
        format!(
            "; {} stale key(s) waiting for DELETE_GRACE",
            loaded.state.stale.len()
        )
    };
    out.success(format!(
        "{} release(s) recorded for {target} (* is live){stale}; bucket versioning {versioning}",
        loaded.state.releases.len()
    ));
    Ok(())
}

/// `ROLLBACK`: restore a release, record the rollback, invalidate what changed.
async fn rollback(
    sdk: &aws_config::SdkConfig,
    config: &Config,
    cfg: &config::SyncConfig,
    target: &config::RollbackTarget,
    out: &Output,
    cancel: &cancel::Cancel,
    ended: &mut Ended,
) -> Result<(), Stop> {
    let run = cancel
        .bounded(rollback::run(sdk, cfg, target, config.dry_run, out, cancel))
        .await;
    let mut outcome = match run {
        None => return Err(interrupted(out, cancel, ended)),
        Some(Err(e)) => return Err(Stop::failed(e)),
        Some(Ok(o)) => o,
    };
    let target_url = format!("s3://{}/{}", cfg.bucket, cfg.prefix);
    let counts = format!(
        "{} restored, {} unchanged, {} deleted in {:.1} s{}",
        outcome.restored.len(),
        outcome.unchanged,
        outcome.deleted.len(),
        outcome.seconds,
        outcome
            .grace
            .as_ref()
            .map(|g| format!("; {}", g.line()))
            .unwrap_or_default()
    );
    let mut failed = None;
    if !outcome.failed.is_empty() {
        let msg = format!(
            "Rollback of {target_url} to release {} failed: {} operation(s) failed ({}); {counts}. Deletes run only once every restore succeeded; re-run the rollback to finish it",
            outcome.to,
            outcome.failed.len(),
            outcome
                .failed
                .iter()
                .take(5)
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        out.fail(&msg);
        failed = Some(msg);
    } else if outcome.dry_run {
        out.success(format!(
            "Dry run of the rollback of {target_url} to release {}: would have {counts}",
            outcome.to
        ));
    } else {
        out.success(format!(
            "Rolled back {target_url} to release {}: {counts}",
            outcome.to
        ));
    }
    if let Some(draft) = outcome.release.take() {
        match cancel
            .bounded(release::record::record(draft, release::now_secs(), out))
            .await
        {
            None => {
                ended.rollback = Some(outcome);
                return Err(interrupted(out, cancel, ended));
            }
            Some(Ok(r)) => {
                summary::report_release(out, cfg, &r);
                ended.release = Some(r);
            }
            Some(Err(e)) => {
                let msg = format!("the rollback succeeded but was not recorded as a release: {e}");
                out.fail(&msg);
                failed = Some(msg);
            }
        }
    }
    let changed: Vec<String> = outcome
        .changed_rel()
        .into_iter()
        .map(str::to_string)
        .collect();
    ended.rollback = Some(outcome);
    invalidate_stage(sdk, config, Some(changed), out, cancel, ended).await?;
    if let Some(msg) = failed {
        ended.code = EXIT_FAILED;
        ended.error = Some(msg);
    }
    Ok(())
}

/// The CloudFront stage, for the keys that changed (relative to the prefix). False when it
/// ended the run (`ended` then says how).
async fn invalidate_stage(
    sdk: &aws_config::SdkConfig,
    config: &Config,
    changed: Option<Vec<String>>,
    out: &Output,
    cancel: &cancel::Cancel,
    ended: &mut Ended,
) -> Result<(), Stop> {
    if let Some(inv_cfg) = &config.invalidation {
        let changed = changed
            .as_ref()
            .map(|c| c.iter().map(String::as_str).collect::<Vec<_>>());
        match invalidate::paths_for(inv_cfg, changed) {
            None => {
                ended.invalidation_skipped = Some("nothing changed");
                out.success("Nothing changed: no CloudFront invalidation needed");
            }
            Some(paths) => {
                let run_id = config.run_id.clone().unwrap_or_else(local_run_id);
                match cancel
                    .bounded(invalidate::run(
                        sdk,
                        inv_cfg,
                        &paths,
                        &run_id,
                        config.account_hint(),
                        config.dry_run,
                        out,
                    ))
                    .await
                {
                    None => {
                        return Err(Stop::failed(
                            "Interrupted while invalidating CloudFront: re-run the step to finish it",
                        ));
                    }
                    Some(Ok(done)) => ended.invalidations = done,
                    Some(Err(e)) => return Err(Stop::failed(e)),
                }
            }
        }
    }
    Ok(())
}

/// The run was stopped by a signal and what still ran after the grace period was dropped.
fn interrupted(out: &Output, cancel: &cancel::Cancel, ended: &mut Ended) -> Stop {
    summary::report_open_uploads(out, cancel);
    ended.invalidation_skipped = Some("interrupted");
    Stop::failed(format!(
        "Interrupted: requests still running {} s after the signal were dropped. Re-run the step to finish the deploy",
        cancel::SHUTDOWN_GRACE.as_secs()
    ))
}

/// A run identifier outside Bitbucket: unique per run, so invalidations are never conflated.
fn local_run_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("local-{ms}")
}
