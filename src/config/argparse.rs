//! The words of `EXTRA_ARGS`, parsed against the [`FLAGS`] table as aws-cli's argparse does.
//!
//! `--flag value` and `--flag=value`, a unique prefix stands for the whole flag (`--dry` is
//! `--dryrun`), a later value wins, `--include` and `--exclude` append, `--grants` takes one
//! or more values, `--sse`, `--sse-c` and `--request-payer` may go without a value.

use std::collections::BTreeMap;

use super::Problems;
use super::extra_args::{Arity, FLAGS, Flag, Status};
use super::sync::Verbosity;
use crate::filter::{FilterKind, FilterRule};

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
    pub(super) debug: bool,
    pub(super) no_sign_request: bool,
    /// The last value of each value flag, by flag name (`--cache-control`).
    pub(super) values: BTreeMap<&'static str, String>,
    /// `--grants`: the values of the last `--grants`.
    pub(super) grants: Option<Vec<String>>,
    /// One `INFO:` line per accepted flag that has no effect here.
    pub(super) notes: Vec<String>,
    /// Values never to be printed (`--sse-c-key`, `--sse-c-copy-source-key`).
    pub(super) secrets: Vec<String>,
}

/// The flag a word names: exactly, or as argparse's unique prefix. `Err` lists the candidates.
pub(crate) fn lookup(name: &str) -> Result<&'static Flag, Vec<&'static str>> {
    if let Some(f) = FLAGS.iter().find(|f| f.name == name) {
        return Ok(f);
    }
    let candidates: Vec<&Flag> = if name.len() > 2 {
        FLAGS.iter().filter(|f| f.name.starts_with(name)).collect()
    } else {
        Vec::new()
    };
    match candidates.as_slice() {
        [one] => Ok(one),
        many => Err(many.iter().map(|f| f.name).collect()),
    }
}

/// argparse takes a word for an option, not a value, when it starts with `-` and is not a
/// negative number.
fn looks_like_flag(word: &str) -> bool {
    word.starts_with('-') && word.len() > 1 && word[1..].parse::<f64>().is_err()
}

/// The known flag closest to a mistyped one, when it is close enough to be the one meant
/// (at most two edits, as `--exlude` → `--exclude`, `--cache-controll` → `--cache-control`).
fn closest_flag(name: &str) -> Option<&'static str> {
    FLAGS
        .iter()
        .map(|f| (strsim::damerau_levenshtein(name, f.name), f.name))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, flag)| flag)
}

/// The flags this pipe honours or accepts, for the unknown-flag message.
fn known_flags() -> String {
    FLAGS
        .iter()
        .filter(|f| matches!(f.status, Status::Implemented | Status::Accepted))
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parse the words one flag at a time. A word that cannot be used is reported and skipped;
/// each flag's problems come in the order of the steps: the flag, its values, its choices,
/// its status.
pub(super) fn parse_extra_args(words: &[String], p: &mut Problems) -> ExtraArgs {
    let mut out = ExtraArgs::default();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        let Some((f, inline)) = flag_of(word, p) else {
            continue;
        };
        let Some(values) = take_values(f, word, inline, words, &mut i, p) else {
            continue;
        };
        if matches!(f.name, "--sse-c-key" | "--sse-c-copy-source-key") {
            out.secrets.extend(values.iter().cloned());
        }
        if !choices_allow(f, &values, &out.secrets, p) || !status_allows(f, &mut out.notes, p) {
            continue;
        }
        out.apply(f, values);
    }
    out
}

/// The flag a word names, and its `=value` if written inline.
fn flag_of(word: &str, p: &mut Problems) -> Option<(&'static Flag, Option<String>)> {
    if !looks_like_flag(word) || word == "--" {
        p.add(
            "EXTRA_ARGS",
            format!(
                "unexpected word {word:?}: EXTRA_ARGS takes aws s3 sync flags only (quote values that contain spaces)"
            ),
        );
        return None;
    }
    let (name, inline) = match word.split_once('=') {
        Some((f, v)) => (f, Some(v.to_string())),
        None => (word, None),
    };
    match lookup(name) {
        Ok(f) => Some((f, inline)),
        Err(candidates) if candidates.len() > 1 => {
            p.add(
                "EXTRA_ARGS",
                format!(
                    "ambiguous flag {name:?}: it could be {}; write it in full",
                    candidates.join(", ")
                ),
            );
            None
        }
        Err(_) => {
            let message = match closest_flag(name) {
                Some(meant) => format!(
                    "unknown flag {name:?}: did you mean {meant}? (see the README's EXTRA_ARGS table)"
                ),
                None => format!(
                    "unknown flag {name:?}: aws s3 sync has no such option. EXTRA_ARGS takes: {} (see the README's EXTRA_ARGS table)",
                    known_flags()
                ),
            };
            p.add("EXTRA_ARGS", message);
            None
        }
    }
}

/// The values of a flag, as argparse collects them: the inline one, then following words
/// that are not flags (advancing `i` past them).
fn take_values(
    f: &Flag,
    word: &str,
    inline: Option<String>,
    words: &[String],
    i: &mut usize,
    p: &mut Problems,
) -> Option<Vec<String>> {
    let mut values: Vec<String> = Vec::new();
    match f.arity {
        Arity::None => {
            if inline.is_some() {
                p.add(
                    "EXTRA_ARGS",
                    format!(
                        "{} takes no value, but got {word:?}: write it alone",
                        f.name
                    ),
                );
                return None;
            }
        }
        Arity::One => match inline {
            Some(v) => values.push(v),
            None => match words.get(*i) {
                Some(v) if !looks_like_flag(v) => {
                    values.push(v.clone());
                    *i += 1;
                }
                _ => {
                    p.add(
                        "EXTRA_ARGS",
                        format!("{} needs a value: write {} VALUE", f.name, f.name),
                    );
                    return None;
                }
            },
        },
        Arity::Optional(constant) => match inline {
            Some(v) => values.push(v),
            None => match words.get(*i) {
                Some(v) if !looks_like_flag(v) => {
                    values.push(v.clone());
                    *i += 1;
                }
                _ => values.push(constant.to_string()),
            },
        },
        Arity::OneOrMore => {
            values.extend(inline);
            while let Some(v) = words.get(*i).filter(|v| !looks_like_flag(v)) {
                values.push(v.clone());
                *i += 1;
            }
            if values.is_empty() {
                p.add(
                    "EXTRA_ARGS",
                    format!(
                        "{} needs one or more values: write {} VALUE [VALUE ...]",
                        f.name, f.name
                    ),
                );
                return None;
            }
        }
    }
    Some(values)
}

/// Every value is one of the flag's choices, if it has any. A secret value is not shown.
fn choices_allow(f: &Flag, values: &[String], secrets: &[String], p: &mut Problems) -> bool {
    if !f.choices.is_empty()
        && let Some(bad) = values.iter().find(|v| !f.choices.contains(&v.as_str()))
    {
        let shown = if secrets.contains(bad) {
            "***"
        } else {
            bad.as_str()
        };
        p.add(
            "EXTRA_ARGS",
            format!(
                "{} {shown:?} is not one of: {} (aws-cli accepts only these too)",
                f.name,
                f.choices.join(", ")
            ),
        );
        return false;
    }
    true
}

/// A refused or rejected flag is a problem; an accepted one gives its note once.
fn status_allows(f: &Flag, notes: &mut Vec<String>, p: &mut Problems) -> bool {
    match f.status {
        Status::Refused | Status::Rejected => {
            p.add("EXTRA_ARGS", format!("{}: {}", f.name, f.here));
            return false;
        }
        Status::Accepted => {
            let note = format!("EXTRA_ARGS {}: no effect here. {}", f.name, f.here);
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
        Status::Implemented => {}
    }
    true
}

impl ExtraArgs {
    /// Record a flag that passed every check.
    fn apply(&mut self, f: &Flag, mut values: Vec<String>) {
        match f.name {
            "--delete" => self.delete = true,
            "--dryrun" => self.dryrun = true,
            "--size-only" => self.size_only = true,
            "--follow-symlinks" => self.follow_symlinks = Some(true),
            "--no-follow-symlinks" => self.follow_symlinks = Some(false),
            "--no-guess-mime-type" => self.no_guess_mime = true,
            "--only-show-errors" => self.verbosity = Some(Verbosity::OnlyErrors),
            "--quiet" => self.verbosity = Some(Verbosity::Quiet),
            "--no-progress" => self.no_progress = true,
            "--debug" => self.debug = true,
            "--no-sign-request" => self.no_sign_request = true,
            "--exclude" | "--include" => {
                self.filters
                    .extend(values.into_iter().map(|pattern| FilterRule {
                        kind: if f.name == "--exclude" {
                            FilterKind::Exclude
                        } else {
                            FilterKind::Include
                        },
                        pattern,
                    }))
            }
            "--grants" => self.grants = Some(values),
            name => {
                if let Some(v) = values.pop() {
                    self.values.insert(name, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> (ExtraArgs, Vec<String>) {
        let words = shell_words::split(line).expect("words");
        let mut p = Problems::default();
        let out = parse_extra_args(&words, &mut p);
        (out, p.0.into_iter().map(|p| p.message).collect())
    }

    #[test]
    fn argparse_forms() {
        let (a, e) = parse(
            "--exclude '*.map' --include=a.map --cache-control no-cache --cache-control=max-age=1 --dry --sse --grants read=uri=x full=id=y --page-size 2 --expires 90",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(a.filters.len(), 2);
        assert_eq!(
            a.values.get("--cache-control").map(String::as_str),
            Some("max-age=1")
        );
        assert!(a.dryrun, "unique prefix");
        assert_eq!(a.values.get("--sse").map(String::as_str), Some("AES256"));
        assert_eq!(a.grants.as_deref().map(<[String]>::len), Some(2));
        assert_eq!(a.values.get("--page-size").map(String::as_str), Some("2"));
        assert_eq!(a.values.get("--expires").map(String::as_str), Some("90"));
        let (a, e) = parse("--request-payer --sse aws:kms --sse-c --sse-c-key k");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(
            a.values.get("--request-payer").map(String::as_str),
            Some("requester")
        );
        assert_eq!(a.values.get("--sse").map(String::as_str), Some("aws:kms"));
        assert_eq!(a.values.get("--sse-c").map(String::as_str), Some("AES256"));
        assert_eq!(a.secrets, vec!["k"]);
    }

    #[test]
    fn accepted_flags_give_one_note_each() {
        let (a, e) = parse(
            "--ignore-glacier-warnings --metadata-directive REPLACE --no-paginate --ignore-glacier-warnings --output json",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(a.notes.len(), 4, "{:?}", a.notes);
    }

    #[test]
    fn errors_name_the_flag() {
        for (line, want) in [
            ("--exclude", "--exclude needs a value"),
            ("--exclude --delete", "--exclude needs a value"),
            ("--grants", "--grants needs one or more values"),
            ("--delete=yes", "--delete takes no value"),
            ("--recursive", "rejects it too"),
            ("--no-verify-ssl", "SSL_CERT_FILE"),
            (
                "--frobnicate",
                "unknown flag \"--frobnicate\": aws s3 sync has no such",
            ),
            (
                "--exlude=*.map",
                "unknown flag \"--exlude\": did you mean --exclude?",
            ),
            ("--cache-controll=x", "did you mean --cache-control?"),
            ("--sizeonly", "did you mean --size-only?"),
            ("--si", "--size-only"),
            ("--no", "ambiguous flag"),
            ("--acl world", "is not one of"),
            ("--sse-c-key=abc --sse-c XYZ", "is not one of"),
            ("dist", "unexpected word"),
        ] {
            let (_, e) = parse(line);
            if want == "--size-only" {
                assert!(e.is_empty(), "{line}: {e:?}");
                continue;
            }
            assert_eq!(e.len(), 1, "{line}: {e:?}");
            assert!(e[0].contains(want), "{line}: {}", e[0]);
        }
    }
}
