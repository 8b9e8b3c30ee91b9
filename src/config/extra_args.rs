//! `EXTRA_ARGS`: the flags of `aws s3 sync`, parsed like aws-cli's argparse.

use std::collections::BTreeMap;

use super::Problems;
use super::sync::Verbosity;
use crate::sync::filter::{FilterKind, FilterRule};

/// Settings from EXTRA_ARGS, parsed like aws-cli's argparse: a later flag wins.
#[derive(Default)]
pub(super) struct ExtraArgs {
    pub(super) filters: Vec<FilterRule>,
    pub(super) delete: bool,
    pub(super) dryrun: bool,
    pub(super) size_only: bool,
    pub(super) follow_symlinks: Option<bool>,
    pub(super) no_guess_mime: bool,
    pub(super) verbosity: Option<Verbosity>,
    pub(super) no_progress: bool,
    pub(super) values: BTreeMap<&'static str, String>,
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

pub(super) fn parse_extra_args(words: &[String], p: &mut Problems) -> ExtraArgs {
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
