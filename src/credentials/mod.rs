//! AWS credentials, in the pipe's order: Bitbucket OIDC, then access keys, then the AWS chain.
//!
//! OIDC calls STS `AssumeRoleWithWebIdentity` directly with the step's token. When STS refuses,
//! [`explain_sts_failure`] turns the error code and the token's own claims into the fix.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_smithy_types::date_time::Format;

use crate::config::{Config, CredentialSource};
use crate::jwt::Claims;
use crate::output::Output;

pub(crate) use crate::network::NO_CREDENTIALS;

/// Errors of this stage. The Display text is what the user reads after `✖`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CredentialsError {
    /// No region anywhere: a configuration error.
    #[error(
        "AWS_DEFAULT_REGION is not set and no region was found in the AWS configuration: set AWS_DEFAULT_REGION (for example eu-west-1)"
    )]
    MissingRegion,
    /// No source gave credentials: a configuration gap, found before any work.
    #[error("{NO_CREDENTIALS}")]
    NoCredentials,
    /// The AWS chain found a source, but it failed (a profile, a web identity file, …).
    #[error("the AWS credential chain failed: {0}")]
    ChainFailed(String),
    /// STS refused the token; the lines explain it claim by claim.
    #[error("{}", .0.join("\n  "))]
    StsRefused(Vec<String>),
}

impl CredentialsError {
    /// Configuration errors exit 2; AWS refusals exit 1.
    pub(crate) fn is_config(&self) -> bool {
        matches!(
            self,
            CredentialsError::MissingRegion | CredentialsError::NoCredentials
        )
    }
}

fn loader(config: &Config, region: &Region) -> aws_config::ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region.clone());
    // EXTRA_ARGS global options: `--profile` names the profile of the AWS chain, `--ca-bundle`
    // replaces the trusted roots. (`--endpoint-url` concerns S3 only: `sync::request_extras`.)
    if let Some(profile) = &config.profile {
        loader = loader.profile_name(profile);
    }
    // Every client (STS, S3, CloudFront, the default chain's providers) shares one HTTP client:
    // the SDK's, with the stall guard and `--ca-bundle`'s trust store (`network`).
    let timeouts = crate::network::Timeouts::new(config.read_timeout, config.connect_timeout);
    // An unreadable bundle was refused when the configuration was resolved.
    let ca_pem = config
        .ca_bundle
        .as_ref()
        .and_then(|p| std::fs::read(p).ok());
    loader
        .http_client(crate::network::http_client(timeouts, ca_pem))
        .timeout_config(timeouts.sdk_config())
        // The guard measures progress on every call; the SDK's minimum-throughput check would
        // only add a second, differently configured clock on some uploads.
        .stalled_stream_protection(aws_sdk_s3::config::StalledStreamProtectionConfig::disabled())
}

/// Resolve the region and credentials into the SDK configuration every client is built from.
pub(crate) async fn resolve(config: &Config, out: &Output) -> Result<SdkConfig, CredentialsError> {
    let region = match &config.region {
        Some(r) => Region::new(r.clone()),
        None => {
            let mut chain = aws_config::default_provider::region::DefaultRegionChain::builder();
            if let Some(profile) = &config.profile {
                chain = chain.profile_name(profile);
            }
            chain
                .build()
                .region()
                .await
                .ok_or(CredentialsError::MissingRegion)?
        }
    };
    tracing::debug!(region = %region, "region resolved");
    match &config.credentials {
        CredentialSource::Oidc {
            role_arn,
            token,
            claims,
            session_name,
            duration_secs,
        } => {
            let oidc = Oidc {
                role_arn,
                token,
                claims,
                session_name,
                duration_secs: *duration_secs,
            };
            assume_role(config, &region, &oidc, out).await
        }
        CredentialSource::AccessKeys {
            access_key_id,
            secret_access_key,
            session_token,
        } => {
            out.info(format!(
                "Authenticating with access key {}",
                mask_key_id(access_key_id)
            ));
            let provider = Credentials::new(
                access_key_id,
                secret_access_key.expose(),
                session_token.as_ref().map(|t| t.expose().to_string()),
                None,
                "pipe-variables",
            );
            Ok(loader(config, &region)
                .credentials_provider(provider)
                .load()
                .await)
        }
        CredentialSource::Anonymous => {
            out.info("Sending unsigned requests (--no-sign-request)");
            Ok(loader(config, &region).no_credentials().load().await)
        }
        CredentialSource::DefaultChain => {
            out.info("Authenticating with the default AWS credential chain");
            let sdk = loader(config, &region).load().await;
            // Resolve now, before scanning or listing: with no credentials anywhere, the
            // first S3 request would fail with a transport error deep in the sync.
            check_chain(&sdk).await?;
            Ok(sdk)
        }
    }
}

/// The OIDC source's values (see `CredentialSource::Oidc`).
struct Oidc<'a> {
    role_arn: &'a String,
    token: &'a crate::config::Secret,
    claims: &'a crate::jwt::Claims,
    session_name: &'a String,
    duration_secs: u32,
}

/// Trade the step's OIDC token for the role's credentials (STS AssumeRoleWithWebIdentity),
/// renewed before they expire for as long as the token is valid.
async fn assume_role(
    config: &Config,
    region: &Region,
    oidc: &Oidc<'_>,
    out: &Output,
) -> Result<SdkConfig, CredentialsError> {
    let Oidc {
        role_arn,
        token,
        claims,
        session_name,
        duration_secs,
    } = *oidc;
    let duration_secs = &duration_secs;
    out.info(format!(
        "Authenticating with OpenID Connect: assuming role {role_arn} (session {session_name})"
    ));
    let sts_config = loader(config, region).no_credentials().load().await;
    let sts = aws_sdk_sts::Client::new(&sts_config);
    let result = sts
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .web_identity_token(token.expose())
        .duration_seconds(i32::try_from(*duration_secs).unwrap_or(3600))
        .send()
        .await;
    let resp = match result {
        Ok(resp) => resp,
        Err(err) => {
            let (code, message) = match err.as_service_error() {
                Some(e) => (
                    e.code().map(str::to_string),
                    e.message().map(str::to_string),
                ),
                None => (None, Some(crate::s3::error::code_and_detail(&err).1)),
            };
            return Err(CredentialsError::StsRefused(explain_sts_failure(
                code.as_deref(),
                message.as_deref(),
                claims,
                role_arn,
                unix_now(),
            )));
        }
    };
    let Some(creds) = resp.credentials() else {
        return Err(CredentialsError::StsRefused(vec![
            "STS answered AssumeRoleWithWebIdentity without credentials".into(),
        ]));
    };
    out.add_secret(creds.secret_access_key());
    out.add_secret(creds.session_token());
    let assumed = resp
        .assumed_role_user()
        .map(|u| u.arn().to_string())
        .unwrap_or_else(|| role_arn.clone());
    let expiry = creds
        .expiration()
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| "unknown".into());
    out.info(format!(
        "Assumed role {assumed}; credentials expire at {expiry}"
    ));
    tracing::debug!(
        access_key_id = creds.access_key_id(),
        "temporary credentials"
    );
    let first = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_string()),
        SystemTime::try_from(*creds.expiration()).ok(),
        "bitbucket-oidc",
    );
    // A deploy longer than the session gets new credentials before these expire, from
    // the same token, as long as the token itself is valid (`OidcRefresh`).
    let provider = OidcRefresh {
        sts,
        role_arn: role_arn.clone(),
        session_name: session_name.clone(),
        token: token.clone(),
        duration_secs: i32::try_from(*duration_secs).unwrap_or(3600),
        token_expiry: claims.exp,
        first: std::sync::Mutex::new(Some(first)),
        out: out.clone(),
    };
    Ok(loader(config, region)
        .credentials_provider(provider)
        .identity_cache(
            aws_config::identity::IdentityCache::lazy()
                .buffer_time(REFRESH_BEFORE_EXPIRY)
                .build(),
        )
        .load()
        .await)
}

/// How long before the role's credentials expire new ones are fetched. The SDK's cache takes
/// a random part of up to half of it off, so the refresh happens 5 to 10 minutes before the
/// expiry: long enough for any request signed with the old ones (a part upload, retries) to
/// be received while they are still valid.
const REFRESH_BEFORE_EXPIRY: std::time::Duration = std::time::Duration::from_secs(600);

/// The role's credentials for a deploy that outlives them: the first ones come from
/// `resolve` (which explains a refusal in detail); later calls, made by the SDK's identity
/// cache shortly before they expire, exchange the step's token again.
struct OidcRefresh {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    session_name: String,
    token: crate::config::Secret,
    duration_secs: i32,
    /// The token's `exp` claim (Unix seconds), when it has one.
    token_expiry: Option<i64>,
    first: std::sync::Mutex<Option<Credentials>>,
    out: Output,
}

impl std::fmt::Debug for OidcRefresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcRefresh")
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl OidcRefresh {
    async fn exchange(&self) -> aws_credential_types::provider::Result {
        use aws_credential_types::provider::error::CredentialsError as Refresh;
        if let Some(exp) = self.token_expiry.filter(|exp| *exp <= unix_now()) {
            return Err(Refresh::provider_error(format!(
                "the role's credentials expire and cannot be renewed: the step's OIDC token expired {} ago. The deploy outlived the token: raise AWS_ROLE_SESSION_DURATION (up to the role's maximum session duration) so that one session covers the whole deploy",
                human_age(unix_now() - exp)
            )));
        }
        let resp = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .web_identity_token(self.token.expose())
            .duration_seconds(self.duration_secs)
            .send()
            .await
            .map_err(|e| {
                Refresh::provider_error(format!(
                    "renewing the role's credentials failed: {}",
                    crate::s3::error::code_and_detail(&e).1
                ))
            })?;
        let Some(creds) = resp.credentials() else {
            return Err(Refresh::provider_error(
                "renewing the role's credentials: STS answered without credentials",
            ));
        };
        self.out.add_secret(creds.secret_access_key());
        self.out.add_secret(creds.session_token());
        let expiry = creds
            .expiration()
            .fmt(Format::DateTime)
            .unwrap_or_else(|_| "unknown".into());
        self.out.info(format!(
            "Renewed the role's credentials before they expired; the new ones expire at {expiry}"
        ));
        Ok(Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            SystemTime::try_from(*creds.expiration()).ok(),
            "bitbucket-oidc",
        ))
    }
}

impl aws_credential_types::provider::ProvideCredentials for OidcRefresh {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let first = self.first.lock().ok().and_then(|mut f| f.take());
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            match first {
                Some(c) => Ok(c),
                None => self.exchange().await,
            }
        })
    }
}

fn human_age(secs: i64) -> String {
    let secs = secs.max(0);
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// Ask the default chain for credentials once, and say in the pipe's words when there are none.
async fn check_chain(sdk: &SdkConfig) -> Result<(), CredentialsError> {
    use aws_credential_types::provider::{ProvideCredentials, error::CredentialsError as Chain};
    let Some(provider) = sdk.credentials_provider() else {
        return Err(CredentialsError::NoCredentials);
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(Chain::CredentialsNotLoaded(_)) => Err(CredentialsError::NoCredentials),
        Err(e) => {
            tracing::debug!(error = ?e, "credential chain failed");
            Err(CredentialsError::ChainFailed(crate::network::chain_text(
                &e,
            )))
        }
    }
}

/// `AKIA…WXYZ`: enough to recognise a key, never the whole of it. Counted in characters, so
/// that no key, whatever it holds, can split one (configuration refuses non-ASCII key ids; this
/// holds even without that check).
fn mask_key_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() > 8 {
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}…{tail}")
    } else {
        "****".into()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `https://api.bitbucket.org/2.0/…/oidc` → `api.bitbucket.org/2.0/…/oidc`: the IAM provider URL form.
fn provider_host_path(iss: &str) -> &str {
    iss.trim_start_matches("https://").trim_end_matches('/')
}

fn account_of(role_arn: &str) -> &str {
    role_arn.split(':').nth(4).unwrap_or("ACCOUNT_ID")
}

fn describe_exp(exp: Option<i64>, now: i64) -> String {
    match exp {
        None => "exp: (none in the token)".into(),
        Some(exp) => {
            let when = aws_smithy_types::DateTime::from_secs(exp)
                .fmt(Format::DateTime)
                .unwrap_or_else(|_| exp.to_string());
            let delta = exp - now;
            if delta < 0 {
                format!("exp: {when}, EXPIRED {} ago", human_secs(-delta))
            } else {
                format!("exp: {when}, valid for {} more", human_secs(delta))
            }
        }
    }
}

fn human_secs(s: i64) -> String {
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Explain an STS refusal: what STS said, the token's claims, and the fix for this error.
///
/// Covers the troubleshooting table of the Bitbucket and AWS OIDC set-up guides: wrong audience,
/// missing identity provider, trust-policy conditions (AccessDenied), expired token, signature
/// keys that cannot be fetched, rejected claims, and a duration above the role's maximum.
pub(crate) fn explain_sts_failure(
    code: Option<&str>,
    message: Option<&str>,
    claims: &Claims,
    role_arn: &str,
    now: i64,
) -> Vec<String> {
    let code_s = code.unwrap_or("no error code");
    let msg = message.unwrap_or("");
    let iss = claims.iss.as_deref().unwrap_or("(none)");
    let provider = provider_host_path(iss);
    let aud = if claims.aud.is_empty() {
        "(none)".to_string()
    } else {
        claims.aud.join(", ")
    };
    let sub = claims.sub.as_deref().unwrap_or("(none)");
    let mut lines = vec![
        format!("STS refused AssumeRoleWithWebIdentity for {role_arn}: {code_s}: {msg}"),
        "The OIDC token's claims (decoded for diagnostics, signature not checked):".to_string(),
        format!("  iss: {iss}"),
        format!("  aud: {aud}"),
        format!("  sub: {sub}"),
        format!("  {}", describe_exp(claims.exp, now)),
    ];
    let lower = msg.to_ascii_lowercase();
    let fix = match code.unwrap_or("") {
        "InvalidIdentityToken" if lower.contains("audience") => format!(
            "Fix: the IAM OIDC identity provider {provider} must list the token's aud as its audience (client ID): add \"{aud}\" in IAM > Identity providers, and use the same value in the role's trust policy condition {provider}:aud."
        ),
        "InvalidIdentityToken" if lower.contains("no openidconnect provider") => format!(
            "Fix: create an IAM OIDC identity provider in account {} whose provider URL is the token's iss without \"https://\": {provider} (enter it as https://{provider}), with audience \"{aud}\".",
            account_of(role_arn)
        ),
        "InvalidIdentityToken" | "IDPCommunicationError"
            if lower.contains("verification key")
                || lower.contains("thumbprint")
                || lower.contains("communicat") =>
        {
            format!(
                "Fix: AWS could not fetch or trust the signing keys of {iss}: check that the identity provider URL is exactly https://{provider} and its thumbprint is current; retry the step if Bitbucket was briefly unreachable."
            )
        }
        "InvalidIdentityToken" => format!(
            "Fix: the token could not be validated: the identity provider URL must be https://{provider} and its audience \"{aud}\"; the token must come from this step (oidc: true), not be copied from elsewhere."
        ),
        "AccessDenied" | "AccessDeniedException" => format!(
            "Fix: the trust policy of {role_arn} must allow {} for the principal {{\"Federated\": \"arn:aws:iam::{}:oidc-provider/{provider}\"}}, and its conditions must match the token: \"{provider}:aud\" = \"{aud}\" and, if present, \"{provider}:sub\" matching \"{sub}\" (use StringLike with a trailing * for any step of the repository). Also check the role ARN's exact spelling: IAM role ARNs are case-sensitive.",
            crate::iam::actions(crate::iam::Service::Sts, &[crate::iam::Feature::Oidc]).join(" and "),
            account_of(role_arn)
        ),
        "ExpiredTokenException" | "ExpiredToken" => "Fix: the token expired before it was used. Bitbucket issues a fresh token for each step: re-run the step, and run the pipe in the step that has \"oidc: true\" rather than passing the token on.".to_string(),
        "IDPRejectedClaim" => format!(
            "Fix: the identity provider rejected a claim: check the audience \"{aud}\" and the issuer {iss} configured in IAM."
        ),
        "ValidationError" | "InvalidParameterValue" if lower.contains("durationseconds") => format!(
            "Fix: AWS_ROLE_SESSION_DURATION is above the maximum session duration of {role_arn}: lower it, or raise the role's maximum session duration in IAM."
        ),
        "RegionDisabledException" => "Fix: STS is not activated in this region for the account: activate it in IAM > Account settings, or set AWS_DEFAULT_REGION to an enabled region.".to_string(),
        _ if code.is_none() => "Fix: STS could not be reached: check the network and AWS_ENDPOINT_URL if you set one.".to_string(),
        _ => format!(
            "Fix: compare the role's trust policy and the IAM identity provider {provider} with the claims above."
        ),
    };
    lines.push(fix);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            iss: Some(
                "https://api.bitbucket.org/2.0/workspaces/ws/pipelines-config/identity/oidc".into(),
            ),
            aud: vec!["ari:cloud:bitbucket::workspace/abc".into()],
            sub: Some("{repo}:{step}".into()),
            exp: Some(exp),
        }
    }
    const ROLE: &str = "arn:aws:iam::123456789012:role/Deploy";

    fn fix(code: &str, message: &str, now: i64) -> String {
        explain_sts_failure(Some(code), Some(message), &claims(1000), ROLE, now).join("\n")
    }

    #[test]
    fn every_mapped_code_prints_its_fix_and_the_claims() {
        let cases = [
            (
                "InvalidIdentityToken",
                "Incorrect token audience",
                "must list the token's aud as its audience",
            ),
            (
                "InvalidIdentityToken",
                "No OpenIDConnect provider found in your account for https://api.bitbucket.org/2.0/workspaces/ws/pipelines-config/identity/oidc",
                "create an IAM OIDC identity provider in account 123456789012 whose provider URL is the token's iss without \"https://\": api.bitbucket.org/2.0/workspaces/ws/pipelines-config/identity/oidc",
            ),
            (
                "InvalidIdentityToken",
                "Couldn't retrieve verification key from your identity provider",
                "could not fetch or trust the signing keys",
            ),
            (
                "AccessDenied",
                "Not authorized to perform sts:AssumeRoleWithWebIdentity",
                "case-sensitive",
            ),
            (
                "ExpiredTokenException",
                "Token expired: current date/time 1 must be before the expiration date/time 0",
                "token expired before it was used",
            ),
            ("IDPRejectedClaim", "rejected", "rejected a claim"),
            (
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
                "AWS_ROLE_SESSION_DURATION",
            ),
        ];
        for (code, message, want) in cases {
            let text = fix(code, message, 0);
            assert!(text.contains(want), "{code}: {text}");
            assert!(
                text.contains("aud: ari:cloud:bitbucket::workspace/abc"),
                "{text}"
            );
            assert!(text.contains("sub: {repo}:{step}"), "{text}");
            assert!(text.contains("iss: https://api.bitbucket.org/"), "{text}");
        }
    }

    #[test]
    fn access_denied_names_the_trust_policy_conditions() {
        let text = fix("AccessDenied", "Not authorized", 0);
        assert!(
            text.contains("must allow sts:AssumeRoleWithWebIdentity for the principal"),
            "{text}"
        );
        assert!(
            text.contains(
                "oidc-provider/api.bitbucket.org/2.0/workspaces/ws/pipelines-config/identity/oidc"
            ),
            "{text}"
        );
        assert!(
            text.contains(":aud\" = \"ari:cloud:bitbucket::workspace/abc\""),
            "{text}"
        );
    }

    #[test]
    fn expiry_is_compared_with_now() {
        assert!(fix("ExpiredTokenException", "x", 1600).contains("EXPIRED 10m00s ago"));
        assert!(fix("AccessDenied", "x", 400).contains("valid for 10m00s more"));
    }

    #[tokio::test]
    async fn credentials_are_not_renewed_with_an_expired_token() {
        use aws_credential_types::provider::ProvideCredentials;
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .build(),
        );
        let first = Credentials::new("ASIAFIRST", "secret", None, None, "test");
        let refresh = OidcRefresh {
            sts,
            role_arn: "arn:aws:iam::123456789012:role/R".into(),
            session_name: "s".into(),
            token: crate::config::Secret::new("s3cr3t-t0ken".into()),
            duration_secs: 3600,
            token_expiry: Some(unix_now() - 125),
            first: std::sync::Mutex::new(Some(first)),
            out: Output::new(false, crate::output::Redactor::default()),
        };
        // The first call hands over the credentials `resolve` already fetched.
        let c = refresh.provide_credentials().await.expect("first");
        assert_eq!(c.access_key_id(), "ASIAFIRST");
        // The next one would exchange the token again, but it has expired: no request, and
        // the message says why and what to change.
        let e = refresh
            .provide_credentials()
            .await
            .expect_err("expired token");
        let text = crate::network::chain_text(&e);
        assert!(text.contains("OIDC token expired 2m0"), "{text}");
        assert!(text.contains("AWS_ROLE_SESSION_DURATION"), "{text}");
        assert!(!format!("{refresh:?}").contains("s3cr3t"), "{refresh:?}");
    }

    #[test]
    fn masks_key_ids() {
        assert_eq!(mask_key_id("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
        assert_eq!(mask_key_id("short"), "****");
        // A zero-width space (U+200B, three bytes in UTF-8) where a byte slice would cut it.
        assert_eq!(mask_key_id("AKI\u{200b}EXAMPLE"), "AKI\u{200b}…MPLE");
        assert_eq!(mask_key_id("ééééééééé"), "éééé…éééé");
    }
}
