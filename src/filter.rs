//! `--exclude` / `--include` filters with the exact semantics of `aws s3 sync`.
//!
//! Reference: aws-cli `awscli/customizations/s3/filters.py` (v1 `develop` and
//! v2 share the same code). There, every file starts out included and every
//! filter is tried in the order given; each filter whose pattern matches sets
//! the status to include/exclude, so a later filter wins over an earlier one.
//! A pattern is joined to the source root with `os.path.join` and matched
//! with Python's `fnmatch.fnmatch` against the file's full path. Because the
//! root is a literal prefix on both sides, that is the same as matching the
//! pattern against the path *relative* to the root, which is what we do: for
//! local files the path relative to the local root, for S3 objects the key
//! relative to the prefix, always with `/` separators and no leading slash.
//!
//! `fnmatch` semantics (POSIX, so `os.path.normcase` is a no-op):
//! - `*` matches any sequence, including `/` (so `**` is just `*`);
//! - `?` matches exactly one character (a Unicode code point), including `/`;
//! - `[seq]` / `[!seq]` are a character class and its negation, with ranges
//!   (`a-z`); `]` right after `[` or `[!` is a member; a `[` without a closing
//!   `]` is a literal `[`; `^` is not a negation, it is a member;
//! - there is no escaping (`\` is an ordinary character) and no brace
//!   alternation (`{a,b}` is literal);
//! - matching is case-sensitive and anchored at both ends.
//!
//! Class parsing mirrors CPython's `fnmatch.translate` step by step, including
//! its quirks (reversed ranges such as `[z-a]` are dropped, a class left empty
//! never matches, a class left as just `!` matches any character). The
//! resulting pattern is re-emitted in an unambiguous glob syntax and compiled
//! once with `globset` (`literal_separator(false)`, `backslash_escape(false)`).
//!
//! `globset` matches bytes, so `?` and classes would see one byte of a
//! multi-byte UTF-8 character. To keep code-point semantics, patterns that use
//! `?` or classes are matched against a copy of a non-ASCII path in which each
//! non-ASCII character is replaced by a representative of its equivalence
//! class: characters that no pattern can tell apart (same membership in every
//! class range, not a literal of any pattern) share a representative, and `?`
//! and classes are emitted as alternations over ASCII and those
//! representatives. ASCII paths, and patterns without `?`/classes, are matched
//! as they are, without allocating.
//!
//! Deliberate choices where the relative-path model differs from aws-cli:
//! - a leading `./` (repeated: `././`) is stripped from a pattern. In aws-cli
//!   `--exclude ./foo` becomes `<root>/./foo`, which never matches anything;
//!   stripping makes it do what it obviously means;
//! - a pattern starting with `/` is kept as is, so it never matches a relative
//!   path. (In aws-cli `os.path.join` discards the root for such a pattern and
//!   it is matched against the absolute local path, which depends on where
//!   the build checked the repository out.) [`FilterRule::is_absolute`] lets
//!   configuration validation warn about such patterns.

use globset::{Candidate, GlobBuilder, GlobMatcher};

/// Whether a matching filter includes or excludes the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FilterKind {
    /// `--include PATTERN`
    Include,
    /// `--exclude PATTERN`
    Exclude,
}

/// One `--include` / `--exclude` filter, as written by the user.
#[derive(Clone, Debug)]
pub(crate) struct FilterRule {
    pub(crate) kind: FilterKind,
    pub(crate) pattern: String,
}

impl FilterRule {
    /// True when the pattern starts with `/`. Such a pattern never matches
    /// (paths are relative to the root), whereas aws-cli would match it
    /// against the absolute local path; worth a warning in config validation.
    #[cfg(test)]
    pub(crate) fn is_absolute(&self) -> bool {
        self.pattern.starts_with('/')
    }
}

/// A pattern that cannot be compiled.
#[derive(Debug, thiserror::Error)]
#[error("invalid filter pattern {pattern:?}: {reason}")]
pub(crate) struct FilterError {
    pub(crate) pattern: String,
    pub(crate) reason: String,
}

/// One pattern with the filters' aws-cli semantics, for matching rather than filtering
/// (e.g. the header rules' `pattern`).
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    inner: Filters,
}

impl Pattern {
    pub(crate) fn new(pattern: &str) -> Result<Pattern, FilterError> {
        Ok(Pattern {
            inner: Filters::new(&[FilterRule {
                kind: FilterKind::Include,
                pattern: pattern.to_string(),
            }])?,
        })
    }

    /// True when the pattern matches the whole relative path.
    pub(crate) fn is_match(&self, rel_path: &str) -> bool {
        self.inner.last_match(rel_path).is_some()
    }
}

/// Compiled filters; an empty (default) value includes everything.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filters {
    rules: Vec<CompiledRule>,
    /// Equivalence classes of non-ASCII characters for `char_sensitive` rules.
    alphabet: Alphabet,
}

#[derive(Clone, Debug)]
struct CompiledRule {
    kind: FilterKind,
    /// `None` when the pattern can never match (e.g. an empty class `[b-a]`).
    matcher: Option<GlobMatcher>,
    /// The pattern uses `?` or a class, so a non-ASCII path must be mapped
    /// through the alphabet before matching.
    char_sensitive: bool,
}

impl Filters {
    /// Compiles the rules, in order (later rules win).
    pub(crate) fn new(rules: &[FilterRule]) -> Result<Filters, FilterError> {
        let parsed = rules
            .iter()
            .map(|rule| {
                parse(normalize(&rule.pattern)).map_err(|reason| FilterError {
                    pattern: rule.pattern.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let alphabet = Alphabet::new(
            parsed
                .iter()
                .filter(|tokens| is_char_sensitive(tokens))
                .flatten(),
        );
        let rules = rules
            .iter()
            .zip(&parsed)
            .map(|(rule, tokens)| {
                let char_sensitive = is_char_sensitive(tokens);
                let matcher = match to_glob(tokens, &alphabet) {
                    None => None,
                    Some(glob) => Some(compile(&glob).map_err(|reason| FilterError {
                        pattern: rule.pattern.clone(),
                        reason,
                    })?),
                };
                Ok(CompiledRule {
                    kind: rule.kind,
                    matcher,
                    char_sensitive,
                })
            })
            .collect::<Result<Vec<_>, FilterError>>()?;
        Ok(Filters { rules, alphabet })
    }

    /// True when the relative path (with `/` separators, no leading slash)
    /// survives the filters.
    pub(crate) fn is_included(&self, rel_path: &str) -> bool {
        self.last_match(rel_path)
            .is_none_or(|kind| kind == FilterKind::Include)
    }

    /// The kind of the last rule whose pattern matches, if any.
    fn last_match(&self, rel_path: &str) -> Option<FilterKind> {
        if self.rules.is_empty() {
            return None;
        }
        let ascii = rel_path.is_ascii();
        let candidate = Candidate::from_bytes(rel_path);
        // Built lazily: only non-ASCII paths meeting a `?`/class pattern.
        let mut mapped: Option<String> = None;
        // The last matching rule decides, so scan from the end.
        for rule in self.rules.iter().rev() {
            let Some(matcher) = &rule.matcher else {
                continue;
            };
            let hit = if rule.char_sensitive && !ascii {
                let mapped = mapped.get_or_insert_with(|| self.alphabet.map(rel_path));
                matcher.is_match_candidate(&Candidate::from_bytes(mapped.as_str()))
            } else {
                matcher.is_match_candidate(&candidate)
            };
            if hit {
                return Some(rule.kind);
            }
        }
        None
    }
}

/// Strips leading `./` (see the module docs).
fn normalize(pattern: &str) -> &str {
    let mut p = pattern;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p
}

/// One element of a translated `fnmatch` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `*`, runs already collapsed.
    Star,
    /// One character that is (`negated == false`) or is not (`negated ==
    /// true`) in one of the inclusive ranges. `?` is an empty negated set.
    Set {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// A class that matches nothing, so the whole pattern never matches.
    Never,
}

impl Token {
    fn set_contains(negated: bool, ranges: &[(char, char)], c: char) -> bool {
        ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != negated
    }
}

fn is_char_sensitive(tokens: &[Token]) -> bool {
    tokens.iter().any(|t| matches!(t, Token::Set { .. }))
}

/// Translates an `fnmatch` pattern, following CPython's `fnmatch.translate`.
fn parse(pattern: &str) -> Result<Vec<Token>, String> {
    let pat: Vec<char> = pattern.chars().collect();
    let n = pat.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = pat[i];
        i += 1;
        match c {
            '*' => {
                if out.last() != Some(&Token::Star) {
                    out.push(Token::Star);
                }
            }
            '?' => out.push(Token::Set {
                negated: true,
                ranges: Vec::new(),
            }),
            '[' => {
                let mut j = i;
                if j < n && pat[j] == '!' {
                    j += 1;
                }
                if j < n && pat[j] == ']' {
                    j += 1;
                }
                while j < n && pat[j] != ']' {
                    j += 1;
                }
                if j >= n {
                    out.push(Token::Literal('['));
                } else {
                    out.push(parse_class(&pat, i, j)?);
                    i = j + 1;
                }
            }
            c => out.push(Token::Literal(c)),
        }
    }
    Ok(out)
}

/// Translates the class body `pat[start..end]` (between `[` and `]`): first
/// into the regex set body CPython builds (`stuff`), then parses that body the
/// way Python's `re` does.
fn parse_class(pat: &[char], start: usize, end: usize) -> Result<Token, String> {
    // `stuff` as a regex set body; `\` always escapes the next char here.
    let mut stuff: Vec<char> = Vec::new();
    let body = &pat[start..end];
    if !body.contains(&'-') {
        for &c in body {
            if c == '\\' {
                stuff.push('\\');
            }
            stuff.push(c);
        }
    } else {
        let mut chunks: Vec<Vec<char>> = Vec::new();
        let mut i = start;
        let mut k = if pat[start] == '!' {
            start + 2
        } else {
            start + 1
        };
        while let Some(hyphen) = (k..end).find(|&x| pat[x] == '-') {
            chunks.push(pat[i..hyphen].to_vec());
            i = hyphen + 1;
            k = hyphen + 3;
        }
        let chunk = &pat[i..end];
        if !chunk.is_empty() {
            chunks.push(chunk.to_vec());
        } else {
            chunks
                .last_mut()
                .ok_or("malformed character class")?
                .push('-');
        }
        // Remove empty (reversed) ranges.
        for k in (1..chunks.len()).rev() {
            let (Some(&last), Some(&first)) = (chunks[k - 1].last(), chunks[k].first()) else {
                return Err("malformed character class".into());
            };
            if last > first {
                let next = chunks.remove(k);
                let prev = &mut chunks[k - 1];
                prev.pop();
                prev.extend_from_slice(&next[1..]);
            }
        }
        for (idx, chunk) in chunks.iter().enumerate() {
            if idx > 0 {
                stuff.push('-');
            }
            for &c in chunk {
                if c == '\\' || c == '-' {
                    stuff.push('\\');
                }
                stuff.push(c);
            }
        }
    }
    // (CPython also escapes `&`, `~`, `|`; they are literals either way.)
    if stuff.is_empty() {
        return Ok(Token::Never);
    }
    if stuff == ['!'] {
        return Ok(Token::Set {
            negated: true,
            ranges: Vec::new(),
        });
    }
    let mut negated = false;
    let mut rest: &[char] = &stuff;
    // A leading `!` negates. (CPython escapes a leading `^` or `[`; both are
    // plain members below anyway.)
    if stuff[0] == '!' {
        negated = true;
        rest = &stuff[1..];
    }
    parse_regex_set(rest, negated)
}

/// Parses a regex set body (after any `^`) like Python's `re` parser. The
/// body only contains literals, `\`-escaped literals and range hyphens.
fn parse_regex_set(body: &[char], negated: bool) -> Result<Token, String> {
    // (char, escaped)
    let mut items: Vec<(char, bool)> = Vec::with_capacity(body.len());
    let mut iter = body.iter();
    while let Some(&c) = iter.next() {
        if c == '\\' {
            let &e = iter.next().ok_or("malformed character class")?;
            items.push((e, true));
        } else {
            items.push((c, false));
        }
    }
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let (lo, _) = items[i];
        i += 1;
        if i < items.len() && items[i] == ('-', false) {
            if i + 1 == items.len() {
                // `x-]`: `x` and a literal `-`.
                ranges.push((lo, lo));
                ranges.push(('-', '-'));
                i += 1;
                continue;
            }
            let (hi, _) = items[i + 1];
            if hi < lo {
                return Err(format!("bad character range {lo}-{hi}"));
            }
            ranges.push((lo, hi));
            i += 2;
        } else {
            ranges.push((lo, lo));
        }
    }
    Ok(Token::Set { negated, ranges })
}

/// Partition of the non-ASCII code points into cells that no `?`/class
/// pattern can tell apart; each cell is represented by one character.
#[derive(Clone, Debug, Default)]
struct Alphabet {
    /// Sorted first code points of the cells; the first one is U+0080.
    starts: Vec<u32>,
    /// Representative of each cell (`None` for a cell of surrogates only).
    reps: Vec<Option<char>>,
}

impl Alphabet {
    fn new<'a>(tokens: impl Iterator<Item = &'a Token>) -> Alphabet {
        const MAX: u32 = char::MAX as u32;
        let mut starts = vec![0x80_u32];
        for token in tokens {
            match token {
                Token::Literal(c) if !c.is_ascii() => {
                    starts.push(*c as u32);
                    starts.push(*c as u32 + 1);
                }
                Token::Set { ranges, .. } => {
                    for &(lo, hi) in ranges {
                        if !hi.is_ascii() {
                            starts.push((lo as u32).max(0x80));
                            starts.push(hi as u32 + 1);
                        }
                    }
                }
                _ => {}
            }
        }
        starts.retain(|&s| s <= MAX);
        starts.sort_unstable();
        starts.dedup();
        let reps = starts
            .iter()
            .enumerate()
            .map(|(idx, &start)| {
                let last = starts.get(idx + 1).map_or(MAX, |next| next - 1);
                char::from_u32(start).or_else(|| {
                    // `start` is a surrogate; the next scalar value is U+E000.
                    (last >= 0xE000).then_some('\u{E000}')
                })
            })
            .collect();
        Alphabet { starts, reps }
    }

    /// Representative of a non-ASCII character.
    fn rep(&self, c: char) -> char {
        let idx = self.starts.partition_point(|&s| s <= c as u32);
        idx.checked_sub(1)
            .and_then(|idx| self.reps[idx])
            .unwrap_or(c)
    }

    fn map(&self, path: &str) -> String {
        path.chars()
            .map(|c| if c.is_ascii() { c } else { self.rep(c) })
            .collect()
    }
}

/// Renders tokens as an unambiguous glob for `globset` (no `**`, no
/// alternation except our own, specials as one-member classes). `None` when
/// the pattern can never match.
fn to_glob(tokens: &[Token], alphabet: &Alphabet) -> Option<String> {
    let mut glob = String::new();
    for token in tokens {
        match token {
            Token::Literal(c) => push_literal(&mut glob, *c),
            Token::Star => glob.push('*'),
            Token::Never => return None,
            Token::Set { negated, ranges } => {
                let contains = |c: char| Token::set_contains(*negated, ranges, c);
                // Members that are special inside a globset class go bare.
                let is_special = |c: char| matches!(c, '!' | '^' | '-' | ']');
                let mut alternatives: Vec<String> = Vec::new();
                let mut class = String::new();
                let mut b = 0_u8;
                while b < 0x80 {
                    let c = char::from(b);
                    if contains(c) && !is_special(c) {
                        let lo = c;
                        while b < 0x7F {
                            let next = char::from(b + 1);
                            if !contains(next) || is_special(next) {
                                break;
                            }
                            b += 1;
                        }
                        let hi = char::from(b);
                        class.push(lo);
                        if hi != lo {
                            class.push('-');
                            class.push(hi);
                        }
                    }
                    b += 1;
                }
                if !class.is_empty() {
                    alternatives.push(format!("[{class}]"));
                }
                for c in ['!', '^', '-', ']'] {
                    if contains(c) {
                        alternatives.push(c.to_string());
                    }
                }
                for rep in alphabet.reps.iter().flatten() {
                    if contains(*rep) {
                        alternatives.push(rep.to_string());
                    }
                }
                match alternatives.as_slice() {
                    [] => return None,
                    [one] => glob.push_str(one),
                    many => {
                        glob.push('{');
                        glob.push_str(&many.join(","));
                        glob.push('}');
                    }
                }
            }
        }
    }
    Some(glob)
}

fn push_literal(glob: &mut String, c: char) {
    if matches!(c, '*' | '?' | '[' | '{' | '}' | ',' | '\\') {
        glob.push('[');
        glob.push(c);
        glob.push(']');
    } else {
        glob.push(c);
    }
}

fn compile(glob: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(glob)
        .literal_separator(false)
        .backslash_escape(false)
        .case_insensitive(false)
        .empty_alternates(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
