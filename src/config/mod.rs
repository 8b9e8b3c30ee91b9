//! Pipe variables: raw strings from the environment, resolved once into a typed [`Config`].
//!
//! Raw, then resolved: [`RawVars`] is what envy reads (every field an optional string), and
//! [`Config::resolve`] validates everything at once, collecting one [`Problem`] per variable so
//! the user sees every mistake in one run. Nothing reads the environment after this module.

//!
//! One file per concern: [`raw`] (what the environment gives), [`extra_args`] (the table of
//! aws-cli flags in `EXTRA_ARGS`) and [`argparse`] (parsing them), [`connection`] (region,
//! endpoint, CA, timeouts), [`rules`] (header settings and `RULES`), and the resolution of each
//! job: [`credentials`], [`sync`], [`invalidation`].

use std::fmt;
use std::path::{Path, PathBuf};

mod argparse;
mod connection;
mod credentials;
mod extra_args;
mod invalidation;
mod raw;
mod releases;
mod rules;
mod sync;

pub(crate) use credentials::CredentialSource;
pub(crate) use invalidation::{InvalidationConfig, PathsSpec};
pub use raw::Env;
pub(crate) use raw::RawVars;
pub(crate) use raw::Secret;
pub(crate) use releases::STATE_DIR;
pub(crate) use releases::{Mode, RollbackTarget};
pub(crate) use rules::{HeaderRule, HeaderSettings};
pub(crate) use sync::{
    CompareMode, Concurrency, S3RequestExtras, SymlinkPolicy, SyncConfig, Verbosity,
};

use argparse::parse_extra_args;
use connection::resolve_connection;
use credentials::resolve_credentials;
use invalidation::resolve_invalidation;
use sync::resolve_sync;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The variable at fault, as the user sets it.
    pub(crate) variable: String,
    /// What is wrong and what to do.
    pub(crate) message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// One or more variables are wrong; each is listed.
    #[error("{} pipe variable(s) are invalid", .0.len())]
    Invalid(Vec<Problem>),
}

/// The validated configuration of one run.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `AWS_DEFAULT_REGION` or `AWS_REGION`; `None` means: ask the AWS chain.
    pub(crate) region: Option<String>,
    pub(crate) credentials: CredentialSource,
    /// What the run does: deploy, invalidate only, roll back, or list the releases.
    pub(crate) job: Job,
    pub(crate) invalidation: Option<InvalidationConfig>,
    pub(crate) dry_run: bool,
    pub(crate) debug: bool,
    pub(crate) color: bool,
    /// Where to write the JSON report, if anywhere.
    pub(crate) report_file: Option<PathBuf>,
    /// Identifies this run for idempotent requests (build number or pipeline UUID).
    pub(crate) run_id: Option<String>,
    /// Warnings found while resolving (printed by the caller).
    pub(crate) warnings: Vec<String>,
    /// Every secret value, so that output can redact it whatever prints it.
    pub(crate) secrets: Vec<Secret>,
    /// `--ca-bundle`: a PEM file of trusted CAs, instead of `SSL_CERT_FILE` / the system's.
    pub(crate) ca_bundle: Option<PathBuf>,
    /// `--profile`: the profile of the AWS configuration files for the default chain.
    pub(crate) profile: Option<String>,
    /// Seconds without data before a request is abandoned and retried; `Some(0)` means none.
    pub(crate) read_timeout: Option<std::time::Duration>,
    /// Seconds to establish a connection; `Some(0)` means none.
    pub(crate) connect_timeout: Option<std::time::Duration>,
    /// `INFO:` lines about accepted settings that have no effect (printed by the caller).
    pub(crate) notes: Vec<String>,
}

/// What a run does, carrying what that needs.
#[derive(Debug, Clone)]
pub(crate) enum Job {
    /// Sync LOCAL_PATH to the bucket (then invalidate, when a distribution is set).
    Deploy(SyncConfig),
    /// No S3_BUCKET: only invalidate CloudFront.
    InvalidateOnly,
    /// `ROLLBACK`: restore the prefix to a recorded release, server-side.
    Rollback(SyncConfig, RollbackTarget),
    /// `RELEASES=list`: print the recorded releases.
    ListReleases(SyncConfig),
}

impl Job {
    #[cfg(test)]
    /// The bucket settings, for every job that has a bucket.
    pub(crate) fn sync(&self) -> Option<&SyncConfig> {
        match self {
            Job::Deploy(s) | Job::Rollback(s, _) | Job::ListReleases(s) => Some(s),
            Job::InvalidateOnly => None,
        }
    }
}

impl Config {
    #[cfg(test)]
    /// The bucket settings, for every job that has a bucket.
    pub(crate) fn sync(&self) -> Option<&SyncConfig> {
        self.job.sync()
    }

    /// The AWS account ID, when the role ARN tells it (for messages naming ARNs).
    pub(crate) fn account_hint(&self) -> &str {
        match &self.credentials {
            CredentialSource::Oidc { role_arn, .. } => {
                role_arn.split(':').nth(4).unwrap_or("ACCOUNT_ID")
            }
            _ => "ACCOUNT_ID",
        }
    }
}

/// Collects problems while resolving.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, variable: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            variable: variable.into(),
            message: message.into(),
        });
    }
}

/// Treat empty and whitespace-only values as unset, as Bitbucket does for empty variables.
fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Parse a pipe boolean: `true`/`false` in any case, or `1`/`0`.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("true") || v == "1" {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") || v == "0" {
        Some(false)
    } else {
        None
    }
}

fn bool_var(p: &mut Problems, name: &str, value: &Option<String>, default: bool) -> bool {
    match non_empty(value) {
        None => default,
        Some(v) => parse_bool(v).unwrap_or_else(|| {
            p.add(
                name,
                format!("{v:?} is not a boolean: use true or false (1 or 0 also work)"),
            );
            default
        }),
    }
}

fn int_var<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
    p: &mut Problems,
    name: &str,
    value: &Option<String>,
    range: (T, T),
    hint: &str,
) -> Option<T> {
    let v = non_empty(value)?;
    match v.parse::<T>() {
        Ok(n) if n >= range.0 && n <= range.1 => Some(n),
        _ => {
            p.add(
                name,
                format!(
                    "{v:?} is not a whole number from {} to {}: {hint}",
                    range.0, range.1
                ),
            );
            None
        }
    }
}

/// Read a list variable: Bitbucket's `NAME_COUNT` + `NAME_0..n` form, if present.
fn list_var(env: &Env, p: &mut Problems, name: &str) -> Option<Vec<String>> {
    let count_key = format!("{name}_COUNT");
    let count = env.get(&count_key)?;
    let Ok(n) = count.trim().parse::<usize>() else {
        p.add(
            count_key,
            format!(
                "{count:?} is not a number: Bitbucket sets it for list variables; leave it unset"
            ),
        );
        return Some(Vec::new());
    };
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        match env.get(&format!("{name}_{i}")) {
            Some(v) => items.push(v.to_string()),
            None => p.add(
                format!("{name}_{i}"),
                format!(
                    "{count_key} is {n} but {name}_{i} is missing: give every item of the list"
                ),
            ),
        }
    }
    Some(items)
}

impl Config {
    /// Read the raw variables with envy and resolve them.
    pub(crate) fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let raw: RawVars = match envy::from_iter(env.vars.clone()) {
            Ok(raw) => raw,
            Err(e) => {
                return Err(ConfigError::Invalid(vec![Problem {
                    variable: "environment".into(),
                    message: format!("could not be read: {e}"),
                }]));
            }
        };
        Config::resolve(raw, env)
    }

    /// Validate the raw variables into a Config, reporting every problem at once.
    ///
    /// The steps run in a fixed order, so the problems are always listed in the same order.
    pub(crate) fn resolve(raw: RawVars, env: &Env) -> Result<Config, ConfigError> {
        let mut p = Problems::default();
        for key in &env.not_utf8 {
            p.add(key.clone(), "is not valid UTF-8: set it to UTF-8 text");
        }
        let mut warnings = Vec::new();
        let color = non_empty(&raw.no_color).is_none();
        let extra = parse_extra_args(&extra_args_words(&raw, env, &mut p), &mut p);
        let mut secrets = extra.secrets.clone();
        reject_atlassian_only(&raw, &mut p);
        let debug = bool_var(&mut p, "DEBUG", &raw.debug, false) || extra.debug;
        let connection = resolve_connection(&raw, env, &extra, &mut p);
        let dry_run = bool_var(&mut p, "DRY_RUN", &raw.dry_run, false) || extra.dryrun;
        let credentials = resolve_credentials(&raw, &mut p, &mut warnings, &mut secrets);
        // aws-cli: --no-sign-request wins over every credential.
        let credentials = if extra.no_sign_request {
            CredentialSource::Anonymous
        } else {
            credentials
        };
        let mut notes = extra.notes.clone();
        let mode = releases::resolve_mode(&raw, &mut p);
        let sync = resolve_sync(&raw, &extra, &mode, &mut p, &mut secrets, &mut notes);
        require_bucket_for_state(&raw, &mode, sync.is_some(), &mut p);
        let invalidation = resolve_invalidation(&raw, env, &mut p, sync.is_some());
        require_something_to_do(&raw, env, &mode, &mut p);
        if !p.0.is_empty() {
            return Err(ConfigError::Invalid(p.0));
        }
        let job = match (mode, sync) {
            (Mode::Deploy, Some(s)) => Job::Deploy(s),
            (Mode::Deploy, None) => Job::InvalidateOnly,
            (Mode::Rollback(target), Some(s)) => Job::Rollback(s, target),
            (Mode::ListReleases, Some(s)) => Job::ListReleases(s),
            // Refused above (`require_bucket_for_state`); said again rather than assumed.
            (_, None) => {
                p.add(
                    "S3_BUCKET",
                    "is required for ROLLBACK and RELEASES: set it to the bucket (and prefix) that was deployed",
                );
                return Err(ConfigError::Invalid(p.0));
            }
        };
        Ok(Config {
            region: connection.region,
            credentials,
            job,
            invalidation,
            dry_run,
            debug,
            color,
            report_file: report_file(&raw),
            run_id: run_id(&raw),
            warnings,
            secrets: secrets.into_iter().map(Secret::new).collect(),
            ca_bundle: connection.ca_bundle,
            profile: connection.profile,
            read_timeout: connection.read_timeout,
            connect_timeout: connection.connect_timeout,
            notes,
        })
    }
}

/// The words of EXTRA_ARGS: a list variable or one shell-quoted string.
fn extra_args_words(raw: &RawVars, env: &Env, p: &mut Problems) -> Vec<String> {
    match list_var(env, p, "EXTRA_ARGS") {
        Some(list) => list,
        None => match non_empty(&raw.extra_args) {
            None => Vec::new(),
            Some(s) => shell_words::split(s).unwrap_or_else(|e| {
                p.add(
                    "EXTRA_ARGS",
                    format!("cannot be split into words ({e}): close every quote"),
                );
                Vec::new()
            }),
        },
    }
}

/// A rollback and the release list read the state of a deployed bucket: they need S3_BUCKET.
fn require_bucket_for_state(raw: &RawVars, mode: &Mode, has_sync: bool, p: &mut Problems) {
    if *mode != Mode::Deploy && !has_sync && non_empty(&raw.s3_bucket).is_none() {
        p.add(
            "S3_BUCKET",
            format!(
                "is missing: {} needs the bucket (or bucket/prefix) that was deployed",
                if *mode == Mode::ListReleases {
                    "RELEASES=list"
                } else {
                    "ROLLBACK"
                }
            ),
        );
    }
}

/// A deploy needs a folder to sync or a distribution to invalidate.
fn require_something_to_do(raw: &RawVars, env: &Env, mode: &Mode, p: &mut Problems) {
    if *mode == Mode::Deploy
        && non_empty(&raw.s3_bucket).is_none()
        && non_empty(&raw.local_path).is_none()
        && non_empty(&raw.distribution_id).is_none()
        && env.get("DISTRIBUTION_ID_COUNT").is_none()
    {
        p.add(
            "S3_BUCKET",
            "nothing to do: set S3_BUCKET and LOCAL_PATH to deploy a folder, and/or DISTRIBUTION_ID to invalidate CloudFront",
        );
    }
}

/// Identifies this run: the build number, else the pipeline UUID.
fn run_id(raw: &RawVars) -> Option<String> {
    non_empty(&raw.bitbucket_build_number)
        .map(|b| format!("build-{b}"))
        .or_else(|| non_empty(&raw.bitbucket_pipeline_uuid).map(str::to_string))
}

/// Variables of the Atlassian pipes that cannot work in this pipe's scratch image.
fn reject_atlassian_only(raw: &RawVars, p: &mut Problems) {
    if let Some(script) = non_empty(&raw.pre_execution_script) {
        p.add(
            "PRE_EXECUTION_SCRIPT",
            format!(
                "{script:?} cannot run here: the pipe's image has no shell. Run it as a script line of the step, before the pipe"
            ),
        );
    }
}

/// Where the JSON report goes: Bitbucket's shared storage, else `REPORT_FILE`.
fn report_file(raw: &RawVars) -> Option<PathBuf> {
    non_empty(&raw.bitbucket_pipe_shared_storage_dir)
        .map(|d| Path::new(d).join("s3-deploy-pipe").join("report.json"))
        .or_else(|| non_empty(&raw.report_file).map(PathBuf::from))
}

/// Where the report goes, read from the environment alone: for a run whose configuration
/// failed, so that a later step still finds a report that says why.
pub(crate) fn report_path(env: &Env) -> Option<PathBuf> {
    let pick = |name: &str| env.vars.get(name).cloned();
    let raw = RawVars {
        bitbucket_pipe_shared_storage_dir: pick("BITBUCKET_PIPE_SHARED_STORAGE_DIR"),
        report_file: pick("REPORT_FILE"),
        ..RawVars::default()
    };
    report_file(&raw)
}

#[cfg(test)]
mod tests;
