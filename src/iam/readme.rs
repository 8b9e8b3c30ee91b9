//! The README's IAM section, generated from [`super::PERMISSIONS`], and the tests that keep
//! it and the code's SDK calls equal to the table.

use super::*;

/// A use of the pipe, and the features it needs: the README gives each its least policy.
#[cfg(test)]
struct Use {
    title: &'static str,
    features: &'static [Feature],
}

/// The README's policies, one per use.
#[cfg(test)]
const USES: &[Use] = &[
    Use {
        title: "**Deploy only** (uploads, and the release state the pipe keeps by default; no deletes):",
        features: &[Deploy, Releases],
    },
    Use {
        title: "**Deploy with deletes** (`DELETE_FLAG=true`, with or without `DELETE_GRACE`):",
        features: &[Deploy, Releases, Deletes],
    },
    Use {
        title: "**Releases and rollback** (deploys whose releases can be rolled back to, `ROLLBACK`, `RELEASES=list`):",
        features: &[Deploy, Releases, Rollback],
    },
    Use {
        title: "**Invalidation** (`DISTRIBUTION_ID`: alone for an invalidation-only run, without `S3_BUCKET`, or added to one of the above):",
        features: &[Invalidation],
    },
];

/// Settings that add a statement to any of the policies above.
#[cfg(test)]
const OPTIONS: &[(&str, Feature)] = &[
    (
        "`ACL`, `--acl` or `--grants` (or a rollback to a release deployed with one)",
        Feature::Acl,
    ),
    (
        "SSE-KMS with a customer-managed key (`--sse aws:kms --sse-kms-key-id`, or the bucket's default encryption)",
        Feature::SseKms,
    ),
    ("`WAIT=true`", Feature::Wait),
];

/// The placeholders the README writes.
#[cfg(test)]
const README_NAMES: Names<'static> = Names {
    bucket: "BUCKET",
    prefix: "site/",
    state_prefix: "site/.s3-deploy-pipe/",
    account: "ACCOUNT",
    distribution: "DISTRIBUTION_ID",
};

/// The statements `features` need (permissions policies only: the trust policy is not one),
/// one per resource, actions sorted.
#[cfg(test)]
fn statements(features: &[Feature]) -> Vec<String> {
    let mut by_resource: std::collections::BTreeMap<
        Resource,
        std::collections::BTreeSet<&'static str>,
    > = Default::default();
    for p in PERMISSIONS {
        if p.resource != Resource::TrustPolicy && p.features.iter().any(|f| features.contains(f)) {
            by_resource.entry(p.resource).or_default().insert(p.action);
        }
    }
    by_resource
        .iter()
        .map(|(r, acts)| {
            let action = match acts.iter().collect::<Vec<_>>().as_slice() {
                [one] => format!("\"{one}\""),
                many => format!(
                    "[{}]",
                    many.iter()
                        .map(|a| format!("\"{a}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            format!(
                "{{\"Effect\": \"Allow\", \"Action\": {action}, \"Resource\": \"{}\"}}",
                r.arn(&README_NAMES)
            )
        })
        .collect()
}

/// The README's block between `<!-- iam-policies:begin -->` and `<!-- iam-policies:end -->`:
/// a policy per use, the statements settings add, and the table itself.
#[cfg(test)]
pub(crate) fn readme_block() -> String {
    let mut s = String::new();
    for u in USES {
        s.push_str(&format!(
            "{}\n\n```json\n{{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {}\n  ]\n}}\n```\n\n",
            u.title,
            statements(u.features).join(",\n    ")
        ));
    }
    s.push_str("Add to any of them, for these settings:\n\n| Setting | Statement to add |\n| --- | --- |\n");
    for (setting, feature) in OPTIONS {
        for st in statements(&[*feature]) {
            s.push_str(&format!("| {setting} | `{st}` |\n"));
        }
    }
    s.push_str("\nEvery AWS operation the pipe calls, and what it needs:\n\n| Operation | IAM action | Resource | Used by | Needed |\n| --- | --- | --- | --- | --- |\n");
    for p in PERMISSIONS {
        let service = match p.service {
            Service::S3 => "S3",
            Service::Sts => "STS",
            Service::CloudFront => "CloudFront",
        };
        let resource = match p.resource {
            Resource::TrustPolicy => p.resource.arn(&README_NAMES),
            r => format!("`{}`", r.arn(&README_NAMES)),
        };
        let used: Vec<&str> = p.features.iter().map(|f| f.label()).collect();
        s.push_str(&format!(
            "| {service} {} | `{}` | {resource} | {} | {} |\n",
            p.operation,
            p.action,
            used.join(", "),
            p.when.unwrap_or("in every request")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use super::*;

    /// README.md's policies are generated from [`PERMISSIONS`]: regenerate them with
    /// `S3_DEPLOY_PIPE_BLESS=1 cargo test --lib readme_iam_policies`.
    #[test]
    fn readme_iam_policies_match() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let (begin, end) = ("<!-- iam-policies:begin -->\n", "<!-- iam-policies:end -->");
        let start = readme.find(begin).expect("README has the begin marker") + begin.len();
        let stop = readme.find(end).expect("README has the end marker");
        let want = readme_block();
        if std::env::var_os("S3_DEPLOY_PIPE_BLESS").is_some() {
            let new = format!("{}{want}{}", &readme[..start], &readme[stop..]);
            std::fs::write(path, new).expect("write README.md");
            return;
        }
        assert!(
            readme[start..stop] == want,
            "README.md's IAM policies differ from iam::PERMISSIONS; run S3_DEPLOY_PIPE_BLESS=1 cargo test --lib readme_iam_policies"
        );
        // The trust policy is written by hand (its conditions are the user's): it must allow
        // what the table says a trust policy allows.
        for p in PERMISSIONS.iter().filter(|p| p.resource == TrustPolicy) {
            let want = format!("\"Action\": \"{}\"", p.action);
            assert!(
                readme.contains(&want),
                "README.md's trust policy does not allow {} ({want})",
                p.action
            );
        }
    }

    /// The issue that made this table (#29): under the README's policy a failed multipart
    /// upload could not be aborted, and its parts stayed billed.
    #[test]
    fn every_deploy_policy_can_abort_multipart_uploads() {
        for u in USES.iter().filter(|u| u.features.contains(&Deploy)) {
            let text = statements(u.features).join("\n");
            assert!(
                text.contains("\"s3:AbortMultipartUpload\"") && text.contains("\"s3:PutObject\""),
                "{}: {text}",
                u.title
            );
        }
    }

    #[test]
    fn rows_are_well_formed() {
        for p in PERMISSIONS {
            let prefix = match p.resource {
                Bucket | Objects | State => "s3:",
                Distribution => "cloudfront:",
                KmsKey => "kms:",
                TrustPolicy => "sts:",
            };
            assert!(p.action.starts_with(prefix), "{p:?}");
            assert!(!p.features.is_empty(), "{p:?}");
            assert!(
                p.operation
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_uppercase()),
                "{p:?}"
            );
        }
    }

    #[test]
    fn access_denied_messages_name_action_and_resource() {
        assert_eq!(
            s3_allow("AbortMultipartUpload", "b", Some("site/a.bin"), false).as_deref(),
            Some("allow s3:AbortMultipartUpload on arn:aws:s3:::b/site/a.bin")
        );
        assert_eq!(
            s3_allow("ListObjectsV2", "b", None, false).as_deref(),
            Some("allow s3:ListBucket on arn:aws:s3:::b")
        );
        assert_eq!(
            s3_allow("ListObjectVersions", "b", None, false).as_deref(),
            Some("allow s3:ListBucketVersions on arn:aws:s3:::b")
        );
        assert_eq!(
            s3_allow("PutObject", "b", Some("k"), true).as_deref(),
            Some("allow s3:PutObject and s3:PutObjectAcl (ACL is set) on arn:aws:s3:::b/k")
        );
        assert_eq!(
            s3_allow("UploadPart", "b", Some("k"), true).as_deref(),
            Some("allow s3:PutObject on arn:aws:s3:::b/k")
        );
        assert_eq!(
            s3_allow("CopyObject", "b", Some("k"), false).as_deref(),
            Some(
                "allow s3:GetObject and s3:PutObject on arn:aws:s3:::b/k, and s3:GetObjectVersion to copy an earlier version of the key (a rollback)"
            )
        );
        assert_eq!(
            s3_allow("DeleteObjects", "b", None, false).as_deref(),
            Some("allow s3:DeleteObject on arn:aws:s3:::b/*")
        );
        assert_eq!(s3_allow("CreateInvalidation", "b", None, false), None);
        let names = Names {
            account: "123",
            distribution: "E1",
            ..Names::default()
        };
        assert_eq!(
            allow(CloudFront, &[Invalidation, Wait], &names),
            "allow cloudfront:CreateInvalidation and cloudfront:GetInvalidation on arn:aws:cloudfront::123:distribution/E1"
        );
        assert_eq!(actions(Sts, &[Oidc]), ["sts:AssumeRoleWithWebIdentity"]);
    }

    /// `ListObjectsV2` → `list_objects_v2`: the SDK's method for an operation.
    fn snake(operation: &str) -> String {
        let mut s = String::new();
        for (i, c) in operation.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    s.push('_');
                }
                s.push(c.to_ascii_lowercase());
            } else {
                s.push(c);
            }
        }
        s
    }

    /// The version of `name` in Cargo.lock.
    fn locked_version(name: &str) -> String {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"))
            .expect("Cargo.lock");
        let entry = format!("name = \"{name}\"\nversion = \"");
        let at = lock.find(&entry).expect("the SDK crate is in Cargo.lock") + entry.len();
        lock[at..].split('"').next().unwrap_or_default().to_string()
    }

    /// The unpacked sources of `name` (as Cargo.lock pins it) in Cargo's registry
    /// (`$CARGO_HOME`, by default `~/.cargo`), or in `vendor/`.
    fn sdk_sources(name: &str) -> PathBuf {
        let dir = format!("{name}-{}", locked_version(name));
        let vendored = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("vendor")
            .join(name);
        if vendored.is_dir() {
            return vendored;
        }
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .expect("CARGO_HOME or HOME");
        let registry = home.join("registry").join("src");
        std::fs::read_dir(&registry)
            .into_iter()
            .flatten()
            .flatten()
            .map(|index| index.path().join(&dir))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| {
                panic!(
                    "the sources of {dir} are not in {} (set CARGO_HOME to Cargo's home)",
                    registry.display()
                )
            })
    }

    /// The methods of the crate's `Client` that send a request: one file per operation in
    /// `src/client/`, and the waiters (`wait_until_*`, which poll an operation).
    fn sdk_operations(name: &str) -> BTreeSet<String> {
        let src = sdk_sources(name).join("src");
        let mut ops = BTreeSet::new();
        for entry in std::fs::read_dir(src.join("client")).expect("the SDK's src/client") {
            let path = entry.expect("read src/client").path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if path.extension().is_some_and(|e| e == "rs")
                && std::fs::read_to_string(&path)
                    .is_ok_and(|t| t.contains(&format!("pub fn {stem}(&self)")))
            {
                ops.insert(stem.to_string());
            }
        }
        let client = std::fs::read_to_string(src.join("client.rs")).unwrap_or_default();
        for part in client.split("fn wait_until_").skip(1) {
            let waiter: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            ops.insert(format!("wait_until_{waiter}"));
        }
        assert!(ops.len() > 10, "no operations found in {}", src.display());
        ops
    }

    /// `text` with its comments and its string and char literals blanked, so that a name in
    /// them is not taken for a call.
    fn code_only(text: &str) -> String {
        let c: Vec<char> = text.chars().collect();
        let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < c.len() {
            let next = c.get(i + 1).copied();
            // A raw string: r"…", r#"…"#, br"…".
            let raw = {
                let mut j = i;
                if c[j] == 'b' || c[j] == 'c' {
                    j += 1;
                }
                let mut hashes = 0;
                if c.get(j) == Some(&'r') && (i == 0 || !ident(c[i - 1])) {
                    j += 1;
                    while c.get(j) == Some(&'#') {
                        hashes += 1;
                        j += 1;
                    }
                    (c.get(j) == Some(&'"')).then_some((j + 1, hashes))
                } else {
                    None
                }
            };
            if let Some((body, hashes)) = raw {
                let close: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let rest: String = c[body..].iter().collect();
                let len = rest.find(&close).map_or(rest.len(), |n| n + close.len());
                i = body + rest[..len].chars().count();
                out.push_str("\"\"");
                continue;
            }
            match (c[i], next) {
                ('/', Some('/')) => {
                    while i < c.len() && c[i] != '\n' {
                        i += 1;
                    }
                }
                ('/', Some('*')) => {
                    let mut depth = 0;
                    while i < c.len() {
                        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                            depth += 1;
                            i += 2;
                        } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        } else {
                            i += 1;
                        }
                    }
                    out.push(' ');
                }
                ('"', _) => {
                    i += 1;
                    while i < c.len() && c[i] != '"' {
                        i += if c[i] == '\\' { 2 } else { 1 };
                    }
                    i += 1;
                    out.push_str("\"\"");
                }
                ('\'', Some('\\')) => {
                    i += 3;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                    out.push_str("' '");
                }
                ('\'', Some(_)) if c.get(i + 2) == Some(&'\'') => {
                    i += 3;
                    out.push_str("' '");
                }
                (ch, _) => {
                    out.push(ch);
                    i += 1;
                }
            }
        }
        out
    }

    #[test]
    fn code_only_blanks_comments_and_literals() {
        let text = "a.list_objects_v2(); // .get_object()\n/* .x() /* .y() */ */ \"s .z() \\\" .w()\" r#\"\" .v()\"# '\"' .u() 'a: loop {} '\\'' b.head_object()";
        let code = code_only(text);
        assert!(code.contains(".list_objects_v2()"), "{code}");
        assert!(code.contains("b.head_object()"), "{code}");
        assert!(code.contains("'a: loop"), "{code}");
        for gone in [".get_object()", ".x()", ".y()", ".z()", ".w()", ".v()"] {
            assert!(!code.contains(gone), "{gone} in {code}");
        }
        assert!(
            code.contains(".u()"),
            "a char literal ends where it should: {code}"
        );
    }

    /// Every SDK operation that code under `src/` calls (`.operation()`, the fluent builder of
    /// an S3, STS or CloudFront client) has its rows in [`PERMISSIONS`], and every operation
    /// there is called: a new call cannot ship without its permission (and the README's
    /// policies, generated from the table, granting it).
    #[test]
    fn every_sdk_call_is_in_the_table() {
        let mut sdk: BTreeMap<String, Service> = BTreeMap::new();
        for (krate, service) in [
            ("aws-sdk-s3", S3),
            ("aws-sdk-sts", Sts),
            ("aws-sdk-cloudfront", CloudFront),
        ] {
            for op in sdk_operations(krate) {
                sdk.insert(op, service);
            }
        }
        // An operation counts as listed by a row it needs in every request, for a feature of
        // its own: ACL and SSE-KMS only add actions to operations that other features call.
        let listed: BTreeSet<(Service, String)> = PERMISSIONS
            .iter()
            .filter(|p| p.when.is_none() && p.features.iter().any(|f| !matches!(f, Acl | SseKms)))
            .map(|p| (p.service, snake(p.operation)))
            .collect();
        for p in PERMISSIONS {
            assert!(
                listed.contains(&(p.service, snake(p.operation))),
                "iam::PERMISSIONS has conditional rows for {}, but none for the action it needs in every request",
                p.operation
            );
        }
        for (service, op) in &listed {
            assert_eq!(
                sdk.get(op),
                Some(service),
                "iam::PERMISSIONS lists {op}, which is no operation of the {service:?} SDK"
            );
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut unlisted = Vec::new();
        let mut called = BTreeSet::new();
        for entry in walkdir::WalkDir::new(&src) {
            let entry = entry.expect("walk src");
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let code = code_only(&std::fs::read_to_string(path).expect("read source"));
            for (i, _) in code.match_indices('.') {
                let name: String = code[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !code[i + 1 + name.len()..].starts_with("()") {
                    continue;
                }
                if let Some(service) = sdk.get(&name) {
                    called.insert((*service, name.clone()));
                    if !listed.contains(&(*service, name.clone())) {
                        let rel = path.strip_prefix(&src).unwrap_or(path);
                        unlisted.push(format!("{}: {service:?} .{name}()", rel.display()));
                    }
                }
            }
        }
        assert!(
            unlisted.is_empty(),
            "code calls AWS operations that iam::PERMISSIONS does not list: {unlisted:?}. Add a row per IAM action each needs (resource, features), then regenerate the README: S3_DEPLOY_PIPE_BLESS=1 cargo test --lib readme_iam_policies"
        );
        let stale: Vec<_> = listed.difference(&called).collect();
        assert!(
            stale.is_empty(),
            "iam::PERMISSIONS lists operations that no code calls: {stale:?}. Remove their rows, then regenerate the README: S3_DEPLOY_PIPE_BLESS=1 cargo test --lib readme_iam_policies"
        );
    }
}
