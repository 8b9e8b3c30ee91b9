//! How local files are named in output lines, as aws-cli names them.

use std::path::{Component, Path, PathBuf};

/// See `Target::local_name`; `base` comes from [`display_local_path`].
pub(super) fn local_name(base: &str, rel: &str) -> String {
    if base == "." && rel.contains('/') {
        rel.to_string()
    } else {
        format!("{base}/{rel}")
    }
}

/// LOCAL_PATH as aws-cli names it in `upload: <path> to s3://…` lines: `os.path.relpath` of
/// the folder from the working directory, after `os.path.abspath` (lexical: `..` is resolved
/// without following links). So `dist`, `./dist/` and `$BITBUCKET_CLONE_DIR/dist` all print as
/// `dist`, `.` as `.`, and a folder elsewhere with `..` steps (`../site`, `../../tmp/site`).
/// Pure: `cwd` is passed in; without one, LOCAL_PATH is printed as written.
pub(crate) fn display_local_path(local: &str, cwd: Option<&Path>) -> String {
    let path = Path::new(local);
    let (abs, cwd) = match cwd {
        Some(c) => (lexical(&c.join(path)), lexical(c)),
        None => return local.to_string(),
    };
    let (a, c): (Vec<Component>, Vec<Component>) =
        (abs.components().collect(), cwd.components().collect());
    let common = a.iter().zip(&c).take_while(|(x, y)| x == y).count();
    let parts: Vec<String> = std::iter::repeat_n("..".to_string(), c.len() - common)
        .chain(
            a[common..]
                .iter()
                .map(|p| p.as_os_str().to_string_lossy().into_owned()),
        )
        .collect();
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// Resolve `.` and `..` without touching the file system, as Python's `os.path.normpath`.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_print_relative_to_the_working_directory_as_aws_cli() {
        let cwd = Some(Path::new("/clone"));
        // Expectations from Python's os.path.relpath(os.path.abspath(LOCAL_PATH)), as aws-cli.
        let cases = [
            ("dist", "dist"),
            ("dist/", "dist"),
            ("./dist/", "dist"),
            ("./a/../dist", "dist"),
            ("/clone/dist/", "dist"),
            ("/clone/./dist", "dist"),
            ("/clone", "."),
            (".", "."),
            ("./", "."),
            ("/elsewhere/dist", "../elsewhere/dist"),
            ("../sibling/dist", "../sibling/dist"),
            ("/clone-2/dist", "../clone-2/dist"),
            ("/", ".."),
            ("/clone/../../tmp/site", "../tmp/site"),
        ];
        for (local, want) in cases {
            assert_eq!(display_local_path(local, cwd), want, "{local}");
        }
        let deep = Some(Path::new("/opt/atlassian/pipelines/agent/build"));
        assert_eq!(
            display_local_path("/tmp/site", deep),
            "../../../../../tmp/site"
        );
        assert_eq!(display_local_path("./dist", None), "./dist");
        // aws-cli's relative_path: the folder's relative path, then the name.
        assert_eq!(local_name(".", "a.css"), "./a.css");
        assert_eq!(local_name(".", "sub/b.css"), "sub/b.css");
        assert_eq!(local_name("dist", "sub/b.css"), "dist/sub/b.css");
        assert_eq!(local_name("../site", "foo.txt"), "../site/foo.txt");
    }
}
