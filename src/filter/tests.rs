//! The filter rules against aws-cli's behaviour.

use super::*;

fn rule(kind: FilterKind, pattern: &str) -> FilterRule {
    FilterRule {
        kind,
        pattern: pattern.to_string(),
    }
}

/// `args` like `["--exclude", "*.txt", "--include", "foo.txt"]`.
fn filters(args: &[&str]) -> Filters {
    let rules: Vec<FilterRule> = args
        .chunks(2)
        .map(|pair| match pair {
            ["--include", p] => rule(FilterKind::Include, p),
            ["--exclude", p] => rule(FilterKind::Exclude, p),
            other => panic!("bad filter args {other:?}"),
        })
        .collect();
    Filters::new(&rules).expect("valid filters")
}

fn included<'a>(f: &Filters, paths: &[&'a str]) -> Vec<&'a str> {
    paths.iter().copied().filter(|p| f.is_included(p)).collect()
}

/// Does a single pattern match the path?
fn matches(pattern: &str, path: &str) -> bool {
    !filters(&["--exclude", pattern]).is_included(path)
}

/// The tree from the "Use of Exclude and Include Filters" section of the
/// `aws s3` documentation (`/tmp/foo/...`), relative to `/tmp/foo`.
const DOC_TREE: &[&str] = &[
    ".git/config",
    ".git/description",
    "foo.txt",
    "bar.txt",
    "baz.jpg",
];

#[test]
fn aws_cli_documented_examples() {
    let table: &[(&[&str], &[&str])] = &[
        (&[], DOC_TREE),
        (
            &["--exclude", "*.txt"],
            &[".git/config", ".git/description", "baz.jpg"],
        ),
        (&["--exclude", "*.txt", "--include", "*.txt"], DOC_TREE),
        (
            &["--include", "*.txt", "--exclude", "*.txt"],
            &[".git/config", ".git/description", "baz.jpg"],
        ),
        (&["--exclude", "*", "--include", "*.jpg"], &["baz.jpg"]),
        (&["--include", "*.jpg", "--exclude", "*"], &[]),
        (
            &["--exclude", "*", "--include", "*.txt"],
            &["foo.txt", "bar.txt"],
        ),
        (&["--include", "*.txt", "--exclude", "*"], &[]),
        (&["--exclude", ".git/*"], &["foo.txt", "bar.txt", "baz.jpg"]),
        (&["--exclude", "*", "--include", "foo.txt"], &["foo.txt"]),
        (
            &["--exclude", "*", "--include", "*.txt", "--include", "*.jpg"],
            &["foo.txt", "bar.txt", "baz.jpg"],
        ),
    ];
    for (args, want) in table {
        let f = filters(args);
        assert_eq!(&included(&f, DOC_TREE), want, "filters {args:?}");
    }
}

#[test]
fn later_filter_wins() {
    let f = filters(&["--exclude", "*", "--include", "css/*", "--exclude", "*.map"]);
    assert!(f.is_included("css/site.css"));
    assert!(!f.is_included("css/site.css.map"));
    assert!(!f.is_included("index.html"));
}

#[test]
fn empty_filters_include_everything() {
    let f = Filters::default();
    assert!(f.is_included("anything/at/all"));
    let f = Filters::new(&[]).expect("no filters");
    assert!(f.is_included(".well-known/x"));
    assert!(!filters(&["--exclude", "x"]).is_included("x"));
}

#[test]
fn star_crosses_directories() {
    assert!(matches(".git/*", ".git/a/b"));
    assert!(matches("a*c", "a/b/c"));
    assert!(matches("*.txt", "deep/er/file.txt"));
    assert!(matches("*", "a/b/c"));
    assert!(matches("*", ""));
    assert!(matches("css/*", "css/"));
    assert!(!matches(".git/*", ".gitignore"));
    assert!(!matches("a*c", "a/b/c/d"));
    // Anchored at both ends.
    assert!(!matches("foo", "foo.txt"));
    assert!(!matches("foo", "dir/foo"));
    assert!(!matches("*.txt", "a.txt.bak"));
}

#[test]
fn double_star_is_star() {
    assert!(matches("**", "a/b/c"));
    assert!(matches("**.txt", "a/b.txt"));
    assert!(matches("a/**/b", "a/x/y/b"));
    // globset's `**/` would match zero directories; fnmatch does not.
    assert!(!matches("a/**/b", "a/b"));
    assert!(!matches("**/b", "b"));
    assert!(matches("**/b", "/b"));
    assert!(matches("a***b", "a/b"));
}

#[test]
fn question_mark_is_one_character() {
    assert!(matches("?.txt", "a.txt"));
    assert!(!matches("?.txt", ".txt"));
    assert!(!matches("?.txt", "ab.txt"));
    assert!(matches("a?b", "a/b"));
    assert!(matches("??", "é/"));
    assert!(matches("?", "é"));
    assert!(matches("?", "日"));
    assert!(matches("?", "😀"));
    assert!(!matches("?", "日本"));
    assert!(matches("文件?.txt", "文件1.txt"));
    assert!(matches("??1.txt", "文件1.txt"));
    assert!(!matches("?.txt", "日本.txt"));
}

#[test]
fn character_classes() {
    assert!(matches("[abc].txt", "a.txt"));
    assert!(matches("[abc].txt", "c.txt"));
    assert!(!matches("[abc].txt", "d.txt"));
    assert!(!matches("[!abc].txt", "a.txt"));
    assert!(matches("[!abc].txt", "d.txt"));
    assert!(matches("[!abc].txt", "/.txt"));
    assert!(matches("[a-z]*", "index.html"));
    assert!(!matches("[a-z]*", "Index.html"));
    assert!(matches("img/[0-9][0-9].png", "img/42.png"));
    assert!(matches("a[/]b", "a/b"));
}

/// Class corner cases; expectations computed with CPython's
/// `fnmatch.fnmatch(path, pattern)` over `CLASS_PATHS`.
#[test]
fn class_corner_cases_match_python() {
    const CLASS_PATHS: &[&str] = &[
        "a", "b", "c", "d", "e", "-", "!", "^", "]", "[", "\\", "x", " ", "z", "é", "ñ", "ü", "ÿ",
        "a[", "[a", "[!a", "!]", "[]", "[!]", "ab", "",
    ];
    const NON_ASCII: &[&str] = &["é", "ñ", "ü", "ÿ"];
    let everything_but = |out: &[&str]| -> Vec<&str> {
        CLASS_PATHS[..18]
            .iter()
            .copied()
            .filter(|p| !out.contains(p))
            .collect()
    };
    let table: Vec<(&str, Vec<&str>)> = vec![
        ("[a--b]", vec!["b"]),
        ("[a-b-c]", vec!["a", "b", "c", "-"]),
        ("[a-c-e]", vec!["a", "b", "c", "e", "-"]),
        ("[a-c-]", vec!["a", "b", "c", "-"]),
        ("[--a]", vec!["a", "-", "^", "]", "[", "\\"]),
        ("[!--a]", {
            let mut v = vec!["b", "c", "d", "e", "!", "x", " ", "z"];
            v.extend(NON_ASCII);
            v
        }),
        ("[]-a]", vec!["a", "^", "]"]),
        ("[!]-a]", everything_but(&["a", "^", "]"])),
        ("[z-a]", vec![]),
        ("[!z-a]", everything_but(&[])),
        // The reversed range `a- ` is dropped, leaving `!x`: a negation.
        ("[a- !x]", everything_but(&["x"])),
        ("[b-a-]", vec!["-"]),
        ("[^a]", vec!["a", "^"]),
        ("[\\]", vec!["\\"]),
        ("[a-]", vec!["a", "-"]),
        ("[-a]", vec!["a", "-"]),
        ("[!]", vec!["[!]"]),
        ("[]", vec!["[]"]),
        ("[!]]", everything_but(&["]"])),
        ("[]]", vec!["]"]),
        ("[[]", vec!["["]),
        ("a[", vec!["a["]),
        ("[a", vec!["[a"]),
        ("[!a", vec!["[!a"]),
        ("[é-ü]", vec!["é", "ñ", "ü"]),
        ("[!é]", everything_but(&["é"])),
        ("?", everything_but(&[])),
        ("[a-é]", vec!["a", "b", "c", "d", "e", "x", "z", "é"]),
    ];
    for (pattern, want) in table {
        let got: Vec<&str> = CLASS_PATHS
            .iter()
            .copied()
            .filter(|p| matches(pattern, p))
            .collect();
        assert_eq!(got, want, "pattern {pattern:?}");
    }
}

#[test]
fn unclosed_bracket_is_literal() {
    assert!(matches("a[b", "a[b"));
    assert!(!matches("a[b", "ab"));
    assert!(matches("[*", "[x/y"));
    assert!(matches("x[!", "x[!"));
    // `[` inside a class is a plain member.
    assert!(matches("[[a]", "["));
    assert!(matches("[[a]", "a"));
    assert!(!matches("[[a]", "[a]"));
    // Only the first `[` opens a class: `[[]` then a literal `]`.
    assert!(matches("[[]]", "[]"));
    assert!(matches("[]", "[]"));
    assert!(matches("[!]", "[!]"));
}

#[test]
fn braces_and_backslash_are_literal() {
    assert!(matches("{a,b}.txt", "{a,b}.txt"));
    assert!(!matches("{a,b}.txt", "a.txt"));
    assert!(!matches("{a,b}.txt", "b.txt"));
    assert!(matches("*.{js,css}", "app.{js,css}"));
    assert!(!matches("*.{js,css}", "app.js"));
    assert!(matches("}", "}"));
    assert!(matches("a,b", "a,b"));
    assert!(matches("{", "{"));
    assert!(matches("a\\*b", "a\\xyzb"));
    assert!(!matches("a\\*b", "a*b"));
    assert!(matches("a\\?", "a\\?"));
    assert!(matches("\\", "\\"));
    assert!(matches("a\\b", "a\\b"));
}

#[test]
fn case_sensitive() {
    assert!(matches("*.JPG", "photo.JPG"));
    assert!(!matches("*.JPG", "photo.jpg"));
    assert!(!matches("readme.md", "README.md"));
    assert!(!matches("[a-z].txt", "A.txt"));
    assert!(!matches("é", "É"));
}

#[test]
fn unicode_and_spaces() {
    assert!(matches("my file.txt", "my file.txt"));
    assert!(matches("* *", "docs/a b"));
    assert!(!matches("* *", "docs/ab"));
    assert!(matches("café/*", "café/menu.html"));
    assert!(!matches("café/*", "cafe/menu.html"));
    assert!(matches("*.png", "图片/截图 1.png"));
    assert!(matches("[é]*", "été.html"));
    assert!(matches("[à-ÿ]?", "éé"));
    assert!(!matches("[!é]*", "été.html"));
    assert!(matches("[!é]*", "ñ.html"));
    assert!(matches("😀?", "😀😀"));
    assert!(matches("a*b", "a\nb"));
    assert!(matches("a?b", "a\nb"));
}

/// Several `?`/class rules with non-ASCII characters share one alphabet;
/// expectations computed with aws-cli's loop over CPython's fnmatch.
#[test]
fn mixed_unicode_rules_match_python() {
    let f = filters(&[
        "--exclude",
        "*",
        "--include",
        "caf?.html",
        "--include",
        "[à-ÿ]*",
        "--exclude",
        "*[!a-z].txt",
    ]);
    let table = [
        ("café.html", true),
        ("cafe.html", true),
        ("caf/.html", true),
        ("caf€.html", true),
        ("été/a.txt", true),
        ("été/é.txt", false),
        ("ñ", true),
        ("Ā", false),
        ("x.txt", false),
        ("a/b.html", false),
        ("ÿ", true),
        ("cafés.html", false),
    ];
    for (path, want) in table {
        assert_eq!(f.is_included(path), want, "path {path:?}");
    }
}

#[test]
fn never_matching_pattern_is_inert() {
    let f = filters(&["--exclude", "*.txt", "--include", "[z-a]"]);
    assert!(!f.is_included("a.txt"));
    assert!(f.is_included("a.css"));
}

#[test]
fn leading_dot_slash_is_stripped() {
    assert!(matches("./foo.txt", "foo.txt"));
    assert!(matches("././.git/*", ".git/config"));
    assert!(matches(".*", ".well-known/x"));
    assert!(!matches("./foo.txt", "bar/foo.txt"));
}

#[test]
fn absolute_pattern_never_matches() {
    let r = rule(FilterKind::Exclude, "/foo.txt");
    assert!(r.is_absolute());
    assert!(!rule(FilterKind::Exclude, "foo/*").is_absolute());
    assert!(!rule(FilterKind::Exclude, "./foo").is_absolute());
    let f = Filters::new(&[r]).expect("valid filter");
    assert!(f.is_included("foo.txt"));
    assert!(!matches("/*", "foo.txt"));
}

#[test]
fn empty_pattern_matches_nothing() {
    assert!(!matches("", "a"));
    assert!(!matches("./", "a"));
}

#[test]
fn error_display() {
    let e = FilterError {
        pattern: "[x".into(),
        reason: "bad".into(),
    };
    assert_eq!(e.to_string(), "invalid filter pattern \"[x\": bad");
}
