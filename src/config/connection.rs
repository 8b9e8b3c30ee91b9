//! How the pipe reaches AWS: region, endpoint, trusted CAs, profile and timeouts.
//!
//! The aws-cli global flags in `EXTRA_ARGS` win over the pipe variables, as in aws-cli.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::argparse::ExtraArgs;
use super::{Env, Problems, RawVars, non_empty};

/// The connection settings of one run (copied into [`super::Config`]).
pub(super) struct Connection {
    pub(super) region: Option<String>,
    pub(super) ca_bundle: Option<PathBuf>,
    pub(super) profile: Option<String>,
    pub(super) read_timeout: Option<Duration>,
    pub(super) connect_timeout: Option<Duration>,
}

/// Resolve the connection settings, reporting problems in this order: region, endpoint,
/// CA bundle, `SSL_CERT_FILE`, read timeout, connect timeout.
pub(super) fn resolve_connection(
    raw: &RawVars,
    env: &Env,
    extra: &ExtraArgs,
    p: &mut Problems,
) -> Connection {
    let region = resolve_region(raw, extra, p);
    check_endpoint_url(extra, p);
    let ca_bundle = resolve_ca_bundle(extra, p);
    let profile = extra.values.get("--profile").cloned();
    check_ssl_cert_file(env, ca_bundle.is_some(), p);
    let read_timeout = resolve_timeout(
        extra,
        p,
        "--cli-read-timeout",
        "READ_TIMEOUT",
        &raw.read_timeout,
    );
    let connect_timeout = resolve_timeout(
        extra,
        p,
        "--cli-connect-timeout",
        "CONNECT_TIMEOUT",
        &raw.connect_timeout,
    );
    Connection {
        region,
        ca_bundle,
        profile,
        read_timeout,
        connect_timeout,
    }
}

/// `--region` wins over AWS_DEFAULT_REGION, as in aws-cli.
fn resolve_region(raw: &RawVars, extra: &ExtraArgs, p: &mut Problems) -> Option<String> {
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
    region
}

fn check_endpoint_url(extra: &ExtraArgs, p: &mut Problems) {
    if let Some(u) = extra.values.get("--endpoint-url")
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        p.add(
            "EXTRA_ARGS --endpoint-url",
            format!("{u:?} is not a URL: write it with its scheme, e.g. https://s3.example.com"),
        );
    }
}

fn resolve_ca_bundle(extra: &ExtraArgs, p: &mut Problems) -> Option<PathBuf> {
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
    ca_bundle
}

/// rustls-native-certs reads SSL_CERT_FILE when the first HTTPS client is built; a path
/// that is not a file panics there (a debug assertion of aws-smithy-http-client) or
/// leaves no trusted CA at all. Say so before anything starts.
/// (`--ca-bundle` replaces the trust store: SSL_CERT_FILE is then not read.)
fn check_ssl_cert_file(env: &Env, has_ca_bundle: bool, p: &mut Problems) {
    if let Some(path) = env.get("SSL_CERT_FILE").filter(|p| !p.trim().is_empty())
        && !has_ca_bundle
        && !Path::new(path).is_file()
    {
        p.add(
            "SSL_CERT_FILE",
            format!(
                "{path} is not a readable file: mount the PEM bundle of your CA into the step and name its path, or unset SSL_CERT_FILE to trust the public CAs"
            ),
        );
    }
}

/// `--cli-read-timeout` / `--cli-connect-timeout` win over READ_TIMEOUT /
/// CONNECT_TIMEOUT, as `--region` wins over AWS_DEFAULT_REGION. Seconds; 0: none.
fn resolve_timeout(
    extra: &ExtraArgs,
    p: &mut Problems,
    flag: &str,
    var: &str,
    value: &Option<String>,
) -> Option<Duration> {
    let (name, v) = match extra.values.get(flag) {
        Some(v) => (format!("EXTRA_ARGS {flag}"), v.as_str()),
        None => (var.to_string(), non_empty(value)?),
    };
    match v.trim().parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => {
            let example = if name == var {
                format!("{var}: \"60\"")
            } else {
                format!("{flag} 60")
            };
            p.add(
                name,
                format!(
                    "{v:?} is not a whole number of seconds: write e.g. {example} (0 means no timeout)"
                ),
            );
            None
        }
    }
}
