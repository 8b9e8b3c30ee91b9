//! Pipe variables: raw strings from the environment, resolved once into a typed [`Config`].
//!
//! Raw, then resolved: [`RawVars`] is what envy reads (every field an optional string), and
//! [`Config::resolve`] validates everything at once, collecting one [`Problem`] per variable so
//! the user sees every mistake in one run. Nothing reads the environment after this module.

//!
//! One file per concern: [`raw`] (what the environment gives), [`extra_args`] (aws-cli flags in
//! `EXTRA_ARGS`), [`rules`] (header settings and `RULES`), and the resolution of each job:
//! [`credentials`], [`sync`], [`invalidation`].

use std::fmt;
use std::path::{Path, PathBuf};

mod credentials;
mod extra_args;
mod invalidation;
mod raw;
mod releases;
mod rules;
mod sync;

pub use credentials::{CredentialSource, role_arn_problem};
pub use invalidation::{DEFAULT_MAX_INVALIDATION_PATHS, InvalidationConfig, PathsSpec};
pub use raw::{Env, RawVars, Secret};
pub use releases::{
    DEFAULT_RELEASE_HISTORY, Mode, ReleaseConfig, RollbackTarget, STATE_DIR, parse_duration,
};
pub use rules::{ACLS, HeaderRule, HeaderSettings, STORAGE_CLASSES, parse_expires};
pub use sync::{
    CompareMode, DEFAULT_MAX_CONCURRENCY, S3RequestExtras, SseCustomerKey, SymlinkPolicy,
    SyncConfig, Verbosity, bucket_name_problem,
};

use credentials::resolve_credentials;
use extra_args::parse_extra_args;
use invalidation::resolve_invalidation;
use sync::resolve_sync;

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

/// The validated configuration of one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `AWS_DEFAULT_REGION` or `AWS_REGION`; `None` means: ask the AWS chain.
    pub region: Option<String>,
    pub credentials: CredentialSource,
    pub sync: Option<SyncConfig>,
    /// Deploy (the default), roll back, or list the releases.
    pub mode: Mode,
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
    pub secrets: Vec<Secret>,
    /// `--ca-bundle`: a PEM file of trusted CAs, instead of `SSL_CERT_FILE` / the system's.
    pub ca_bundle: Option<PathBuf>,
    /// `--profile`: the profile of the AWS configuration files for the default chain.
    pub profile: Option<String>,
    /// Seconds without data before a request is abandoned and retried; `Some(0)` means none.
    pub read_timeout: Option<std::time::Duration>,
    /// Seconds to establish a connection; `Some(0)` means none.
    pub connect_timeout: Option<std::time::Duration>,
    /// `INFO:` lines about accepted settings that have no effect (printed by the caller).
    pub notes: Vec<String>,
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

        let color = non_empty(&raw.no_color).is_none();
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
        secrets.extend(extra.secrets.iter().cloned());
        reject_atlassian_only(&raw, &mut p);

        let debug = bool_var(&mut p, "DEBUG", &raw.debug, false) || extra.debug;
        // `--region` wins over AWS_DEFAULT_REGION, as in aws-cli.
        let (region_var, region) = match extra.values.get("--region") {
            Some(r) => ("EXTRA_ARGS --region", Some(r.clone())),
            None => (
                "AWS_DEFAULT_REGION",
                non_empty(&raw.aws_default_region)
                    .or(non_empty(&raw.aws_region))
                    .map(str::to_string),
            ),
        };
        if let Some(r) = &region
            && !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            p.add(
                region_var,
                format!("{r:?} is not a region name: use a region code such as eu-west-1"),
            );
        }
        if let Some(u) = extra.values.get("--endpoint-url")
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            p.add(
                "EXTRA_ARGS --endpoint-url",
                format!(
                    "{u:?} is not a URL: write it with its scheme, e.g. https://s3.example.com"
                ),
            );
        }
        let ca_bundle = extra.values.get("--ca-bundle").map(PathBuf::from);
        if let Some(path) = &ca_bundle
            && !path.is_file()
        {
            p.add(
                "EXTRA_ARGS --ca-bundle",
                format!(
                    "{} is not a readable file: mount the PEM bundle into the step and name it here (or set SSL_CERT_FILE)",
                    path.display()
                ),
            );
        }
        let profile = extra.values.get("--profile").cloned();
        // rustls-native-certs reads SSL_CERT_FILE when the first HTTPS client is built; a path
        // that is not a file panics there (a debug assertion of aws-smithy-http-client) or
        // leaves no trusted CA at all. Say so before anything starts.
        // (`--ca-bundle` replaces the trust store: SSL_CERT_FILE is then not read.)
        if let Some(path) = env.get("SSL_CERT_FILE").filter(|p| !p.trim().is_empty())
            && ca_bundle.is_none()
            && !Path::new(path).is_file()
        {
            p.add(
                "SSL_CERT_FILE",
                format!(
                    "{path} is not a readable file: mount the PEM bundle of your CA into the step and name its path, or unset SSL_CERT_FILE to trust the public CAs"
                ),
            );
        }
        // `--cli-read-timeout` / `--cli-connect-timeout` win over READ_TIMEOUT /
        // CONNECT_TIMEOUT, as `--region` wins over AWS_DEFAULT_REGION. Seconds; 0: none.
        let timeout = |p: &mut Problems, flag: &str, var: &str, value: &Option<String>| {
            let (name, v) = match extra.values.get(flag) {
                Some(v) => (format!("EXTRA_ARGS {flag}"), v.as_str()),
                None => (var.to_string(), non_empty(value)?),
            };
            match v.trim().parse::<u64>() {
                Ok(secs) => Some(std::time::Duration::from_secs(secs)),
                Err(_) => {
                    let example = if name == var {
                        format!("{var}: \"60\"")
                    } else {
                        format!("{flag} 60")
                    };
                    p.add(
                        name,
                        format!("{v:?} is not a whole number of seconds: write e.g. {example} (0 means no timeout)"),
                    );
                    None
                }
            }
        };
        let read_timeout = timeout(
            &mut p,
            "--cli-read-timeout",
            "READ_TIMEOUT",
            &raw.read_timeout,
        );
        let connect_timeout = timeout(
            &mut p,
            "--cli-connect-timeout",
            "CONNECT_TIMEOUT",
            &raw.connect_timeout,
        );

        let dry_run = bool_var(&mut p, "DRY_RUN", &raw.dry_run, false) || extra.dryrun;
        let mut credentials = resolve_credentials(&raw, &mut p, &mut warnings, &mut secrets);
        if extra.no_sign_request {
            // aws-cli: --no-sign-request wins over every credential.
            credentials = CredentialSource::Anonymous;
        }

        let mut notes = extra.notes.clone();
        let mode = releases::resolve_mode(&raw, &mut p);
        let sync = resolve_sync(&raw, &extra, &mode, &mut p, &mut secrets, &mut notes);
        if mode != Mode::Deploy && sync.is_none() && non_empty(&raw.s3_bucket).is_none() {
            p.add(
                "S3_BUCKET",
                format!(
                    "is missing: {} needs the bucket (or bucket/prefix) that was deployed",
                    if mode == Mode::ListReleases {
                        "RELEASES=list"
                    } else {
                        "ROLLBACK"
                    }
                ),
            );
        }
        let invalidation = resolve_invalidation(&raw, env, &mut p, sync.is_some());

        if mode == Mode::Deploy
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

        let report_file = report_file(&raw);
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
            mode,
            invalidation,
            dry_run,
            debug,
            color,
            report_file,
            run_id,
            warnings,
            secrets: secrets.into_iter().map(Secret::new).collect(),
            ca_bundle,
            profile,
            read_timeout,
            connect_timeout,
            notes,
        })
    }
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
pub fn report_path(env: &Env) -> Option<PathBuf> {
    let pick = |name: &str| env.vars.get(name).cloned();
    let raw = RawVars {
        bitbucket_pipe_shared_storage_dir: pick("BITBUCKET_PIPE_SHARED_STORAGE_DIR"),
        report_file: pick("REPORT_FILE"),
        ..RawVars::default()
    };
    report_file(&raw)
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

    /// Every pipe variable, read from `RawVars` itself, so a new variable is covered at once.
    fn every_variable() -> Vec<String> {
        include_str!("raw.rs")
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub "))
            .filter_map(|l| l.strip_suffix(": Option<String>,"))
            .map(str::to_ascii_uppercase)
            .collect()
    }

    /// No value of any variable makes configuration panic: arbitrary Unicode, control
    /// characters, huge and empty values, one to four variables at a time on top of a valid
    /// configuration. A fixed seed and a bounded number of cases, so CI runs the same cases.
    #[test]
    fn no_value_of_any_variable_panics() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
        let names = every_variable();
        assert!(names.len() > 40, "variables found in raw.rs: {names:?}");
        let value = prop_oneof![
            any::<String>(),
            "\\PC{0,40}",
            "[ -~]{0,40}",
            Just(String::new()),
            (any::<char>(), 1usize..200_000).prop_map(|(c, n)| c.to_string().repeat(n)),
            Just("AKI\u{200b}EXAMPLE".to_string()),
        ];
        let vars = proptest::collection::vec((0..names.len(), value), 1..=4);
        let mut runner = TestRunner::new_with_rng(
            RunnerConfig {
                cases: 512,
                failure_persistence: None,
                ..RunnerConfig::default()
            },
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        );
        runner
            .run(&vars, |picked| {
                let mut pairs: std::collections::BTreeMap<String, String> = [
                    ("S3_BUCKET", "bkt"),
                    ("LOCAL_PATH", "."),
                    ("AWS_DEFAULT_REGION", "us-east-1"),
                    ("DISTRIBUTION_ID", "E123"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
                for (i, v) in picked {
                    pairs.insert(names[i].clone(), v);
                }
                // Ok or a list of problems, each naming a variable: never a panic.
                if let Err(ConfigError::Invalid(problems)) =
                    Config::from_env(&Env::from_pairs(pairs))
                {
                    prop_assert!(!problems.is_empty());
                    for p in problems {
                        prop_assert!(!p.variable.is_empty());
                    }
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
            .expect("configuration survives every value");
    }

    #[test]
    fn debug_output_of_the_configuration_shows_no_secret() {
        let cfg = resolve(&[
            ("S3_BUCKET", "bkt"),
            ("LOCAL_PATH", "."),
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY",
            ),
            ("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"),
        ])
        .expect("valid");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(!shown.contains("FwoGZXIvYXdz"), "{shown}");
        assert_eq!(cfg.secrets.len(), 2);
    }

    #[test]
    fn path_style_follows_the_endpoint_unless_set() {
        let path_style = |extra: &[(&str, &str)]| {
            let mut v = vec![("S3_BUCKET", "bkt"), ("LOCAL_PATH", ".")];
            v.extend_from_slice(extra);
            resolve(&v).expect("valid").sync.map(|s| s.force_path_style)
        };
        assert_eq!(path_style(&[]), Some(false), "AWS: virtual-hosted");
        for endpoint in [
            "http://localhost:9000",
            "http://minio:9000/",
            "https://storage.example.com",
            "http://127.0.0.1:5000",
        ] {
            assert_eq!(
                path_style(&[("AWS_ENDPOINT_URL", endpoint)]),
                Some(true),
                "{endpoint}"
            );
        }
        for endpoint in [
            "https://s3.eu-west-1.amazonaws.com",
            "https://s3.cn-north-1.amazonaws.com.cn",
            "https://s3.dualstack.us-east-1.api.aws",
            "https://bucket.vpce-1a2b.s3.us-east-1.vpce.amazonaws.com:443/",
        ] {
            assert_eq!(
                path_style(&[("AWS_ENDPOINT_URL", endpoint)]),
                Some(false),
                "{endpoint}"
            );
        }
        assert_eq!(
            path_style(&[("AWS_ENDPOINT_URL_S3", "http://minio:9000")]),
            Some(true)
        );
        assert_eq!(
            path_style(&[("EXTRA_ARGS", "--endpoint-url http://minio:9000")]),
            Some(true),
            "the aws-cli flag counts too"
        );
        assert_eq!(
            path_style(&[
                ("AWS_ENDPOINT_URL", "http://localhost:9000"),
                ("S3_FORCE_PATH_STYLE", "false")
            ]),
            Some(false),
            "an explicit setting wins"
        );
        assert_eq!(path_style(&[("S3_FORCE_PATH_STYLE", "true")]), Some(true));
        assert_eq!(
            problems_for(&[
                ("S3_BUCKET", "bkt"),
                ("LOCAL_PATH", "."),
                ("S3_FORCE_PATH_STYLE", "sometimes")
            ]),
            vec!["S3_FORCE_PATH_STYLE"]
        );
    }

    #[test]
    fn timeouts_from_variables_and_flags() {
        let base = [("S3_BUCKET", "bkt"), ("LOCAL_PATH", ".")];
        let with = |extra: &[(&str, &str)]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            resolve(&v)
        };
        let cfg = with(&[("READ_TIMEOUT", "5"), ("CONNECT_TIMEOUT", "0")]).expect("valid");
        assert_eq!(cfg.read_timeout, Some(std::time::Duration::from_secs(5)));
        assert_eq!(cfg.connect_timeout, Some(std::time::Duration::ZERO));
        let cfg = with(&[
            ("READ_TIMEOUT", "5"),
            ("EXTRA_ARGS", "--cli-read-timeout 7"),
        ])
        .expect("valid");
        assert_eq!(
            cfg.read_timeout,
            Some(std::time::Duration::from_secs(7)),
            "the aws-cli flag wins, as --region does"
        );
        let cfg = with(&[]).expect("valid");
        assert_eq!((cfg.read_timeout, cfg.connect_timeout), (None, None));
        for (var, value) in [
            ("READ_TIMEOUT", "30s"),
            ("CONNECT_TIMEOUT", "-1"),
            ("READ_TIMEOUT", "soon"),
        ] {
            let problems = with(&[(var, value)]).err().unwrap_or_default();
            assert_eq!(problems.len(), 1, "{var}={value}");
            assert_eq!(problems[0].variable, var);
            assert!(problems[0].message.contains("0 means no timeout"));
        }
        let problems = with(&[("SSL_CERT_FILE", "/no/such/ca.pem")])
            .err()
            .unwrap_or_default();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].variable, "SSL_CERT_FILE");
        assert!(
            problems[0]
                .message
                .contains("/no/such/ca.pem is not a readable file")
        );
    }

    #[test]
    fn nothing_to_do() {
        assert_eq!(problems_for(&[]), vec!["S3_BUCKET"]);
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
            ("EXTRA_ARGS", "--delte"),
        ])
        .expect_err("invalid");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains("--delte"), "{}", errs[0].message);
    }

    #[test]
    fn extra_args_global_options_and_request_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().to_str().expect("utf8");
        let base = [("S3_BUCKET", "bucket"), ("LOCAL_PATH", local)];
        let with = |extra: &str| {
            let mut v = base.to_vec();
            v.push(("AWS_DEFAULT_REGION", "eu-west-1"));
            v.push(("EXTRA_ARGS", extra));
            resolve(&v)
        };
        let cfg = with("--region us-east-2 --debug --cli-read-timeout 0 --cli-connect-timeout=7 --profile ci --no-sign-request --page-size 2 --request-payer --grants read=id=a full=id=b read=id=c --checksum-algorithm SHA256 --expires 90 --sse-c --sse-c-key 0123456789abcdef0123456789abcdef").expect("valid");
        assert_eq!(cfg.region.as_deref(), Some("us-east-2"), "--region wins");
        assert!(cfg.debug);
        assert_eq!(cfg.read_timeout, Some(std::time::Duration::ZERO));
        assert_eq!(cfg.connect_timeout, Some(std::time::Duration::from_secs(7)));
        assert_eq!(cfg.profile.as_deref(), Some("ci"));
        assert!(matches!(cfg.credentials, CredentialSource::Anonymous));
        assert!(
            cfg.secrets
                .iter()
                .any(|s| s.expose() == "0123456789abcdef0123456789abcdef")
        );
        let sync = cfg.sync.expect("sync");
        let x = &sync.request_extras;
        assert_eq!(x.page_size, Some(2));
        assert!(x.request_payer);
        assert_eq!(
            x.grants,
            vec![
                ("x-amz-grant-full-control", "id=b".to_string()),
                ("x-amz-grant-read", "id=c".to_string())
            ],
            "one value per permission, the last"
        );
        assert_eq!(x.checksum_algorithm.as_deref(), Some("SHA256"));
        assert!(x.sse_c.is_some());
        assert_eq!(
            sync.compare,
            CompareMode::SizeAndMtime,
            "SSE-C ETags are not MD5s"
        );
        assert_eq!(
            sync.headers.expires.as_deref(),
            Some("Thu, 01 Jan 1970 00:01:30 GMT"),
            "botocore reads a number as seconds since 1970"
        );
        for (bad, var) in [
            ("--page-size 0", "EXTRA_ARGS --page-size"),
            ("--page-size 1001", "EXTRA_ARGS --page-size"),
            ("--grants write=id=a", "EXTRA_ARGS --grants"),
            (
                "--checksum-algorithm SHA512",
                "EXTRA_ARGS --checksum-algorithm",
            ),
            ("--sse-c", "EXTRA_ARGS --sse-c"),
            (
                "--sse-c-key 0123456789abcdef0123456789abcdef",
                "EXTRA_ARGS --sse-c-key",
            ),
            ("--sse-c --sse-c-key short", "EXTRA_ARGS --sse-c-key"),
            ("--cli-read-timeout soon", "EXTRA_ARGS --cli-read-timeout"),
            ("--endpoint-url localhost:9000", "EXTRA_ARGS --endpoint-url"),
            ("--ca-bundle /nonexistent/ca.pem", "EXTRA_ARGS --ca-bundle"),
            ("--region 'eu west'", "EXTRA_ARGS --region"),
        ] {
            let errs = with(bad).expect_err(bad);
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
            assert_eq!(errs[0].variable, var, "{bad}");
            assert!(
                !errs[0].message.contains("short"),
                "{bad}: the key is never printed"
            );
        }
        let mut v = base.to_vec();
        v.push(("PRE_EXECUTION_SCRIPT", "setup.sh"));
        assert_eq!(problems_for(&v), vec!["PRE_EXECUTION_SCRIPT"]);
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
        assert_eq!(cfg.secrets, vec![Secret::new("s3cr3t".into())]);
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
