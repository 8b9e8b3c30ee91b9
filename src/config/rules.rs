//! Header settings, the values aws-cli accepts for them, and per-pattern `RULES`.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde::Deserialize;

use super::argparse::ExtraArgs;
use super::{Problems, RawVars, non_empty};
use crate::compress::Compression;
use crate::filter::Pattern;

/// The ACL values aws-cli's `s3 sync --acl` accepts.
pub(crate) const ACLS: &[&str] = &[
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
pub(crate) const STORAGE_CLASSES: &[&str] = &[
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
pub(super) const SSE_VALUES: &[&str] = &["AES256", "aws:kms", "aws:kms:dsse"];

/// objects need their headers re-applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HeaderSettings {
    pub(crate) acl: Option<String>,
    pub(crate) storage_class: Option<String>,
    pub(crate) cache_control: Option<String>,
    /// Normalised to an HTTP date.
    pub(crate) expires: Option<String>,
    pub(crate) content_encoding: Option<String>,
    /// `--content-type`: overrides the guess for every file.
    pub(crate) content_type: Option<String>,
    pub(crate) content_disposition: Option<String>,
    pub(crate) content_language: Option<String>,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) sse: Option<String>,
    pub(crate) sse_kms_key_id: Option<String>,
    pub(crate) website_redirect: Option<String>,
    /// Guess Content-Type from the extension (off with `--no-guess-mime-type`).
    pub(crate) guess_mime: bool,
}

/// A header rule from `RULES` / `RULES_FILE`: the first rule whose pattern matches a file
/// decides its headers; a field the rule does not set falls back to the global settings.
#[derive(Debug, Clone)]
pub(crate) struct HeaderRule {
    pub(crate) matcher: Pattern,
    pub(crate) cache_control: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) content_disposition: Option<String>,
    pub(crate) metadata: Option<BTreeMap<String, String>>,
    pub(crate) acl: Option<String>,
    pub(crate) storage_class: Option<String>,
    pub(crate) compress: Option<Compression>,
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

/// The global header settings: the header variables, with the aws-cli flags of EXTRA_ARGS
/// winning over them. Problems in this order: ACL, storage class, `--sse`, expires,
/// `--metadata`, `--sse-kms-key-id`.
pub(super) fn resolve_headers(
    raw: &RawVars,
    extra: &ExtraArgs,
    p: &mut Problems,
) -> HeaderSettings {
    let acl = enum_var(extra, p, "ACL", "--acl", non_empty(&raw.acl), ACLS);
    let storage_class = enum_var(
        extra,
        p,
        "STORAGE_CLASS",
        "--storage-class",
        non_empty(&raw.storage_class),
        STORAGE_CLASSES,
    );
    let sse = enum_var(extra, p, "EXTRA_ARGS", "--sse", None, SSE_VALUES);
    let expires = resolve_expires(raw, extra, p);
    let metadata = resolve_metadata(extra, p);
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
    headers
}

/// A value from a fixed list: the flag's if given, else the variable's.
fn enum_var(
    extra: &ExtraArgs,
    p: &mut Problems,
    name: &str,
    flag: &str,
    var: Option<&str>,
    allowed: &[&str],
) -> Option<String> {
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
}

/// `--expires` wins over EXPIRES; either is normalised to an HTTP date.
fn resolve_expires(raw: &RawVars, extra: &ExtraArgs, p: &mut Problems) -> Option<String> {
    match (extra.values.get("--expires"), non_empty(&raw.expires)) {
        (Some(v), _) => parse_expires(v).or_else(|| {
            p.add(
                "EXTRA_ARGS",
                format!("--expires {v:?} is not a date: use ISO 8601 (2030-01-31T00:00:00Z), an HTTP date or seconds since 1970"),
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
    }
}

fn resolve_metadata(extra: &ExtraArgs, p: &mut Problems) -> BTreeMap<String, String> {
    match extra.values.get("--metadata") {
        None => BTreeMap::new(),
        Some(m) => parse_metadata(m).unwrap_or_else(|e| {
            p.add(
                "EXTRA_ARGS",
                format!("--metadata {e}: write --metadata key=value,key2=value2"),
            );
            BTreeMap::new()
        }),
    }
}

pub(super) fn resolve_rules(raw: &RawVars, p: &mut Problems) -> Vec<HeaderRule> {
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

/// Parse EXPIRES-style timestamps: ISO 8601 / RFC 3339, a date alone, an HTTP date, or
/// seconds since 1970 (botocore reads a number that way first: `--expires 90` is 00:01:30 on
/// 1 January 1970). Returns the HTTP-date form S3 stores.
pub(crate) fn parse_expires(value: &str) -> Option<String> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
    {
        return DateTime::from_secs_f64(secs.floor())
            .fmt(Format::HttpDate)
            .ok();
    }
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
