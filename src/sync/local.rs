//! Walk LOCAL_PATH: follow symlinks as aws-cli does, apply the filters, stat every file.
//!
//! Hidden files are included. Symlinks are followed by default; a link that leads outside
//! LOCAL_PATH is skipped with a warning unless `FOLLOW_SYMLINKS=true`; loops, broken links,
//! unreadable files, special files and names that are not UTF-8 are skipped with a warning.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use walkdir::WalkDir;

use crate::config::SymlinkPolicy;
use crate::filter::Filters;

/// One local file to consider.
#[derive(Debug, Clone)]
pub(crate) struct LocalFile {
    /// Path relative to LOCAL_PATH with `/` separators: the key below the prefix.
    pub(crate) rel: String,
    /// Where to read it.
    pub(crate) path: PathBuf,
    /// Bytes to upload: the file's size, or its compressed size when `encoding` is set.
    pub(crate) size: u64,
    pub(crate) mtime: SystemTime,
    /// Header group (see `headers::groups`): 0 unless a rule matches.
    pub(crate) group: usize,
    /// Set when the file is uploaded compressed.
    pub(crate) encoding: Option<crate::compress::Compression>,
    /// The file's size on disk.
    pub(crate) source_size: u64,
    /// Which file the scan saw at `path`: every read checks it is still that one.
    pub(crate) id: Option<super::open::FileId>,
}

/// The scan's result: files sorted by `rel`, and the warnings to print.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub(crate) files: Vec<LocalFile>,
    pub(crate) warnings: Vec<String>,
    /// Relative paths of files that exist but were skipped, and of skipped folders (ending in
    /// `/`; `""` for LOCAL_PATH itself): their remote keys, and every key below them, must
    /// never be deleted.
    pub(crate) skipped: Vec<String>,
    /// What could not be deployed (unreadable files and folders, special files, broken links,
    /// loops, names that cannot be keys), and files deployed with an invalid modification time
    /// (as aws-cli, which exits 2 for all of them): these fail the step unless
    /// `ALLOW_SKIPPED_FILES`. Links that leave LOCAL_PATH are not here: skipping them is the
    /// configured policy.
    pub(crate) skipped_files: Vec<SkippedFile>,
}

/// A file or folder that was skipped (or deployed with a warning), for the `✖` line and the
/// report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct SkippedFile {
    /// Relative to LOCAL_PATH, `/` separated; folders end in `/`; LOCAL_PATH itself is `./`.
    pub(crate) path: String,
    pub(crate) reason: String,
}

impl Scan {
    /// Record a skipped file or folder: warn, protect its keys, and list it.
    fn skip(&mut self, root: &Path, path: &Path, reason: String) {
        self.warnings
            .push(format!("Skipping {}: {reason}", path.display()));
        let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
        let shown = match rel_key(root, path) {
            Some(rel) => {
                let rel = if is_dir && !rel.is_empty() {
                    format!("{rel}/")
                } else {
                    rel
                };
                self.skipped.push(rel.clone());
                if rel.is_empty() {
                    "./".to_string()
                } else {
                    rel
                }
            }
            // Not UTF-8: no key can name it, so none can be protected.
            None => path
                .strip_prefix(root)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned(),
        };
        self.skipped_files.push(SkippedFile {
            path: shown,
            reason,
        });
    }
}

/// Walk `root`. `root` must be a directory (config checked it).
/// Why the walk could not enter or read an entry, in the user's words.
fn walk_error(err: &walkdir::Error) -> String {
    if err.loop_ancestor().is_some() {
        "symlink loop".to_string()
    } else if err.io_error().map(|e| e.kind()) == Some(std::io::ErrorKind::NotFound) {
        "broken symlink".to_string()
    } else if let Some(e) = err.io_error() {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!("folder is not readable ({e})")
        } else {
            e.to_string()
        }
    } else {
        err.to_string()
    }
}

pub(crate) fn scan(root: &Path, symlinks: SymlinkPolicy, filters: &Filters) -> Scan {
    let mut out = Scan::default();
    let canonical_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let walker = WalkDir::new(root)
        .follow_links(symlinks != SymlinkPolicy::Never)
        .sort_by_file_name();
    let mut it = walker.into_iter();
    while let Some(entry) = it.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                let path = err
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| root.display().to_string());
                let why = walk_error(&err);
                match err.path() {
                    Some(p) => out.skip(root, p, why),
                    None => out.warnings.push(format!("Skipping {path}: {why}")),
                }
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let path = entry.path();
        if entry.path_is_symlink() {
            if symlinks == SymlinkPolicy::Never {
                continue;
            }
            if symlinks == SymlinkPolicy::FollowInside {
                let inside = std::fs::canonicalize(path)
                    .map(|target| target.starts_with(&canonical_root))
                    .unwrap_or(false);
                if !inside {
                    out.warnings.push(format!(
                        "Skipping {}: symlink points outside LOCAL_PATH (set FOLLOW_SYMLINKS=true to follow it)",
                        path.display()
                    ));
                    if let Some(rel) = rel_key(root, path) {
                        let dir = entry.file_type().is_dir();
                        out.skipped.push(if dir { format!("{rel}/") } else { rel });
                    }
                    if entry.file_type().is_dir() {
                        it.skip_current_dir();
                    }
                    continue;
                }
            }
        }
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            out.skip(
                root,
                path,
                "not a regular file (socket, fifo or device)".to_string(),
            );
            continue;
        }
        let Some(rel) = rel_key(root, path) else {
            out.skip(
                root,
                path,
                "the name is not valid UTF-8, so it cannot be an S3 key".to_string(),
            );
            continue;
        };
        if !filters.is_included(&rel) {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                out.skip(root, path, e.to_string());
                continue;
            }
        };
        // Opened as every later read will open it (never blocking, a regular file only), and
        // its identity kept: a later read of another file at this path is refused.
        let id = match super::open::open_regular(path, None).and_then(|f| f.metadata()) {
            Ok(m) => super::open::FileId::of(&m),
            Err(e) => {
                out.skip(root, path, format!("file is not readable ({e})"));
                continue;
            }
        };
        let mut mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if !aws_cli_can_read(mtime) {
            // aws-cli warns, compares with 1970-01-01 instead, uploads the file, and exits 2.
            let reason = "invalid modification time (outside the years 1 to 9999): deployed with 1970-01-01 as its time, as aws-cli does".to_string();
            out.warnings.push(format!("{}: {reason}", path.display()));
            out.skipped_files.push(SkippedFile {
                path: rel.clone(),
                reason,
            });
            mtime = SystemTime::UNIX_EPOCH;
        }
        out.files.push(LocalFile {
            rel,
            path: path.to_path_buf(),
            size: meta.len(),
            mtime,
            group: 0,
            encoding: None,
            source_size: meta.len(),
            id,
        });
    }
    out.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

/// Seconds since 1970 of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the times Python's
/// `datetime.fromtimestamp` can represent. aws-cli calls a file's time outside them invalid.
const PYTHON_TIME_RANGE: (i64, i64) = (-62_135_596_800, 253_402_300_799);

/// Whether aws-cli can read this modification time (see [`PYTHON_TIME_RANGE`]).
fn aws_cli_can_read(t: SystemTime) -> bool {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    (PYTHON_TIME_RANGE.0..=PYTHON_TIME_RANGE.1).contains(&secs)
}

/// `root/a/b.css` → `a/b.css`.
fn rel_key(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut key = String::new();
    for (i, c) in rel.components().enumerate() {
        if i > 0 {
            key.push('/');
        }
        key.push_str(c.as_os_str().to_str()?);
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{FilterKind, FilterRule};

    fn write(root: &Path, rel: &str, body: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }

    #[test]
    fn hidden_empty_and_nested_files_are_included() {
        let dir = tempfile::tempdir().expect("tmp");
        write(dir.path(), ".well-known/security.txt", b"x");
        write(dir.path(), ".htaccess", b"");
        write(dir.path(), "a/b c/ü+%#.css", b"body");
        let s = scan(dir.path(), SymlinkPolicy::FollowInside, &Filters::default());
        let rels: Vec<_> = s.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(
            rels,
            vec![".htaccess", ".well-known/security.txt", "a/b c/ü+%#.css"]
        );
        assert_eq!(s.files[0].size, 0);
        assert!(s.warnings.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_inside_followed_outside_skipped_loops_and_broken_warned() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().expect("tmp");
        write(outside.path(), "secret.txt", b"s");
        let dir = tempfile::tempdir().expect("tmp");
        write(dir.path(), "real/a.txt", b"a");
        symlink(dir.path().join("real"), dir.path().join("linked")).expect("link");
        symlink(
            outside.path().join("secret.txt"),
            dir.path().join("escape.txt"),
        )
        .expect("link");
        symlink(dir.path().join("nope"), dir.path().join("broken")).expect("link");
        symlink(dir.path(), dir.path().join("real/loop")).expect("link");
        let s = scan(dir.path(), SymlinkPolicy::FollowInside, &Filters::default());
        let rels: Vec<_> = s.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, vec!["linked/a.txt", "real/a.txt"]);
        let w = s.warnings.join("\n");
        assert!(
            w.contains("escape.txt: symlink points outside LOCAL_PATH"),
            "{w}"
        );
        assert!(w.contains("broken"), "{w}");
        assert!(w.contains("loop"), "{w}");

        let all = scan(dir.path(), SymlinkPolicy::FollowAll, &Filters::default());
        assert!(all.files.iter().any(|f| f.rel == "escape.txt"));
        let none = scan(dir.path(), SymlinkPolicy::Never, &Filters::default());
        let rels: Vec<_> = none.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, vec!["real/a.txt"]);
    }

    #[test]
    fn python_time_range() {
        use std::time::Duration;
        let at = |s: i64| {
            if s >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_secs(s.unsigned_abs())
            } else {
                SystemTime::UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
            }
        };
        for (secs, ok) in [
            (0, true),
            (1_700_000_000, true),
            (253_402_300_799, true),
            (253_402_300_800, false),
            (300_000_000_000, false),
            (-62_135_596_800, true),
            (-62_135_596_801, false),
        ] {
            assert_eq!(aws_cli_can_read(at(secs)), ok, "{secs}");
        }
    }

    /// A file whose time aws-cli cannot read is deployed (with 1970 as its time) and listed, so
    /// that the step fails as aws-cli's exit 2 would. ext4 stores no time past 2446: the test
    /// uses tmpfs (/dev/shm) where it can, and says so when it cannot.
    #[test]
    fn a_file_with_an_invalid_time_is_deployed_and_listed() {
        use std::time::Duration;
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            eprintln!("SKIPPED: no /dev/shm to hold a time past the year 9999");
            return;
        };
        write(dir.path(), "future.txt", b"f");
        write(dir.path(), "ok.txt", b"o");
        let future = SystemTime::UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        let f = std::fs::File::options()
            .write(true)
            .open(dir.path().join("future.txt"))
            .expect("open");
        f.set_modified(future).expect("set mtime");
        drop(f);
        let stored = std::fs::metadata(dir.path().join("future.txt"))
            .and_then(|m| m.modified())
            .expect("mtime");
        if stored != future {
            eprintln!("SKIPPED: this file system does not keep a time past the year 9999");
            return;
        }
        let s = scan(dir.path(), SymlinkPolicy::FollowInside, &Filters::default());
        let rels: Vec<_> = s.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, vec!["future.txt", "ok.txt"]);
        assert_eq!(s.files[0].mtime, SystemTime::UNIX_EPOCH);
        assert_eq!(s.skipped_files.len(), 1);
        assert_eq!(s.skipped_files[0].path, "future.txt");
        assert!(
            s.skipped_files[0]
                .reason
                .contains("invalid modification time")
        );
        assert!(s.skipped.is_empty(), "deployed, so nothing to protect");
    }

    #[test]
    fn filters_apply_to_relative_paths() {
        let dir = tempfile::tempdir().expect("tmp");
        write(dir.path(), "a.map", b"m");
        write(dir.path(), "js/a.js", b"j");
        let f = Filters::new(&[FilterRule {
            kind: FilterKind::Exclude,
            pattern: "*.map".into(),
        }])
        .expect("filters");
        let s = scan(dir.path(), SymlinkPolicy::FollowInside, &f);
        assert_eq!(s.files.len(), 1);
        assert_eq!(s.files[0].rel, "js/a.js");
    }
}
