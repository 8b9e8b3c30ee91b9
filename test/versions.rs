//! One version everywhere: Cargo.toml (the crate's own version), the image tag in pipe.yml,
//! every image reference in the README, the Dockerfile's default `VERSION` label, and the top
//! entry of CHANGELOG.md. A release bumps them together; this test fails when one is missed.

use std::path::Path;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const IMAGE: &str = "s3deploypipe/s3-deploy-pipe:";
const REPO_PIPE: &str = "s3-deploy-pipe/s3-deploy-pipe:";

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The tags that follow `prefix` in `text`, with the line number of each.
fn tags_after(text: &str, prefix: &str) -> Vec<(usize, String)> {
    let mut tags = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find(prefix) {
            rest = &rest[at + prefix.len()..];
            let tag: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect();
            tags.push((n + 1, tag));
        }
    }
    tags
}

fn assert_all_current(file: &str, prefix: &str, tags: &[(usize, String)]) {
    for (line, tag) in tags {
        assert_eq!(
            tag, VERSION,
            "{file}:{line}: `{prefix}{tag}` should be `{prefix}{VERSION}` (Cargo.toml's version)"
        );
    }
}

#[test]
fn version_is_semver() {
    let parts: Vec<&str> = VERSION.split('.').collect();
    assert!(
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u64>().is_ok()),
        "Cargo.toml's version {VERSION} is not X.Y.Z; the release pipeline tags X.Y.Z, X.Y and X"
    );
}

#[test]
fn pipe_yml_image_tag_is_the_crate_version() {
    let yml = read("pipe.yml");
    let images: Vec<&str> = yml
        .lines()
        .filter_map(|l| l.strip_prefix("image:"))
        .map(str::trim)
        .collect();
    assert_eq!(
        images,
        [format!("{IMAGE}{VERSION}")],
        "pipe.yml must have one `image: {IMAGE}{VERSION}` line"
    );
}

#[test]
fn readme_references_the_crate_version() {
    let readme = read("README.md");
    let image = tags_after(&readme, &format!("docker://{IMAGE}"));
    assert!(
        !image.is_empty(),
        "README.md has no `pipe: docker://{IMAGE}{VERSION}` snippet"
    );
    assert_all_current("README.md", IMAGE, &tags_after(&readme, IMAGE));
    let repo = tags_after(&readme, REPO_PIPE);
    assert!(
        !repo.is_empty(),
        "README.md has no `pipe: {REPO_PIPE}{VERSION}` snippet"
    );
    assert_all_current("README.md", REPO_PIPE, &repo);
}

#[test]
fn changelog_top_entry_is_the_crate_version() {
    let changelog = read("CHANGELOG.md");
    let top = changelog
        .lines()
        .find(|l| l.starts_with("## ["))
        .expect("CHANGELOG.md has no `## [X.Y.Z]` entry");
    assert!(
        top.starts_with(&format!("## [{VERSION}]")),
        "CHANGELOG.md's top entry is `{top}`, expected `## [{VERSION}] - <date or Unreleased>`"
    );
}

#[test]
fn dockerfile_version_label_is_the_crate_version() {
    let dockerfile = read("Dockerfile");
    let args: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ARG VERSION="))
        .collect();
    assert!(
        !args.is_empty(),
        "Dockerfile has no `ARG VERSION={VERSION}` (the image's version label)"
    );
    for a in args {
        assert_eq!(
            a, VERSION,
            "Dockerfile: `ARG VERSION={a}` should be {VERSION}"
        );
    }
}

#[test]
fn tag_scanner_reads_both_reference_forms() {
    let text = "- pipe: docker://s3deploypipe/s3-deploy-pipe:1.2.3\n- pipe: s3-deploy-pipe/s3-deploy-pipe:1.2\n";
    assert_eq!(tags_after(text, IMAGE), [(1, "1.2.3".to_string())]);
    assert_eq!(tags_after(text, REPO_PIPE), [(2, "1.2".to_string())]);
}
