//! Where AWS credentials come from: OIDC role, access keys, or the AWS chain.

use super::{Problems, RawVars, Secret, int_var, non_empty};
use crate::jwt::Claims;

/// STS limits for `DurationSeconds` of AssumeRoleWithWebIdentity.
const MIN_SESSION_DURATION: u32 = 900;
const MAX_SESSION_DURATION: u32 = 43_200;
/// Default STS session length, as the AWS SDKs use.
const DEFAULT_SESSION_DURATION: u32 = 3600;

#[derive(Debug, Clone)]
pub(crate) enum CredentialSource {
    /// Bitbucket OIDC: trade the step's token with STS AssumeRoleWithWebIdentity.
    Oidc {
        role_arn: String,
        token: Secret,
        claims: Box<Claims>,
        session_name: String,
        duration_secs: u32,
    },
    /// Static access keys from pipe variables.
    AccessKeys {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
    /// The standard AWS chain: profiles, web identity file, container and instance credentials.
    DefaultChain,
    /// `--no-sign-request`: unsigned requests, no credentials loaded.
    Anonymous,
}

/// Check an IAM role ARN: `arn:<partition>:iam::<12-digit account>:role/<optional path/>name`.
pub(crate) fn role_arn_problem(arn: &str) -> Option<String> {
    let fix = "expected arn:aws:iam::123456789012:role/NAME (copy it from the IAM console)";
    let mut it = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) else {
        return Some(format!("{arn:?} is not an IAM role ARN: {fix}"));
    };
    if !partition.starts_with("aws") {
        return Some(format!(
            "{arn:?} has an unknown partition {partition:?}: {fix}"
        ));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!(
            "{arn:?} has account {account:?}, which is not 12 digits: {fix}"
        ));
    }
    let Some(path_name) = resource.strip_prefix("role/") else {
        return Some(format!(
            "{arn:?} does not name a role (\"role/...\"): {fix}"
        ));
    };
    let name = path_name.rsplit('/').next().unwrap_or("");
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Some(format!(
            "{arn:?} has an invalid role name {name:?}: 1 to 64 of letters, digits and +=,.@_-"
        ));
    }
    None
}

/// Why a credential value cannot be what AWS (or an S3-compatible store) issued, or `None`.
/// Access key ids, secret keys and session tokens are printable ASCII without spaces; what
/// copy and paste adds (a zero-width space, a non-breaking space, a newline, smart quotes)
/// would otherwise fail later as `SignatureDoesNotMatch`, or worse. The message says where
/// and what the character is, never the value.
pub(crate) fn credential_form_problem(value: &str) -> Option<String> {
    let (pos, c) = value
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_graphic())?;
    let what = match c {
        ' ' => "a space".to_string(),
        '\n' | '\r' => "a line break".to_string(),
        '\t' => "a tab".to_string(),
        '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}' => {
            format!("an invisible character (U+{:04X})", c as u32)
        }
        c if c.is_whitespace() => format!("a space character (U+{:04X})", c as u32),
        c if c.is_control() => format!("a control character (U+{:04X})", c as u32),
        c => format!("the non-ASCII character U+{:04X}", c as u32),
    };
    Some(format!(
        "holds {what} at character {} of {}: credentials are printable ASCII; paste the value again without it (copy it from the IAM console or the credentials file)",
        pos + 1,
        value.chars().count()
    ))
}

/// `[\w+=,.@-]{2,64}`, the STS RoleSessionName pattern.
fn session_name_ok(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

/// A session name from the repository slug and build number, sanitised to STS's pattern.
fn derived_session_name(slug: Option<&str>, build: Option<&str>) -> String {
    let raw = match (slug, build) {
        (Some(s), Some(b)) => format!("bitbucket-{s}-{b}"),
        (Some(s), None) => format!("bitbucket-{s}"),
        (None, Some(b)) => format!("bitbucket-build-{b}"),
        (None, None) => "s3-deploy-pipe".to_string(),
    };
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.len() < 2 {
        name = "s3-deploy-pipe".to_string();
    }
    name
}

pub(super) fn resolve_credentials(
    raw: &RawVars,
    p: &mut Problems,
    warnings: &mut Vec<String>,
    secrets: &mut Vec<String>,
) -> CredentialSource {
    let token = non_empty(&raw.bitbucket_step_oidc_token);
    if let Some(t) = token {
        secrets.push(t.to_string());
        // The JWT's segments too, so that no long piece of it can be printed either.
        secrets.extend(t.split('.').filter(|s| s.len() > 16).map(str::to_string));
    }
    let secret_key = non_empty(&raw.aws_secret_access_key);
    let session_token = non_empty(&raw.aws_session_token);
    secrets.extend(secret_key.map(str::to_string));
    secrets.extend(session_token.map(str::to_string));
    let key_id = non_empty(&raw.aws_access_key_id);
    for (name, value) in [
        ("AWS_ACCESS_KEY_ID", key_id),
        ("AWS_SECRET_ACCESS_KEY", secret_key),
        ("AWS_SESSION_TOKEN", session_token),
    ] {
        if let Some(problem) = value.and_then(credential_form_problem) {
            p.add(name, problem);
        }
    }

    let duration = int_var(
        p,
        "AWS_ROLE_SESSION_DURATION",
        &raw.aws_role_session_duration,
        (MIN_SESSION_DURATION, MAX_SESSION_DURATION),
        "STS accepts 900 to 43200 seconds, and at most the role's maximum session duration",
    )
    .unwrap_or(DEFAULT_SESSION_DURATION);
    let session_name = match non_empty(&raw.aws_role_session_name) {
        Some(n) if session_name_ok(n) => n.to_string(),
        Some(n) => {
            p.add(
                "AWS_ROLE_SESSION_NAME",
                format!(
                    "{n:?} is not a valid session name: use 2 to 64 of letters, digits and _+=,.@-"
                ),
            );
            n.to_string()
        }
        None => derived_session_name(
            non_empty(&raw.bitbucket_repo_slug),
            non_empty(&raw.bitbucket_build_number),
        ),
    };

    let keys = match (key_id, secret_key) {
        (Some(id), Some(secret)) => Some(CredentialSource::AccessKeys {
            access_key_id: id.to_string(),
            secret_access_key: Secret::new(secret.to_string()),
            session_token: session_token.map(|t| Secret::new(t.to_string())),
        }),
        (Some(_), None) => {
            p.add(
                "AWS_SECRET_ACCESS_KEY",
                "is missing while AWS_ACCESS_KEY_ID is set: set both, or neither to use OIDC or the AWS credential chain",
            );
            None
        }
        (None, Some(_)) => {
            p.add(
                "AWS_ACCESS_KEY_ID",
                "is missing while AWS_SECRET_ACCESS_KEY is set: set both, or neither to use OIDC or the AWS credential chain",
            );
            None
        }
        (None, None) => None,
    };

    let Some(role_arn) = non_empty(&raw.aws_oidc_role_arn) else {
        return keys.unwrap_or(CredentialSource::DefaultChain);
    };
    if let Some(problem) = role_arn_problem(role_arn) {
        p.add("AWS_OIDC_ROLE_ARN", problem);
    }
    let Some(token) = token else {
        if let Some(keys) = keys {
            warnings.push(
                "AWS_OIDC_ROLE_ARN is set but BITBUCKET_STEP_OIDC_TOKEN is missing: using AWS_ACCESS_KEY_ID instead. Add \"oidc: true\" to the step to use OIDC.".to_string(),
            );
            return keys;
        }
        p.add(
            "BITBUCKET_STEP_OIDC_TOKEN",
            "is missing while AWS_OIDC_ROLE_ARN is set: add \"oidc: true\" to the step in bitbucket-pipelines.yml",
        );
        return CredentialSource::DefaultChain;
    };
    let claims = match crate::jwt::decode_claims(token) {
        Ok(c) => c,
        Err(e) => {
            p.add(
                "BITBUCKET_STEP_OIDC_TOKEN",
                format!("is not a JWT ({e}): pass the step's own token, i.e. add \"oidc: true\" to the step and do not set this variable yourself"),
            );
            Claims::default()
        }
    };
    CredentialSource::Oidc {
        role_arn: role_arn.to_string(),
        token: Secret::new(token.to_string()),
        claims: Box::new(claims),
        session_name,
        duration_secs: duration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_forms() {
        assert_eq!(credential_form_problem("AKIAIOSFODNN7EXAMPLE"), None);
        assert_eq!(
            credential_form_problem("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY+=="),
            None
        );
        let p = credential_form_problem("AKI\u{200b}EXAMPLE").unwrap_or_default();
        assert!(
            p.contains("an invisible character (U+200B) at character 4 of 11"),
            "{p}"
        );
        let p = credential_form_problem("secretvalue\n").unwrap_or_default();
        assert!(p.contains("a line break at character 12"), "{p}");
        assert!(!p.contains("secretvalue"), "never the value: {p}");
        let p = credential_form_problem("a\u{a0}b").unwrap_or_default();
        assert!(p.contains("a space character (U+00A0)"), "{p}");
        let p = credential_form_problem("clé").unwrap_or_default();
        assert!(p.contains("the non-ASCII character U+00E9"), "{p}");
    }

    #[test]
    fn session_names() {
        assert_eq!(
            derived_session_name(Some("my repo"), Some("42")),
            "bitbucket-my-repo-42"
        );
        assert_eq!(derived_session_name(None, None), "s3-deploy-pipe");
        assert_eq!(derived_session_name(Some(&"x".repeat(100)), None).len(), 64);
        assert!(session_name_ok("a_b+=,.@-1"));
        assert!(!session_name_ok("a"));
        assert!(!session_name_ok("a b"));
    }
}
