//! Pipe variables: raw strings from the environment, resolved once into a typed [`Config`].
//!
//! Raw, then resolved: [`RawVars`] is what envy reads (every field an optional string), and
//! [`Config::resolve`] validates everything at once, collecting one [`Problem`] per variable so
//! the user sees every mistake in one run. Nothing reads the environment after this module.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde::Deserialize;

use crate::credentials::jwt::Claims;
use crate::sync::compress::Compression;
use crate::sync::filter::{FilterKind, FilterRule, Filters, Pattern};

/// Default number of S3 requests in flight at once.
///
/// Uploads of small files are latency-bound, not bandwidth-bound, so more requests in flight
/// means more throughput until the client's CPU (TLS, signing, hashing) or the server saturates.
/// aws-cli uses 10 and s5cmd 256 workers. Measured with `bench/run` on the 2-core reference
/// machine (BENCHMARKS.md; 16 / 32 / 64 / 128, medians of 5 interleaved runs):
///
/// - 5,000 files of 1–20 KiB behind a 30 ms latency proxy (T3): 10.8 / 5.4 / 2.9 / 1.9 s.
///   Each doubling up to 64 nearly doubles the throughput (2.0×, 1.85×); 128 gains 1.5× more.
/// - The same files on loopback (T1): 1.30 / 1.62 / 1.60 / 1.53 s; one 1 GiB file (T2):
///   6.8 / 6.9 / 6.9 / 6.4 s. With no latency, client and server fill both cores from 16 on
///   and the levels are within the noise. Peak RSS: 15 / 17 / 20 / 27 MB (T1),
///   21 / 28 / 45 / 73 MB (T2).
///
/// 64: at a 30 ms round trip that is about 2,100 requests/s, and it stays under S3's 3,500
/// PUTs/s per prefix down to an 18 ms round trip, where 128 would pass it below 37 ms and turn
/// the gain into 503 SlowDown retries. Raise `MAX_CONCURRENCY` for far-away buckets.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;
/// Upper bound for `MAX_CONCURRENCY`: above this, the pipe would only queue in the HTTP pool.
const MAX_MAX_CONCURRENCY: usize = 1024;
/// STS limits for `DurationSeconds` of AssumeRoleWithWebIdentity.
const MIN_SESSION_DURATION: u32 = 900;
const MAX_SESSION_DURATION: u32 = 43_200;
/// Default STS session length, as the AWS SDKs use.
const DEFAULT_SESSION_DURATION: u32 = 3600;
/// Default cap on the number of paths in one `changed` invalidation before they collapse into
/// wildcards: CloudFront bills paths above 1,000 a month, and allows 15 wildcard paths in flight.
pub const DEFAULT_MAX_INVALIDATION_PATHS: usize = 15;
/// CloudFront accepts at most 3,000 paths in one invalidation.
const MAX_INVALIDATION_PATHS_LIMIT: usize = 3000;
/// Default for `WAIT_TIMEOUT`: CloudFront invalidations usually complete within a few minutes.
const DEFAULT_WAIT_TIMEOUT_SECS: u64 = 600;

/// The ACL values aws-cli's `s3 sync --acl` accepts.
pub const ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
];
/// The storage classes aws-cli's `s3 sync --storage-class` accepts.
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
];
/// Server-side encryption values aws-cli's `--sse` accepts.
const SSE_VALUES: &[&str] = &["AES256", "aws:kms", "aws:kms:dsse"];

/// A value that must never be printed. Its `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The secret itself, for the one place that hands it to AWS.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The pipe variables exactly as the environment gives them. envy fills it; all strings.
#[derive(Debug, Default, Deserialize)]
#[allow(missing_docs)]
pub struct RawVars {
    pub aws_default_region: Option<String>,
    pub aws_region: Option<String>,
    pub aws_oidc_role_arn: Option<String>,
    pub aws_role_session_name: Option<String>,
    pub aws_role_session_duration: Option<String>,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    pub aws_session_token: Option<String>,
    pub bitbucket_step_oidc_token: Option<String>,
    pub bitbucket_repo_slug: Option<String>,
    pub bitbucket_build_number: Option<String>,
    pub bitbucket_pipeline_uuid: Option<String>,
    pub bitbucket_pipe_shared_storage_dir: Option<String>,
    pub s3_bucket: Option<String>,
    pub local_path: Option<String>,
    pub acl: Option<String>,
    pub storage_class: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub content_encoding: Option<String>,
    pub delete_flag: Option<String>,
    pub extra_args: Option<String>,
    pub sync_compare: Option<String>,
    pub max_concurrency: Option<String>,
    pub follow_symlinks: Option<String>,
    pub dry_run: Option<String>,
    pub max_delete: Option<String>,
    pub s3_force_path_style: Option<String>,
    pub distribution_id: Option<String>,
    pub paths: Option<String>,
    pub invalidation_prefix: Option<String>,
    pub max_invalidation_paths: Option<String>,
    pub wait: Option<String>,
    pub wait_timeout: Option<String>,
    pub report_file: Option<String>,
    pub rules: Option<String>,
    pub rules_file: Option<String>,
    pub debug: Option<String>,
    pub no_color: Option<String>,
}

/// The process environment, captured once. Values that are not UTF-8 are kept as an error
/// for the variable, so that a bad byte never panics and is reported like any other mistake.
#[derive(Debug, Default, Clone)]
pub struct Env {
    vars: BTreeMap<String, String>,
    not_utf8: Vec<String>,
}

impl Env {
    /// Capture the current process environment.
    pub fn from_process() -> Self {
        let mut env = Env::default();
        for (k, v) in std::env::vars_os() {
            let Some(key) = k.to_str() else { continue };
            match v.into_string() {
                Ok(v) => {
                    env.vars.insert(key.to_string(), v);
                }
                Err(_) => env.not_utf8.push(key.to_string()),
            }
        }
        env
    }

    /// An environment from pairs (tests).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            not_utf8: Vec::new(),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
}

/// One thing wrong with one variable, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The variable at fault, as the user sets it.
    pub variable: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// One or more variables are wrong; each is listed.
    #[error("{} pipe variable(s) are invalid", .0.len())]
    Invalid(Vec<Problem>),
}

/// Where AWS credentials come from.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// Bitbucket OIDC: trade the step's token with STS AssumeRoleWithWebIdentity.
    Oidc {
        role_arn: String,
        token: Secret,
        claims: Box<Claims>,
        session_name: String,
        duration_secs: u32,
    },
    /// Static access keys from pipe variables.
    AccessKeys {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
    /// The standard AWS chain: profiles, web identity file, container and instance credentials.
    DefaultChain,
}

/// How local files are compared with remote objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompareMode {
    /// Size, then MD5 against the ETag (multipart ETags recomputed). The default.
    Checksum,
    /// aws-cli's default rule: size differs or the local file is newer.
    SizeAndMtime,
    /// aws-cli's `--size-only`.
    SizeOnly,
}

/// Symlink policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymlinkPolicy {
    /// Follow links that stay inside LOCAL_PATH; skip escaping ones with a warning.
    FollowInside,
    /// `FOLLOW_SYMLINKS=true`: follow every link, even outside LOCAL_PATH.
    FollowAll,
    /// `--no-follow-symlinks`: skip every link.
    Never,
}

/// How much the sync prints, as aws-cli's `--only-show-errors` and `--quiet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    OnlyErrors,
    Normal,
}

/// Header settings applied to every uploaded object. Their fingerprint decides when unchanged
/// objects need their headers re-applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderSettings {
    pub acl: Option<String>,
    pub storage_class: Option<String>,
    pub cache_control: Option<String>,
    /// Normalised to an HTTP date.
    pub expires: Option<String>,
    pub content_encoding: Option<String>,
    /// `--content-type`: overrides the guess for every file.
    pub content_type: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub website_redirect: Option<String>,
    /// Guess Content-Type from the extension (off with `--no-guess-mime-type`).
    pub guess_mime: bool,
}

/// A header rule from `RULES` / `RULES_FILE`: the first rule whose pattern matches a file
/// decides its headers; a field the rule does not set falls back to the global settings.
#[derive(Debug, Clone)]
pub struct HeaderRule {
    pub pattern: String,
    pub matcher: Pattern,
    pub cache_control: Option<String>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub acl: Option<String>,
    pub storage_class: Option<String>,
    pub compress: Option<Compression>,
}

/// One rule as written in YAML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    pattern: Option<String>,
    cache_control: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
    acl: Option<String>,
    storage_class: Option<String>,
    compress: Option<String>,
}

/// Parse and validate the rules' YAML: a list of rules. Problems name the rule (1-based).
fn parse_rules(text: &str, var: &str, p: &mut Problems) -> Vec<HeaderRule> {
    let items: Vec<serde_json::Value> = match serde_saphyr::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            p.add(
                var,
                format!("is not a YAML list of rules ({e}): write a list such as \"- pattern: '*.html'\n  cache_control: no-cache\""),
            );
            return Vec::new();
        }
    };
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let n = i + 1;
        let raw: RawRule = match serde_json::from_value(item) {
            Ok(r) => r,
            Err(e) => {
                p.add(
                    var,
                    format!("rule {n}: {e}; allowed fields: pattern, cache_control, content_type, content_encoding, content_disposition, metadata, acl, storage_class, compress"),
                );
                continue;
            }
        };
        let Some(pattern) = raw.pattern.filter(|s| !s.is_empty()) else {
            p.add(
                var,
                format!("rule {n} has no pattern: add pattern: '*.css' (a glob like --include)"),
            );
            continue;
        };
        let matcher = match Pattern::new(&pattern) {
            Ok(m) => m,
            Err(e) => {
                p.add(var, format!("rule {n}: {e}"));
                continue;
            }
        };
        let mut ok = true;
        if let Some(acl) = &raw.acl
            && !ACLS.contains(&acl.as_str())
        {
            p.add(
                var,
                format!("rule {n}: acl {acl:?} is not one of: {}", ACLS.join(", ")),
            );
            ok = false;
        }
        if let Some(sc) = &raw.storage_class
            && !STORAGE_CLASSES.contains(&sc.as_str())
        {
            p.add(
                var,
                format!(
                    "rule {n}: storage_class {sc:?} is not one of: {}",
                    STORAGE_CLASSES.join(", ")
                ),
            );
            ok = false;
        }
        let compress = match raw.compress.as_deref() {
            None => None,
            Some(c) => match Compression::parse(c) {
                Some(c) => Some(c),
                None => {
                    p.add(var, format!("rule {n}: compress {c:?} is not gzip or br"));
                    ok = false;
                    None
                }
            },
        };
        if compress.is_some() && raw.content_encoding.is_some() {
            p.add(var, format!("rule {n} sets both compress and content_encoding: compress sets Content-Encoding itself; remove content_encoding"));
            ok = false;
        }
        if ok {
            rules.push(HeaderRule {
                pattern,
                matcher,
                cache_control: raw.cache_control,
                content_type: raw.content_type,
                content_encoding: raw.content_encoding,
                content_disposition: raw.content_disposition,
                metadata: raw.metadata,
                acl: raw.acl,
                storage_class: raw.storage_class,
                compress,
            });
        }
    }
    rules
}

fn resolve_rules(raw: &RawVars, p: &mut Problems) -> Vec<HeaderRule> {
    match (non_empty(&raw.rules), non_empty(&raw.rules_file)) {
        (Some(_), Some(_)) => {
            p.add("RULES_FILE", "is set together with RULES: use one of them");
            Vec::new()
        }
        (Some(text), None) => parse_rules(text, "RULES", p),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => parse_rules(&text, "RULES_FILE", p),
            Err(e) => {
                p.add("RULES_FILE", format!("{path:?} cannot be read ({e}): give the path of a YAML file in the repository, relative to the clone directory"));
                Vec::new()
            }
        },
        (None, None) => Vec::new(),
    }
}

/// The S3 sync job.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub bucket: String,
    /// Key prefix, empty or ending in `/`.
    pub prefix: String,
    pub local_path: PathBuf,
    /// LOCAL_PATH as the user wrote it, for aws-cli style output lines.
    pub local_display: String,
    pub delete: bool,
    pub compare: CompareMode,
    pub max_concurrency: usize,
    pub symlinks: SymlinkPolicy,
    pub filter_rules: Vec<FilterRule>,
    pub filters: Filters,
    pub headers: HeaderSettings,
    /// Per-pattern header rules, first match wins.
    pub rules: Vec<HeaderRule>,
    pub max_delete: Option<u64>,
    pub force_path_style: bool,
    pub verbosity: Verbosity,
    pub progress: bool,
}

/// Which paths to invalidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathsSpec {
    /// Exactly these paths (already validated; not yet URL-encoded).
    Explicit(Vec<String>),
    /// The keys the sync uploaded, re-headered or deleted.
    Changed,
}

/// The CloudFront invalidation job.
#[derive(Debug, Clone)]
pub struct InvalidationConfig {
    pub distribution_ids: Vec<String>,
    pub paths: PathsSpec,
    /// The CloudFront path that the S3 key prefix maps to; starts and ends with `/`.
    pub invalidation_prefix: String,
    pub max_paths: usize,
    pub wait: bool,
    pub wait_timeout: Duration,
}

/// The validated configuration of one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `AWS_DEFAULT_REGION` or `AWS_REGION`; `None` means: ask the AWS chain.
    pub region: Option<String>,
    pub credentials: CredentialSource,
    pub sync: Option<SyncConfig>,
    pub invalidation: Option<InvalidationConfig>,
    pub dry_run: bool,
    pub debug: bool,
    pub color: bool,
    /// Where to write the JSON report, if anywhere.
    pub report_file: Option<PathBuf>,
    /// Identifies this run for idempotent requests (build number or pipeline UUID).
    pub run_id: Option<String>,
    /// Warnings found while resolving (printed by the caller).
    pub warnings: Vec<String>,
    /// Every secret value, so that output can redact it whatever prints it.
    pub secrets: Vec<String>,
}

impl Config {
    /// The AWS account ID, when the role ARN tells it (for messages naming ARNs).
    pub fn account_hint(&self) -> &str {
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
pub fn parse_bool(value: &str) -> Option<bool> {
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

/// Check an S3 bucket name against AWS's general-purpose bucket naming rules.
pub fn bucket_name_problem(name: &str) -> Option<String> {
    let len = name.len();
    if !(3..=63).contains(&len) {
        return Some(format!(
            "bucket name {name:?} must be 3 to 63 characters long"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return Some(format!(
            "bucket name {name:?} contains {c:?}: use only lower-case letters, digits, dots and hyphens"
        ));
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[len - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Some(format!(
            "bucket name {name:?} must begin and end with a letter or a digit"
        ));
    }
    if name.contains("..") {
        return Some(format!(
            "bucket name {name:?} must not contain two adjacent dots"
        ));
    }
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() == 4 && parts.iter().all(|p| p.parse::<u8>().is_ok()) {
        return Some(format!(
            "bucket name {name:?} must not look like an IP address"
        ));
    }
    if name.starts_with("xn--") || name.starts_with("sthree-") {
        return Some(format!(
            "bucket name {name:?} must not start with \"xn--\" or \"sthree-\""
        ));
    }
    None
}

/// Check an IAM role ARN: `arn:<partition>:iam::<12-digit account>:role/<optional path/>name`.
pub fn role_arn_problem(arn: &str) -> Option<String> {
    let fix = "expected arn:aws:iam::123456789012:role/NAME (copy it from the IAM console)";
    let mut it = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Some(format!("{arn:?} is not an IAM role ARN: {fix}"));
    };
    if !partition.starts_with("aws") {
        return Some(format!(
            "{arn:?} has an unknown partition {partition:?}: {fix}"
        ));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!(
            "{arn:?} has account {account:?}, which is not 12 digits: {fix}"
        ));
    }
    let Some(path_name) = resource.strip_prefix("role/") else {
        return Some(format!(
            "{arn:?} does not name a role (\"role/...\"): {fix}"
        ));
    };
    let name = path_name.rsplit('/').next().unwrap_or("");
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Some(format!(
            "{arn:?} has an invalid role name {name:?}: 1 to 64 of letters, digits and +=,.@_-"
        ));
    }
    None
}

/// `[\w+=,.@-]{2,64}`, the STS RoleSessionName pattern.
fn session_name_ok(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

/// A session name from the repository slug and build number, sanitised to STS's pattern.
fn derived_session_name(slug: Option<&str>, build: Option<&str>) -> String {
    let raw = match (slug, build) {
        (Some(s), Some(b)) => format!("bitbucket-{s}-{b}"),
        (Some(s), None) => format!("bitbucket-{s}"),
        (None, Some(b)) => format!("bitbucket-build-{b}"),
        (None, None) => "s3-deploy-pipe".to_string(),
    };
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.len() < 2 {
        name = "s3-deploy-pipe".to_string();
    }
    name
}

/// Parse EXPIRES-style timestamps: ISO 8601 / RFC 3339, a date alone, or an HTTP date.
/// Returns the HTTP-date form S3 stores.
pub fn parse_expires(value: &str) -> Option<String> {
    let v = value.trim();
    let dt = DateTime::from_str(v, Format::DateTime)
        .or_else(|_| DateTime::from_str(v, Format::HttpDate))
        .or_else(|_| DateTime::from_str(&format!("{v}T00:00:00Z"), Format::DateTime))
        .ok()?;
    dt.fmt(Format::HttpDate).ok()
}

/// Parse aws-cli's `--metadata`: `k=v,k2=v2` or a JSON object.
fn parse_metadata(value: &str) -> Result<BTreeMap<String, String>, String> {
    let v = value.trim();
    if v.starts_with('{') {
        return serde_json::from_str::<BTreeMap<String, String>>(v)
            .map_err(|e| format!("is not a JSON object of strings ({e})"));
    }
    let mut map = BTreeMap::new();
    for pair in v.split(',').filter(|s| !s.is_empty()) {
        let Some((k, val)) = pair.split_once('=') else {
            return Err(format!("{pair:?} is not key=value"));
        };
        if k.is_empty() {
            return Err(format!("{pair:?} has an empty key"));
        }
        map.insert(k.to_ascii_lowercase(), val.to_string());
    }
    Ok(map)
}

/// Settings from EXTRA_ARGS, parsed like aws-cli's argparse: a later flag wins.
#[derive(Default)]
struct ExtraArgs {
    filters: Vec<FilterRule>,
    delete: bool,
    dryrun: bool,
    size_only: bool,
    follow_symlinks: Option<bool>,
    no_guess_mime: bool,
    verbosity: Option<Verbosity>,
    no_progress: bool,
    values: BTreeMap<&'static str, String>,
}

/// Flags of `aws s3 sync` that take a value, and the key we store them under.
const VALUE_FLAGS: &[&str] = &[
    "--exclude",
    "--include",
    "--content-type",
    "--content-disposition",
    "--content-language",
    "--content-encoding",
    "--cache-control",
    "--expires",
    "--acl",
    "--storage-class",
    "--metadata",
    "--sse",
    "--sse-kms-key-id",
    "--website-redirect",
];
const BOOL_FLAGS: &[&str] = &[
    "--delete",
    "--dryrun",
    "--size-only",
    "--exact-timestamps",
    "--follow-symlinks",
    "--no-follow-symlinks",
    "--no-guess-mime-type",
    "--only-show-errors",
    "--quiet",
    "--no-progress",
];

fn parse_extra_args(words: &[String], p: &mut Problems) -> ExtraArgs {
    let mut out = ExtraArgs::default();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (word.as_str(), None),
        };
        if let Some(&bool_flag) = BOOL_FLAGS.iter().find(|f| **f == flag) {
            if inline.is_some() {
                p.add(
                    "EXTRA_ARGS",
                    format!("{flag} takes no value, but got {word:?}: write it alone"),
                );
                continue;
            }
            match bool_flag {
                "--delete" => out.delete = true,
                "--dryrun" => out.dryrun = true,
                "--size-only" => out.size_only = true,
                "--exact-timestamps" => {} // only affects downloads in aws-cli
                "--follow-symlinks" => out.follow_symlinks = Some(true),
                "--no-follow-symlinks" => out.follow_symlinks = Some(false),
                "--no-guess-mime-type" => out.no_guess_mime = true,
                "--only-show-errors" => out.verbosity = Some(Verbosity::OnlyErrors),
                "--quiet" => out.verbosity = Some(Verbosity::Quiet),
                _ => out.no_progress = true,
            }
            continue;
        }
        let Some(&value_flag) = VALUE_FLAGS.iter().find(|f| **f == flag) else {
            let hint = if flag.starts_with('-') {
                format!(
                    "unknown or unsupported flag {flag:?}: supported flags are {} {}",
                    BOOL_FLAGS.join(" "),
                    VALUE_FLAGS.join(" ")
                )
            } else {
                format!(
                    "unexpected word {word:?}: EXTRA_ARGS takes aws s3 sync flags only (quote values that contain spaces)"
                )
            };
            p.add("EXTRA_ARGS", hint);
            continue;
        };
        let value = match inline {
            Some(v) => v,
            None if value_flag == "--sse" && words.get(i).is_none_or(|w| w.starts_with("--")) => {
                // aws-cli: a bare --sse means AES256.
                "AES256".to_string()
            }
            None => match words.get(i) {
                Some(v) => {
                    i += 1;
                    v.clone()
                }
                None => {
                    p.add(
                        "EXTRA_ARGS",
                        format!("{flag} needs a value: write {flag} VALUE"),
                    );
                    continue;
                }
            },
        };
        match value_flag {
            "--exclude" => out.filters.push(FilterRule {
                kind: FilterKind::Exclude,
                pattern: value,
            }),
            "--include" => out.filters.push(FilterRule {
                kind: FilterKind::Include,
                pattern: value,
            }),
            other => {
                out.values.insert(other, value);
            }
        }
    }
    out
}

/// Split `bucket/some/prefix` into the bucket and a prefix that is empty or ends in `/`.
fn split_bucket(value: &str) -> (String, String) {
    let v = value.trim().trim_start_matches("s3://");
    match v.split_once('/') {
        Some((b, rest)) => {
            let rest = rest.trim_matches('/');
            let prefix = if rest.is_empty() {
                String::new()
            } else {
                format!("{rest}/")
            };
            (b.to_string(), prefix)
        }
        None => (v.to_string(), String::new()),
    }
}

/// CloudFront distribution IDs are upper-case letters and digits.
fn distribution_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A CloudFront path: starts with `/`; `*` only as the last character.
fn invalidation_path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!(
            "{path:?} must start with \"/\": write /{}",
            path.trim_start_matches('/')
        ));
    }
    if let Some(pos) = path.find('*')
        && pos != path.len() - 1
    {
        return Some(format!(
            "{path:?} has \"*\" before the end: CloudFront allows a wildcard only as the last character"
        ));
    }
    None
}

impl Config {
    /// Read the raw variables with envy and resolve them.
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
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
    pub fn resolve(raw: RawVars, env: &Env) -> Result<Config, ConfigError> {
        let mut p = Problems::default();
        for key in &env.not_utf8 {
            p.add(key.clone(), "is not valid UTF-8: set it to UTF-8 text");
        }
        let mut warnings = Vec::new();
        let mut secrets = Vec::new();

        let debug = bool_var(&mut p, "DEBUG", &raw.debug, false);
        let color = non_empty(&raw.no_color).is_none();
        let region = non_empty(&raw.aws_default_region)
            .or(non_empty(&raw.aws_region))
            .map(str::to_string);
        if let Some(r) = &region
            && !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            p.add(
                "AWS_DEFAULT_REGION",
                format!("{r:?} is not a region name: use a region code such as eu-west-1"),
            );
        }

        // EXTRA_ARGS: a list variable or one shell-quoted string.
        let extra_words = match list_var(env, &mut p, "EXTRA_ARGS") {
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
        };
        let extra = parse_extra_args(&extra_words, &mut p);

        let dry_run = bool_var(&mut p, "DRY_RUN", &raw.dry_run, false) || extra.dryrun;
        let credentials = resolve_credentials(&raw, &mut p, &mut warnings, &mut secrets);

        let sync = resolve_sync(&raw, &extra, &mut p);
        let invalidation = resolve_invalidation(&raw, env, &mut p, sync.is_some());

        if non_empty(&raw.s3_bucket).is_none()
            && non_empty(&raw.local_path).is_none()
            && non_empty(&raw.distribution_id).is_none()
            && env.get("DISTRIBUTION_ID_COUNT").is_none()
        {
            p.add(
                "S3_BUCKET",
                "nothing to do: set S3_BUCKET and LOCAL_PATH to deploy a folder, and/or DISTRIBUTION_ID to invalidate CloudFront",
            );
        }

        let report_file = non_empty(&raw.bitbucket_pipe_shared_storage_dir)
            .map(|d| Path::new(d).join("s3-deploy-pipe").join("report.json"))
            .or_else(|| non_empty(&raw.report_file).map(PathBuf::from));
        let run_id = non_empty(&raw.bitbucket_build_number)
            .map(|b| format!("build-{b}"))
            .or_else(|| non_empty(&raw.bitbucket_pipeline_uuid).map(str::to_string));

        if !p.0.is_empty() {
            return Err(ConfigError::Invalid(p.0));
        }
        Ok(Config {
            region,
            credentials,
            sync,
            invalidation,
            dry_run,
            debug,
            color,
            report_file,
            run_id,
            warnings,
            secrets,
        })
    }
}

fn resolve_credentials(
    raw: &RawVars,
    p: &mut Problems,
    warnings: &mut Vec<String>,
    secrets: &mut Vec<String>,
) -> CredentialSource {
    let token = non_empty(&raw.bitbucket_step_oidc_token);
    if let Some(t) = token {
        secrets.push(t.to_string());
        // The JWT's segments too, so that no long piece of it can be printed either.
        secrets.extend(t.split('.').filter(|s| s.len() > 16).map(str::to_string));
    }
    let secret_key = non_empty(&raw.aws_secret_access_key);
    let session_token = non_empty(&raw.aws_session_token);
    secrets.extend(secret_key.map(str::to_string));
    secrets.extend(session_token.map(str::to_string));
    let key_id = non_empty(&raw.aws_access_key_id);

    let duration = int_var(
        p,
        "AWS_ROLE_SESSION_DURATION",
        &raw.aws_role_session_duration,
        (MIN_SESSION_DURATION, MAX_SESSION_DURATION),
        "STS accepts 900 to 43200 seconds, and at most the role's maximum session duration",
    )
    .unwrap_or(DEFAULT_SESSION_DURATION);
    let session_name = match non_empty(&raw.aws_role_session_name) {
        Some(n) if session_name_ok(n) => n.to_string(),
        Some(n) => {
            p.add(
                "AWS_ROLE_SESSION_NAME",
                format!(
                    "{n:?} is not a valid session name: use 2 to 64 of letters, digits and _+=,.@-"
                ),
            );
            n.to_string()
        }
        None => derived_session_name(
            non_empty(&raw.bitbucket_repo_slug),
            non_empty(&raw.bitbucket_build_number),
        ),
    };

    let keys = match (key_id, secret_key) {
        (Some(id), Some(secret)) => Some(CredentialSource::AccessKeys {
            access_key_id: id.to_string(),
            secret_access_key: Secret::new(secret.to_string()),
            session_token: session_token.map(|t| Secret::new(t.to_string())),
        }),
        (Some(_), None) => {
            p.add(
                "AWS_SECRET_ACCESS_KEY",
                "is missing while AWS_ACCESS_KEY_ID is set: set both, or neither to use OIDC or the AWS credential chain",
            );
            None
        }
        (None, Some(_)) => {
            p.add(
                "AWS_ACCESS_KEY_ID",
                "is missing while AWS_SECRET_ACCESS_KEY is set: set both, or neither to use OIDC or the AWS credential chain",
            );
            None
        }
        (None, None) => None,
    };

    let Some(role_arn) = non_empty(&raw.aws_oidc_role_arn) else {
        return keys.unwrap_or(CredentialSource::DefaultChain);
    };
    if let Some(problem) = role_arn_problem(role_arn) {
        p.add("AWS_OIDC_ROLE_ARN", problem);
    }
    let Some(token) = token else {
        if let Some(keys) = keys {
            warnings.push(
                "AWS_OIDC_ROLE_ARN is set but BITBUCKET_STEP_OIDC_TOKEN is missing: using AWS_ACCESS_KEY_ID instead. Add \"oidc: true\" to the step to use OIDC.".to_string(),
            );
            return keys;
        }
        p.add(
            "BITBUCKET_STEP_OIDC_TOKEN",
            "is missing while AWS_OIDC_ROLE_ARN is set: add \"oidc: true\" to the step in bitbucket-pipelines.yml",
        );
        return CredentialSource::DefaultChain;
    };
    let claims = match crate::credentials::jwt::decode_claims(token) {
        Ok(c) => c,
        Err(e) => {
            p.add(
                "BITBUCKET_STEP_OIDC_TOKEN",
                format!("is not a JWT ({e}): pass the step's own token, i.e. add \"oidc: true\" to the step and do not set this variable yourself"),
            );
            Claims::default()
        }
    };
    CredentialSource::Oidc {
        role_arn: role_arn.to_string(),
        token: Secret::new(token.to_string()),
        claims: Box::new(claims),
        session_name,
        duration_secs: duration,
    }
}

fn resolve_sync(raw: &RawVars, extra: &ExtraArgs, p: &mut Problems) -> Option<SyncConfig> {
    let bucket_var = non_empty(&raw.s3_bucket);
    let local_var = non_empty(&raw.local_path);
    let (bucket, prefix) = match (bucket_var, local_var) {
        (None, None) => return None,
        (None, Some(_)) => {
            p.add(
                "S3_BUCKET",
                "is missing while LOCAL_PATH is set: set S3_BUCKET to the bucket (or bucket/prefix) to deploy to",
            );
            return None;
        }
        (Some(b), _) => split_bucket(b),
    };
    if let Some(problem) = bucket_name_problem(&bucket) {
        p.add(
            "S3_BUCKET",
            format!("{problem}; write it as bucket or bucket/prefix"),
        );
    }
    let local_path = match local_var {
        None => {
            p.add(
                "LOCAL_PATH",
                "is missing: set it to the folder to deploy, e.g. build or dist",
            );
            PathBuf::new()
        }
        Some(l) => {
            let path = PathBuf::from(l);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => p.add(
                    "LOCAL_PATH",
                    format!("{l:?} is a file, not a folder: set it to the folder to deploy"),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => p.add(
                    "LOCAL_PATH",
                    format!("{l:?} does not exist: build the site first, or fix the path (relative paths start at the clone directory)"),
                ),
                Err(e) => p.add("LOCAL_PATH", format!("{l:?} cannot be read ({e})")),
            }
            path
        }
    };

    let enum_var =
        |p: &mut Problems, name: &str, flag: &str, var: Option<&str>, allowed: &[&str]| {
            let value = extra.values.get(flag).map(String::as_str).or(var)?;
            if allowed.contains(&value) {
                Some(value.to_string())
            } else {
                let source = if extra.values.contains_key(flag) {
                    format!("EXTRA_ARGS {flag}")
                } else {
                    name.to_string()
                };
                p.add(
                    source,
                    format!("{value:?} is not one of: {}", allowed.join(", ")),
                );
                None
            }
        };
    let acl = enum_var(p, "ACL", "--acl", non_empty(&raw.acl), ACLS);
    let storage_class = enum_var(
        p,
        "STORAGE_CLASS",
        "--storage-class",
        non_empty(&raw.storage_class),
        STORAGE_CLASSES,
    );
    let sse = enum_var(p, "EXTRA_ARGS", "--sse", None, SSE_VALUES);
    let expires = match (extra.values.get("--expires"), non_empty(&raw.expires)) {
        (Some(v), _) => parse_expires(v).or_else(|| {
            p.add(
                "EXTRA_ARGS",
                format!("--expires {v:?} is not a date: use ISO 8601 (2030-01-31T00:00:00Z) or an HTTP date"),
            );
            None
        }),
        (None, Some(v)) => parse_expires(v).or_else(|| {
            p.add(
                "EXPIRES",
                format!("{v:?} is not a date: use ISO 8601 (2030-01-31T00:00:00Z) or an HTTP date (Thu, 31 Jan 2030 00:00:00 GMT)"),
            );
            None
        }),
        (None, None) => None,
    };
    let metadata = match extra.values.get("--metadata") {
        None => BTreeMap::new(),
        Some(m) => parse_metadata(m).unwrap_or_else(|e| {
            p.add(
                "EXTRA_ARGS",
                format!("--metadata {e}: write --metadata key=value,key2=value2"),
            );
            BTreeMap::new()
        }),
    };
    let value = |flag: &str, var: Option<&str>| {
        extra
            .values
            .get(flag)
            .cloned()
            .or_else(|| var.map(str::to_string))
    };
    let headers = HeaderSettings {
        acl,
        storage_class,
        cache_control: value("--cache-control", non_empty(&raw.cache_control)),
        expires,
        content_encoding: value("--content-encoding", non_empty(&raw.content_encoding)),
        content_type: value("--content-type", None),
        content_disposition: value("--content-disposition", None),
        content_language: value("--content-language", None),
        metadata,
        sse_kms_key_id: value("--sse-kms-key-id", None),
        website_redirect: value("--website-redirect", None),
        sse,
        guess_mime: !extra.no_guess_mime,
    };
    if headers.sse_kms_key_id.is_some()
        && headers.sse.as_deref() != Some("aws:kms")
        && headers.sse.as_deref() != Some("aws:kms:dsse")
    {
        p.add("EXTRA_ARGS", "--sse-kms-key-id needs --sse aws:kms: add it");
    }

    let compare = if extra.size_only {
        CompareMode::SizeOnly
    } else {
        match non_empty(&raw.sync_compare) {
            None | Some("checksum") => CompareMode::Checksum,
            Some("size-and-mtime") => CompareMode::SizeAndMtime,
            Some("size-only") => CompareMode::SizeOnly,
            Some(other) => {
                p.add(
                    "SYNC_COMPARE",
                    format!(
                        "{other:?} is not a compare mode: use checksum, size-and-mtime or size-only"
                    ),
                );
                CompareMode::Checksum
            }
        }
    };
    let max_concurrency = int_var(
        p,
        "MAX_CONCURRENCY",
        &raw.max_concurrency,
        (1usize, MAX_MAX_CONCURRENCY),
        "the number of S3 requests in flight at once",
    )
    .unwrap_or(DEFAULT_MAX_CONCURRENCY);
    let follow_all = bool_var(p, "FOLLOW_SYMLINKS", &raw.follow_symlinks, false);
    let symlinks = match extra.follow_symlinks {
        Some(false) => SymlinkPolicy::Never,
        _ if follow_all => SymlinkPolicy::FollowAll,
        _ => SymlinkPolicy::FollowInside,
    };
    let delete = bool_var(p, "DELETE_FLAG", &raw.delete_flag, false) || extra.delete;
    let max_delete = int_var(
        p,
        "MAX_DELETE",
        &raw.max_delete,
        (0u64, u64::MAX),
        "the most objects one run may delete",
    );
    let force_path_style = bool_var(p, "S3_FORCE_PATH_STYLE", &raw.s3_force_path_style, false);
    let filters = match Filters::new(&extra.filters) {
        Ok(f) => f,
        Err(e) => {
            p.add(
                "EXTRA_ARGS",
                format!("{e}: fix the --include/--exclude pattern"),
            );
            Filters::default()
        }
    };
    Some(SyncConfig {
        bucket,
        prefix,
        local_display: local_var.unwrap_or_default().to_string(),
        local_path,
        delete,
        compare,
        max_concurrency,
        symlinks,
        filter_rules: extra.filters.clone(),
        filters,
        headers,
        rules: resolve_rules(raw, p),
        max_delete,
        force_path_style,
        verbosity: extra.verbosity.unwrap_or(Verbosity::Normal),
        progress: !extra.no_progress,
    })
}

fn resolve_invalidation(
    raw: &RawVars,
    env: &Env,
    p: &mut Problems,
    syncing: bool,
) -> Option<InvalidationConfig> {
    let ids: Vec<String> = match list_var(env, p, "DISTRIBUTION_ID") {
        Some(list) => list.into_iter().map(|s| s.trim().to_string()).collect(),
        None => non_empty(&raw.distribution_id)?
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    };
    for id in &ids {
        if !distribution_id_ok(id) {
            p.add(
                "DISTRIBUTION_ID",
                format!("{id:?} is not a distribution ID: use the ID from the CloudFront console, upper-case letters and digits such as E2QWRUHEXAMPLE"),
            );
        }
    }
    let path_items = list_var(env, p, "PATHS").or_else(|| {
        non_empty(&raw.paths).map(|s| s.split_whitespace().map(str::to_string).collect())
    });
    let paths = match path_items {
        None if syncing => PathsSpec::Changed,
        None => PathsSpec::Explicit(vec!["/*".to_string()]),
        Some(items) if items.len() == 1 && items[0].trim() == "changed" => {
            if !syncing {
                p.add(
                    "PATHS",
                    "\"changed\" needs a sync in the same run: set S3_BUCKET and LOCAL_PATH, or list the paths",
                );
            }
            PathsSpec::Changed
        }
        Some(items) => {
            if items.is_empty() {
                p.add(
                    "PATHS",
                    "is an empty list: give at least one path, such as /*",
                );
            }
            for item in &items {
                if let Some(problem) = invalidation_path_problem(item) {
                    p.add("PATHS", problem);
                }
            }
            PathsSpec::Explicit(items)
        }
    };
    let invalidation_prefix = match non_empty(&raw.invalidation_prefix) {
        None => "/".to_string(),
        Some(v) if v.starts_with('/') && !v.contains('*') => {
            if v.ends_with('/') {
                v.to_string()
            } else {
                format!("{v}/")
            }
        }
        Some(v) => {
            p.add(
                "INVALIDATION_PREFIX",
                format!(
                    "{v:?} must be a path starting with \"/\" and without \"*\", such as /site/"
                ),
            );
            "/".to_string()
        }
    };
    let max_paths = int_var(
        p,
        "MAX_INVALIDATION_PATHS",
        &raw.max_invalidation_paths,
        (1usize, MAX_INVALIDATION_PATHS_LIMIT),
        "above this many changed paths, they collapse into wildcards",
    )
    .unwrap_or(DEFAULT_MAX_INVALIDATION_PATHS);
    let wait = bool_var(p, "WAIT", &raw.wait, false);
    let wait_timeout = int_var(
        p,
        "WAIT_TIMEOUT",
        &raw.wait_timeout,
        (1u64, 86_400),
        "seconds to wait for the invalidation to complete",
    )
    .unwrap_or(DEFAULT_WAIT_TIMEOUT_SECS);
    Some(InvalidationConfig {
        distribution_ids: ids,
        paths,
        invalidation_prefix,
        max_paths,
        wait,
        wait_timeout: Duration::from_secs(wait_timeout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(pairs: &[(&str, &str)]) -> Result<Config, Vec<Problem>> {
        let env = Env::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)));
        Config::from_env(&env).map_err(|ConfigError::Invalid(p)| p)
    }

    fn problems_for(pairs: &[(&str, &str)]) -> Vec<String> {
        resolve(pairs)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.variable)
            .collect()
    }

    #[test]
    fn booleans() {
        for (v, want) in [
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("1", Some(true)),
            ("False", Some(false)),
            ("0", Some(false)),
            ("yes", None),
            ("", None),
        ] {
            assert_eq!(parse_bool(v), want, "{v}");
        }
    }

    #[test]
    fn nothing_to_do() {
        assert_eq!(problems_for(&[]), vec!["S3_BUCKET"]);
    }

    #[test]
    fn bucket_and_prefix() {
        assert_eq!(split_bucket("b"), ("b".into(), "".into()));
        assert_eq!(split_bucket("b/"), ("b".into(), "".into()));
        assert_eq!(
            split_bucket("b/some/prefix"),
            ("b".into(), "some/prefix/".into())
        );
        assert_eq!(split_bucket("s3://b/p/"), ("b".into(), "p/".into()));
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.example", "a1b2"] {
            assert_eq!(bucket_name_problem(ok), None, "{ok}");
        }
        for bad in [
            "ab",
            "MyBucket",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "a_b",
        ] {
            assert!(bucket_name_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn role_arns() {
        assert_eq!(
            role_arn_problem("arn:aws:iam::123456789012:role/deploy"),
            None
        );
        assert_eq!(
            role_arn_problem("arn:aws-cn:iam::123456789012:role/path/to/deploy"),
            None
        );
        for bad in [
            "deploy",
            "arn:aws:iam::12345:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:role/",
        ] {
            assert!(role_arn_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn session_names() {
        assert_eq!(
            derived_session_name(Some("my repo"), Some("42")),
            "bitbucket-my-repo-42"
        );
        assert_eq!(derived_session_name(None, None), "s3-deploy-pipe");
        assert_eq!(derived_session_name(Some(&"x".repeat(100)), None).len(), 64);
        assert!(session_name_ok("a_b+=,.@-1"));
        assert!(!session_name_ok("a"));
        assert!(!session_name_ok("a b"));
    }

    #[test]
    fn expires_formats() {
        assert_eq!(
            parse_expires("2030-01-31T00:00:00Z").as_deref(),
            Some("Thu, 31 Jan 2030 00:00:00 GMT")
        );
        assert_eq!(
            parse_expires("Thu, 31 Jan 2030 00:00:00 GMT").as_deref(),
            Some("Thu, 31 Jan 2030 00:00:00 GMT")
        );
        assert_eq!(
            parse_expires("2030-01-31").as_deref(),
            Some("Thu, 31 Jan 2030 00:00:00 GMT")
        );
        assert_eq!(parse_expires("next tuesday"), None);
    }

    #[test]
    fn five_invalid_values_all_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().to_str().expect("utf8");
        let mut got = problems_for(&[
            ("S3_BUCKET", "Bad_Bucket"),
            ("LOCAL_PATH", local),
            ("ACL", "world-writable"),
            ("STORAGE_CLASS", "CHEAP"),
            ("DELETE_FLAG", "maybe"),
            ("AWS_ROLE_SESSION_DURATION", "60"),
        ]);
        got.sort();
        assert_eq!(
            got,
            vec![
                "ACL",
                "AWS_ROLE_SESSION_DURATION",
                "DELETE_FLAG",
                "S3_BUCKET",
                "STORAGE_CLASS"
            ]
        );
    }

    #[test]
    fn extra_args_parsed_like_aws_cli() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().to_str().expect("utf8");
        let cfg = resolve(&[
            ("S3_BUCKET", "bucket/p"),
            ("LOCAL_PATH", local),
            ("CACHE_CONTROL", "max-age=1"),
            ("EXTRA_ARGS", "--delete --exclude '*.map' --include=a.map --cache-control 'no-cache' --metadata a=1,B=2 --sse --size-only --quiet"),
        ])
        .expect("valid");
        let sync = cfg.sync.expect("sync");
        assert!(sync.delete);
        assert_eq!(sync.compare, CompareMode::SizeOnly);
        assert_eq!(sync.headers.cache_control.as_deref(), Some("no-cache"));
        assert_eq!(sync.headers.sse.as_deref(), Some("AES256"));
        assert_eq!(
            sync.headers.metadata.get("b").map(String::as_str),
            Some("2")
        );
        assert_eq!(sync.filter_rules.len(), 2);
        assert_eq!(sync.verbosity, Verbosity::Quiet);
        assert_eq!(sync.prefix, "p/");
    }

    #[test]
    fn extra_args_unknown_flag_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().to_str().expect("utf8");
        let errs = resolve(&[
            ("S3_BUCKET", "bucket"),
            ("LOCAL_PATH", local),
            ("EXTRA_ARGS", "--delet"),
        ])
        .expect_err("invalid");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains("--delet"), "{}", errs[0].message);
    }

    #[test]
    fn list_variables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().to_str().expect("utf8");
        let cfg = resolve(&[
            ("S3_BUCKET", "bucket"),
            ("LOCAL_PATH", local),
            ("EXTRA_ARGS_COUNT", "2"),
            ("EXTRA_ARGS_0", "--exclude"),
            ("EXTRA_ARGS_1", "a b/*"),
            ("DISTRIBUTION_ID_COUNT", "2"),
            ("DISTRIBUTION_ID_0", "E1"),
            ("DISTRIBUTION_ID_1", "E2"),
            ("PATHS_COUNT", "1"),
            ("PATHS_0", "/a b.html"),
        ])
        .expect("valid");
        assert_eq!(cfg.sync.expect("sync").filter_rules[0].pattern, "a b/*");
        let inv = cfg.invalidation.expect("inv");
        assert_eq!(inv.distribution_ids, vec!["E1", "E2"]);
        assert_eq!(inv.paths, PathsSpec::Explicit(vec!["/a b.html".into()]));
    }

    #[test]
    fn invalidation_defaults() {
        let only = resolve(&[("DISTRIBUTION_ID", "E1, E2 E3")]).expect("valid");
        let inv = only.invalidation.expect("inv");
        assert_eq!(inv.distribution_ids.len(), 3);
        assert_eq!(inv.paths, PathsSpec::Explicit(vec!["/*".into()]));
        assert_eq!(
            problems_for(&[("DISTRIBUTION_ID", "e1")]),
            vec!["DISTRIBUTION_ID"]
        );
        assert_eq!(
            problems_for(&[("DISTRIBUTION_ID", "E1"), ("PATHS", "index.html /a*b")]),
            vec!["PATHS", "PATHS"]
        );
    }

    #[test]
    fn oidc_without_token() {
        let errs = problems_for(&[
            ("DISTRIBUTION_ID", "E1"),
            ("AWS_OIDC_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
        ]);
        assert_eq!(errs, vec!["BITBUCKET_STEP_OIDC_TOKEN"]);
        let cfg = resolve(&[
            ("DISTRIBUTION_ID", "E1"),
            ("AWS_OIDC_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
        ])
        .expect("falls back to keys");
        assert!(matches!(
            cfg.credentials,
            CredentialSource::AccessKeys { .. }
        ));
        assert_eq!(cfg.warnings.len(), 1);
        assert_eq!(cfg.secrets, vec!["s3cr3t"]);
    }

    #[test]
    fn not_a_jwt() {
        let errs = problems_for(&[
            ("DISTRIBUTION_ID", "E1"),
            ("AWS_OIDC_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
            ("BITBUCKET_STEP_OIDC_TOKEN", "not-a-jwt"),
        ]);
        assert_eq!(errs, vec!["BITBUCKET_STEP_OIDC_TOKEN"]);
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?} {s}"), "*** ***");
    }
}
