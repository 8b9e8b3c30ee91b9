//! The plan: a pure function from (local files, remote objects, digests, settings) to what to
//! upload, re-header, leave alone and delete. No network, no file system: unit-tested by tables.

use crate::config::CompareMode;
use crate::filter::Filters;
use crate::s3::RemoteObject;
use crate::sync::compare::{self, Reason, Verdict};
use crate::sync::etag::LocalDigest;
use crate::sync::headers;
use crate::sync::local::LocalFile;

/// CopyObject copies at most 5 GiB; larger objects are re-uploaded to change their headers.
const COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// Everything the plan depends on.
pub(crate) struct PlanInput<'a> {
    /// Sorted by `rel`.
    pub(crate) local: &'a [LocalFile],
    /// Sorted by `rel`.
    pub(crate) remote: &'a [RemoteObject],
    /// Aligned with `local`: the digest where one was computed.
    pub(crate) digests: &'a [Option<LocalDigest>],
    pub(crate) mode: CompareMode,
    pub(crate) delete: bool,
    pub(crate) filters: &'a Filters,
    /// Relative paths of local files and folders that exist but were skipped (unreadable, …):
    /// neither they nor any key below them are deleted. A trailing `/` is allowed but not
    /// needed; `""` (LOCAL_PATH itself could not be read) protects every key.
    pub(crate) protected: &'a [String],
}

/// One planned upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    /// Index into the local files.
    pub(crate) index: usize,
    pub(crate) reason: Reason,
    pub(crate) html: bool,
}

/// What the sync will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Non-HTML first, then HTML; by key within each group.
    pub(crate) uploads: Vec<Upload>,
    /// Indexes of unchanged local files whose headers must be re-applied (CopyObject).
    pub(crate) reheaders: Vec<usize>,
    /// Re-applied only once every upload and re-header above succeeded: the sampled object of
    /// each stale header class (see [`header_classes`]).
    pub(crate) reheader_samples: Vec<usize>,
    /// Re-applied last, once everything above succeeded: the sampled object of each stale
    /// header group. So a fresh group sample means that the whole group was done.
    pub(crate) reheader_sentinels: Vec<usize>,
    /// Indexes of unchanged local files.
    pub(crate) unchanged: Vec<usize>,
    /// Remote keys (relative to the prefix) to delete, sorted.
    pub(crate) deletes: Vec<String>,
    /// Remote objects whose ETag could not be an MD5 (counted as changed).
    pub(crate) not_md5: usize,
}

/// Why the plan must not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GuardError {
    #[error(
        "LOCAL_PATH has no files to upload (after the filters) and deletes are on: this would delete {} under the target. Check the build output folder and the filters, or turn DELETE_FLAG off", share(*.deletes, *.remote)
    )]
    EmptySource { deletes: usize, remote: usize },
    #[error(
        "this run would delete {deletes} objects, more than MAX_DELETE={max}: nothing was changed. Check LOCAL_PATH and the filters, or raise MAX_DELETE"
    )]
    TooManyDeletes { deletes: usize, max: u64 },
}

/// `all 3 objects`, `1 of the 3 objects`.
fn share(part: usize, whole: usize) -> String {
    if part == whole {
        format!("all {whole} objects")
    } else {
        format!("{part} of the {whole} objects")
    }
}

/// Compute the plan. Pure.
pub(crate) fn plan(input: &PlanInput<'_>) -> Plan {
    let mut out = Plan::default();
    let mut uploads_html = Vec::new();
    let (mut i, mut j) = (0, 0);
    let (local, remote) = (input.local, input.remote);
    while i < local.len() || j < remote.len() {
        let ord = match (local.get(i), remote.get(j)) {
            (Some(l), Some(r)) => l.rel.as_str().cmp(r.rel.as_str()),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                push_upload(
                    &mut out.uploads,
                    &mut uploads_html,
                    i,
                    Reason::New,
                    &local[i],
                );
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let r = &remote[j];
                if input.delete
                    && input.filters.is_included(&r.rel)
                    && !is_protected(input.protected, &r.rel)
                {
                    out.deletes.push(r.rel.clone());
                }
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let digest = input.digests.get(i).and_then(Option::as_ref);
                match compare::compare(input.mode, &local[i], &remote[j], digest) {
                    Verdict::Same => out.unchanged.push(i),
                    Verdict::Upload(reason) => {
                        if reason == Reason::EtagNotMd5 {
                            out.not_md5 += 1;
                        }
                        push_upload(&mut out.uploads, &mut uploads_html, i, reason, &local[i]);
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }
    out.uploads.extend(uploads_html);
    out
}

/// A key is protected when its local file or folder was skipped, or it lies below one. The
/// skipped path's kind does not matter (a skipped folder may be recorded without its `/`, a
/// broken link may have pointed at a folder): keeping a key is always the safe side.
fn is_protected(protected: &[String], rel: &str) -> bool {
    protected.iter().any(|p| {
        let p = p.trim_end_matches('/');
        p.is_empty()
            || rel == p
            || rel
                .strip_prefix(p)
                .is_some_and(|below| below.starts_with('/'))
    })
}

fn push_upload(
    rest: &mut Vec<Upload>,
    html: &mut Vec<Upload>,
    index: usize,
    reason: Reason,
    f: &LocalFile,
) {
    let is_html = headers::is_html(&f.rel);
    let up = Upload {
        index,
        reason,
        html: is_html,
    };
    if is_html {
        html.push(up)
    } else {
        rest.push(up)
    }
}

/// The unchanged files in the order the header check samples them: least recently written
/// first (the object's LastModified, then its key). An interrupted or failed re-apply leaves
/// untouched objects older than every object it wrote (a copy or an upload sets LastModified),
/// so the next run samples one it did not reach. Pure.
pub(crate) fn sample_order(
    unchanged: &[usize],
    local: &[LocalFile],
    remote: &[RemoteObject],
) -> Vec<usize> {
    let written = |i: usize| {
        remote
            .binary_search_by(|r| r.rel.as_str().cmp(local[i].rel.as_str()))
            .ok()
            .map_or(i64::MIN, |j| remote[j].last_modified)
    };
    let mut order = unchanged.to_vec();
    order.sort_by(|&a, &b| {
        written(a)
            .cmp(&written(b))
            .then_with(|| local[a].rel.cmp(&local[b].rel))
    });
    order
}

/// Unchanged objects of one header group that get the same headers (the Content-Type and
/// Content-Encoding vary by file; everything else is the group's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderClass {
    pub(crate) group: usize,
    /// In sample order: `members[0]` is the one whose headers are read.
    pub(crate) members: Vec<usize>,
}

/// Split `order` (see [`sample_order`]) into header classes by `key`, in order of first
/// appearance; the first class of each group holds the group's sample. Pure.
pub(crate) fn header_classes<K: Eq + std::hash::Hash>(
    order: &[usize],
    local: &[LocalFile],
    key: impl Fn(usize) -> K,
) -> Vec<HeaderClass> {
    let mut index: std::collections::HashMap<(usize, K), usize> = std::collections::HashMap::new();
    let mut out: Vec<HeaderClass> = Vec::new();
    for &i in order {
        let group = local[i].group;
        let n = *index.entry((group, key(i))).or_insert_with(|| {
            out.push(HeaderClass {
                group,
                members: Vec::new(),
            });
            out.len() - 1
        });
        out[n].members.push(i);
    }
    out
}

impl Plan {
    /// Some header classes are stale: their unchanged objects get their headers re-applied;
    /// above CopyObject's 5 GiB limit they are re-uploaded. Each class's sample goes to
    /// `reheader_samples`, and a sample that is also its group's (in `group_samples`) to
    /// `reheader_sentinels`, so that both are written only after the rest. Pure.
    pub(crate) fn mark_classes_stale(
        &mut self,
        local: &[LocalFile],
        stale: &[&HeaderClass],
        group_samples: &[usize],
    ) {
        let mut big = Vec::new();
        let mut gone = std::collections::HashSet::new();
        for class in stale {
            for (n, &i) in class.members.iter().enumerate() {
                gone.insert(i);
                if local[i].size > COPY_LIMIT {
                    big.push(i);
                } else if n > 0 {
                    self.reheaders.push(i);
                } else if group_samples.contains(&i) {
                    self.reheader_sentinels.push(i);
                } else {
                    self.reheader_samples.push(i);
                }
            }
        }
        self.unchanged.retain(|i| !gone.contains(i));
        self.reheaders.sort_unstable();
        self.reheader_samples.sort_unstable();
        self.reheader_sentinels.sort_unstable();
        if !big.is_empty() {
            let mut html = Vec::new();
            let mut rest = Vec::new();
            for i in big {
                push_upload(&mut rest, &mut html, i, Reason::ContentDiffers, &local[i]);
            }
            // Keep the order: non-HTML before HTML.
            let split = self
                .uploads
                .iter()
                .position(|u| u.html)
                .unwrap_or(self.uploads.len());
            self.uploads.splice(split..split, rest);
            self.uploads.extend(html);
        }
    }

    /// The safety guards, checked before anything is touched. The empty-source guard looks at
    /// the planned deletes: with no local file left after the filters, a run that would delete
    /// something is refused; one that deletes nothing (`--exclude '*'`: excluded keys are never
    /// deleted) goes ahead, as in aws-cli.
    pub(crate) fn check_guards(
        &self,
        local_files: usize,
        remote_objects: usize,
        max_delete: Option<u64>,
    ) -> Result<(), GuardError> {
        if local_files == 0 && !self.deletes.is_empty() {
            return Err(GuardError::EmptySource {
                deletes: self.deletes.len(),
                remote: remote_objects,
            });
        }
        if let Some(max) = max_delete
            && self.deletes.len() as u64 > max
        {
            return Err(GuardError::TooManyDeletes {
                deletes: self.deletes.len(),
                max,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{FilterKind, FilterRule};
    use std::time::{Duration, UNIX_EPOCH};

    fn lf(rel: &str, size: u64, mtime: u64) -> LocalFile {
        LocalFile {
            rel: rel.into(),
            path: rel.into(),
            size,
            mtime: UNIX_EPOCH + Duration::from_secs(mtime),
            group: 0,
            encoding: None,
            source_size: size,
            id: None,
        }
    }
    fn ro(rel: &str, size: u64, etag: &str, lm: i64) -> RemoteObject {
        RemoteObject {
            rel: rel.into(),
            size,
            etag: etag.into(),
            last_modified: lm,
            version_id: None,
        }
    }
    fn digest(md5: &str) -> Option<LocalDigest> {
        Some(LocalDigest {
            md5: md5.into(),
            multipart: vec![],
        })
    }
    const A: &str = "0cc175b9c0f1b6a831c399e269772661";
    const B: &str = "92eb5ffee6ae2fec3ad71c777531578f";

    struct Case {
        name: &'static str,
        mode: CompareMode,
        local: Vec<LocalFile>,
        digests: Vec<Option<LocalDigest>>,
        remote: Vec<RemoteObject>,
        delete: bool,
        uploads: Vec<(&'static str, Reason)>,
        unchanged: Vec<&'static str>,
        deletes: Vec<&'static str>,
    }

    /// The plan's cases, one per rule (what is uploaded, unchanged and deleted, and why).
    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "first sync",
                mode: CompareMode::Checksum,
                local: vec![lf("a.css", 1, 0), lf("index.html", 1, 0)],
                digests: vec![None, None],
                remote: vec![],
                delete: false,
                uploads: vec![("a.css", Reason::New), ("index.html", Reason::New)],
                unchanged: vec![],
                deletes: vec![],
            },
            Case {
                name: "html goes last whatever the key order",
                mode: CompareMode::Checksum,
                local: vec![lf("a.html", 1, 0), lf("z.js", 1, 0)],
                digests: vec![None, None],
                remote: vec![],
                delete: false,
                uploads: vec![("z.js", Reason::New), ("a.html", Reason::New)],
                unchanged: vec![],
                deletes: vec![],
            },
            Case {
                name: "checksum: fresh mtimes, same content -> nothing",
                mode: CompareMode::Checksum,
                local: vec![lf("a", 1, 9_999_999)],
                digests: vec![digest(A)],
                remote: vec![ro("a", 1, A, 10)],
                delete: false,
                uploads: vec![],
                unchanged: vec!["a"],
                deletes: vec![],
            },
            Case {
                name: "checksum: same size other content",
                mode: CompareMode::Checksum,
                local: vec![lf("a", 1, 0)],
                digests: vec![digest(B)],
                remote: vec![ro("a", 1, A, 10)],
                delete: false,
                uploads: vec![("a", Reason::ContentDiffers)],
                unchanged: vec![],
                deletes: vec![],
            },
            Case {
                name: "checksum: size differs",
                mode: CompareMode::Checksum,
                local: vec![lf("a", 2, 0)],
                digests: vec![None],
                remote: vec![ro("a", 1, A, 10)],
                delete: false,
                uploads: vec![("a", Reason::SizeDiffers)],
                unchanged: vec![],
                deletes: vec![],
            },
            Case {
                name: "checksum: non-md5 etag",
                mode: CompareMode::Checksum,
                local: vec![lf("a", 1, 0)],
                digests: vec![None],
                remote: vec![ro("a", 1, "kms-opaque", 10)],
                delete: false,
                uploads: vec![("a", Reason::EtagNotMd5)],
                unchanged: vec![],
                deletes: vec![],
            },
        ]
    }

    /// The cases of the other compare modes and of deletes.
    fn more_cases() -> Vec<Case> {
        vec![
            Case {
                name: "size-and-mtime: newer local uploads",
                mode: CompareMode::SizeAndMtime,
                local: vec![lf("a", 1, 11)],
                digests: vec![None],
                remote: vec![ro("a", 1, A, 10)],
                delete: false,
                uploads: vec![("a", Reason::Newer)],
                unchanged: vec![],
                deletes: vec![],
            },
            Case {
                name: "size-and-mtime: older local skips",
                mode: CompareMode::SizeAndMtime,
                local: vec![lf("a", 1, 9)],
                digests: vec![None],
                remote: vec![ro("a", 1, A, 10)],
                delete: false,
                uploads: vec![],
                unchanged: vec!["a"],
                deletes: vec![],
            },
            Case {
                name: "size-only misses a same-size edit",
                mode: CompareMode::SizeOnly,
                local: vec![lf("a", 1, 99)],
                digests: vec![digest(B)],
                remote: vec![ro("a", 1, A, 10)],
                delete: false,
                uploads: vec![],
                unchanged: vec!["a"],
                deletes: vec![],
            },
            Case {
                name: "deletes only with delete on",
                mode: CompareMode::Checksum,
                local: vec![],
                digests: vec![],
                remote: vec![ro("old.js", 1, A, 1)],
                delete: false,
                uploads: vec![],
                unchanged: vec![],
                deletes: vec![],
            },
            Case {
                name: "delete extra keys",
                mode: CompareMode::Checksum,
                local: vec![lf("b", 1, 0)],
                digests: vec![digest(A)],
                remote: vec![ro("a", 1, A, 1), ro("b", 1, A, 1), ro("c", 1, A, 1)],
                delete: true,
                uploads: vec![],
                unchanged: vec!["b"],
                deletes: vec!["a", "c"],
            },
        ]
    }

    #[test]
    fn plan_table() {
        for c in cases().into_iter().chain(more_cases()) {
            let filters = Filters::default();
            let p = plan(&PlanInput {
                local: &c.local,
                remote: &c.remote,
                digests: &c.digests,
                mode: c.mode,
                delete: c.delete,
                filters: &filters,
                protected: &[],
            });
            let uploads: Vec<_> = p
                .uploads
                .iter()
                .map(|u| (c.local[u.index].rel.as_str(), u.reason))
                .collect();
            assert_eq!(uploads, c.uploads, "{}", c.name);
            let unchanged: Vec<_> = p
                .unchanged
                .iter()
                .map(|&i| c.local[i].rel.as_str())
                .collect();
            assert_eq!(unchanged, c.unchanged, "{}", c.name);
            assert_eq!(p.deletes, c.deletes, "{}", c.name);
        }
    }

    #[test]
    fn excluded_and_protected_keys_are_never_deleted() {
        let filters = Filters::new(&[FilterRule {
            kind: FilterKind::Exclude,
            pattern: "keep/*".into(),
        }])
        .expect("filters");
        let remote = vec![
            ro("gone", 1, A, 1),
            ro("keep/x", 1, A, 1),
            ro("unreadable", 1, A, 1),
        ];
        let p = plan(&PlanInput {
            local: &[],
            remote: &remote,
            digests: &[],
            mode: CompareMode::Checksum,
            delete: true,
            filters: &filters,
            protected: &["unreadable".to_string(), "gone-dir/".to_string()],
        });
        assert_eq!(p.deletes, vec!["gone"]);
        let remote = vec![ro("gone-dir/a", 1, A, 1), ro("gone-dirx", 1, A, 1)];
        let p = plan(&PlanInput {
            local: &[],
            remote: &remote,
            digests: &[],
            mode: CompareMode::Checksum,
            delete: true,
            filters: &filters,
            protected: &["gone-dir/".to_string()],
        });
        assert_eq!(p.deletes, vec!["gone-dirx"]);
    }

    #[test]
    fn stale_headers_move_unchanged_to_reheaders() {
        let local = vec![
            lf("a.css", 1, 0),
            lf("huge.bin", COPY_LIMIT + 1, 0),
            lf("b.html", 1, 0),
        ];
        let mut p = Plan {
            uploads: vec![Upload {
                index: 2,
                reason: Reason::New,
                html: true,
            }],
            unchanged: vec![0, 1],
            ..Default::default()
        };
        let class = HeaderClass {
            group: 0,
            members: vec![1, 0],
        };
        p.mark_classes_stale(&local, &[&class], &[]);
        assert_eq!(p.reheaders, vec![0]);
        assert_eq!(
            p.uploads.iter().map(|u| u.index).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(p.unchanged.is_empty());
    }

    /// The least recently written object is sampled, so an interrupted re-apply (which writes
    /// the others first and the sample last) is seen by the next run (issue 15, item 2).
    #[test]
    fn samples_are_the_least_recently_written_and_are_re_applied_last() {
        let mut local = vec![
            lf("a.css", 1, 0),
            lf("b.css", 1, 0),
            lf("c.js", 1, 0),
            lf("d.css", 1, 0),
            lf("e.html", 1, 0),
            lf("gone", 1, 0),
        ];
        local[4].group = 1;
        // a.css was re-applied by a run that stopped before b.css and d.css; e.html is alone in
        // its group. `gone` has no object (cannot happen for unchanged files: sorts first).
        let remote = vec![
            ro("a.css", 1, A, 200),
            ro("b.css", 1, A, 100),
            ro("c.js", 1, A, 100),
            ro("d.css", 1, A, 100),
            ro("e.html", 1, A, 50),
        ];
        let order = sample_order(&[0, 1, 2, 3, 4], &local, &remote);
        assert_eq!(order, vec![4, 1, 2, 3, 0]);
        assert_eq!(sample_order(&[5, 0], &local, &remote), vec![5, 0]);

        let ext = |i: usize| local[i].rel.rsplit('.').next().unwrap_or("").to_string();
        let classes = header_classes(&order, &local, ext);
        assert_eq!(
            classes,
            vec![
                HeaderClass {
                    group: 1,
                    members: vec![4]
                },
                HeaderClass {
                    group: 0,
                    members: vec![1, 3, 0]
                },
                HeaderClass {
                    group: 0,
                    members: vec![2]
                },
            ]
        );
        // Group samples: e.html (group 1) and b.css (group 0).
        let mut p = Plan {
            unchanged: vec![0, 1, 2, 3, 4],
            ..Default::default()
        };
        p.mark_classes_stale(&local, &[&classes[1], &classes[2]], &[4, 1]);
        assert_eq!(p.reheaders, vec![0, 3], "the rest of the css class first");
        assert_eq!(p.reheader_samples, vec![2], "then the js class's sample");
        assert_eq!(p.reheader_sentinels, vec![1], "the group's sample last");
        assert_eq!(p.unchanged, vec![4]);
    }

    #[test]
    fn guards() {
        let p = |deletes: &[&str]| Plan {
            deletes: deletes.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        };
        /// (name, plan's deletes, local files, remote objects, MAX_DELETE, outcome)
        type Case = (
            &'static str,
            Plan,
            usize,
            usize,
            Option<u64>,
            Result<(), GuardError>,
        );
        let cases: Vec<Case> = vec![
            (
                "over MAX_DELETE",
                p(&["a", "b"]),
                1,
                3,
                Some(1),
                Err(GuardError::TooManyDeletes { deletes: 2, max: 1 }),
            ),
            ("at MAX_DELETE", p(&["a", "b"]), 1, 3, Some(2), Ok(())),
            (
                "empty source deleting everything",
                p(&["a", "b", "c"]),
                0,
                3,
                None,
                Err(GuardError::EmptySource {
                    deletes: 3,
                    remote: 3,
                }),
            ),
            (
                "empty source deleting what the filters include",
                p(&["a"]),
                0,
                3,
                None,
                Err(GuardError::EmptySource {
                    deletes: 1,
                    remote: 3,
                }),
            ),
            // --exclude '*' (or deletes off): nothing planned, nothing to guard against.
            (
                "empty source, nothing to delete",
                p(&[]),
                0,
                3,
                None,
                Ok(()),
            ),
            ("empty source, empty target", p(&[]), 0, 0, None, Ok(())),
        ];
        for (name, plan, local, remote, max, want) in cases {
            assert_eq!(plan.check_guards(local, remote, max), want, "{name}");
        }
        let all = GuardError::EmptySource {
            deletes: 3,
            remote: 3,
        };
        assert!(all.to_string().contains("would delete all 3 objects under"));
        let some = GuardError::EmptySource {
            deletes: 1,
            remote: 3,
        };
        assert!(some.to_string().contains("would delete 1 of the 3 objects"));
    }

    /// Keys below a skipped folder are never deleted, whether or not the folder was recorded
    /// with its trailing `/` (issue 16: `locked` protected nothing below it).
    #[test]
    fn protection_table() {
        // (protected, key, protected?)
        let cases = [
            (&["locked"][..], "locked/b.txt", true),
            (&["locked/"], "locked/b.txt", true),
            (&["locked"], "locked/deep/c.txt", true),
            (&["locked"], "locked", true),
            (&["locked"], "lockedx", false),
            (&["locked"], "locked.txt", false),
            (&["locked/"], "lockedx/b.txt", false),
            (&["a/locked"], "a/locked/b", true),
            (&["a/locked"], "a/b", false),
            (&["file.txt"], "file.txt", true),
            (&[""], "anything/at/all", true),
            (&["/"], "x", true),
            (&[], "x", false),
        ];
        for (protected, key, want) in cases {
            let protected: Vec<String> = protected.iter().map(|s| s.to_string()).collect();
            assert_eq!(is_protected(&protected, key), want, "{protected:?} {key}");
            let remote = vec![ro(key, 1, A, 1)];
            let p = plan(&PlanInput {
                local: &[],
                remote: &remote,
                digests: &[],
                mode: CompareMode::Checksum,
                delete: true,
                filters: &Filters::default(),
                protected: &protected,
            });
            assert_eq!(p.deletes.is_empty(), want, "{protected:?} {key}");
        }
    }
}
