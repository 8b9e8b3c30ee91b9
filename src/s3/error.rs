//! One error type for the S3 layer, and what an AWS SDK error says, for messages that name
//! the fix. Code branches on [`S3Error`]'s variant and [`S3Error::code`], never on the text.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::scope::OutOfScope;

/// What an S3 request was for: decides which permission a refusal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    List,
    /// PutObject and the multipart operations.
    Put,
    /// CopyObject (header re-applies, restores).
    Copy,
    Delete,
    Head,
}

/// An S3 request that failed, or that the scope refused to send.
#[derive(Debug, thiserror::Error)]
pub(crate) enum S3Error {
    /// S3 (or the network) refused or failed the request; `message` names the fix.
    #[error("{message}")]
    Request {
        op: Op,
        /// The service's error code; empty when the request got no answer.
        code: String,
        message: String,
    },
    /// The bucket is in this other region (S3 said so): the caller retries there.
    #[error(
        "the bucket is in region {0}, not in the one configured: set AWS_DEFAULT_REGION to {0}"
    )]
    WrongRegion(String),
    /// A write outside the run's scope: never sent.
    #[error(transparent)]
    OutOfScope(#[from] OutOfScope),
}

impl S3Error {
    /// From an SDK error: the bucket's region when S3 named another one, else the explained
    /// failure (see [`explain`]).
    pub(crate) fn from_sdk<E>(
        op: Op,
        bucket: &str,
        key: Option<&str>,
        acl: bool,
        err: &SdkError<E, HttpResponse>,
    ) -> S3Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        if let Some(region) = bucket_region(err) {
            return S3Error::WrongRegion(region);
        }
        let (code, _) = code_and_detail(err);
        S3Error::Request {
            op,
            code,
            message: explain(op, bucket, key, acl, err),
        }
    }

    /// The service's error code, when S3 answered with one.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            S3Error::Request { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }
}

/// The service error code (empty when the request never got an answer) and a one-line detail:
/// `Code: message` from the service; for a request that got no answer, the cause in the user's
/// words (`network::explain_dispatch_failure`) or the error chain. Never `Debug` text: that
/// goes to the DEBUG log only.
pub(crate) fn code_and_detail<E>(err: &SdkError<E, HttpResponse>) -> (String, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err.as_service_error() {
        Some(e) if e.code() == Some("RequestTimeTooSkewed") => (
            "RequestTimeTooSkewed".to_string(),
            "RequestTimeTooSkewed: the runner's clock differs from AWS's by more than 15 minutes: fix the clock (NTP) of the machine or container that runs the pipe".to_string(),
        ),
        // An answer with neither code nor message: not S3's own XML error (a proxy, a load
        // balancer, a store's front end). The status is all there is: say so.
        Some(e) if e.code().is_none() && e.message().unwrap_or("").trim().is_empty() => {
            tracing::debug!(error = ?err, "AWS request failed");
            let status = err.raw_response().map(|r| r.status().as_u16());
            let status = status.map_or_else(|| "an".to_string(), |s| format!("HTTP {s}"));
            (
                String::new(),
                format!(
                    "{status} answer with no error code or message: something other than the service answered (a proxy, a load balancer, the store's front end); check AWS_ENDPOINT_URL and any HTTP(S)_PROXY, and run with DEBUG=true to see the answer"
                ),
            )
        }
        Some(e) => (
            e.code().unwrap_or("").to_string(),
            format!(
                "{}: {}",
                e.code().unwrap_or("error"),
                e.message().unwrap_or("")
            ),
        ),
        None => {
            tracing::debug!(error = ?err, "AWS request failed");
            let source = std::error::Error::source(err);
            let text = source
                .and_then(crate::network::explain_dispatch_failure)
                .unwrap_or_else(|| match source {
                    Some(s) => format!("{err}: {}", crate::network::chain_text(s)),
                    None => err.to_string(),
                });
            (String::new(), text)
        }
    }
}

/// Turn an S3 error into a message that names the missing permission or the fix.
pub(crate) fn explain<E>(
    op: Op,
    bucket: &str,
    key: Option<&str>,
    acl: bool,
    err: &SdkError<E, HttpResponse>,
) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (code, detail) = code_and_detail(err);
    let resource = match key {
        Some(k) => format!("arn:aws:s3:::{bucket}/{k}"),
        None => format!("arn:aws:s3:::{bucket}"),
    };
    match (code.as_str(), op) {
        ("NoSuchBucket", _) => {
            format!("bucket {bucket:?} does not exist ({detail}): create it, or fix S3_BUCKET")
        }
        ("PermanentRedirect" | "AuthorizationHeaderMalformed", _) => format!(
            "bucket {bucket:?} is in another region than the one configured ({detail}): set AWS_DEFAULT_REGION to the bucket's region"
        ),
        ("AccessDenied", Op::List) => format!(
            "access denied listing the bucket ({detail}): allow s3:ListBucket on arn:aws:s3:::{bucket} for this role or user"
        ),
        ("AccessDenied", Op::Put) if acl => format!(
            "access denied ({detail}): allow s3:PutObject and s3:PutObjectAcl (ACL is set) on {resource}"
        ),
        ("AccessDenied", Op::Put) => {
            format!("access denied ({detail}): allow s3:PutObject on {resource}")
        }
        ("AccessDenied", Op::Copy) => format!(
            "access denied ({detail}): allow s3:GetObject and s3:PutObject{} on {resource}",
            if acl { " and s3:PutObjectAcl" } else { "" }
        ),
        ("AccessDenied", Op::Delete) => {
            format!("access denied ({detail}): allow s3:DeleteObject on arn:aws:s3:::{bucket}/*")
        }
        ("AccessDenied", Op::Head) => {
            format!("access denied ({detail}): allow s3:GetObject on {resource}")
        }
        _ => detail,
    }
}

/// The bucket's real region, when S3 refused the request because it was sent to (or signed
/// for) another one: a `301 PermanentRedirect`, a `400 AuthorizationHeaderMalformed` or an
/// `IllegalLocationConstraintException`, each naming the region in `x-amz-bucket-region`
/// (aws-cli follows the same answers).
pub(crate) fn bucket_region<E>(err: &SdkError<E, HttpResponse>) -> Option<String>
where
    E: ProvideErrorMetadata,
{
    let raw = err.raw_response()?;
    let code = err.as_service_error().and_then(|e| e.code()).unwrap_or("");
    let redirect = raw.status().as_u16() == 301
        || matches!(
            code,
            "PermanentRedirect"
                | "AuthorizationHeaderMalformed"
                | "IllegalLocationConstraintException"
        );
    let region = raw.headers().get("x-amz-bucket-region")?;
    (redirect && !region.is_empty()).then(|| region.to_string())
}
