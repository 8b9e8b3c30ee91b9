//! One error type for the S3 layer, and what an AWS SDK error says, for messages that name
//! the fix. Code branches on [`S3Error`]'s variant and [`S3Error::code`], never on the text.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::scope::OutOfScope;

/// What an S3 request was for. A refusal names the permissions of the request's operation in
/// [`crate::iam::PERMISSIONS`]: the operation is read from the SDK error's type
/// (`ListObjectVersionsError` is ListObjectVersions), and this is the fallback.
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

impl Op {
    /// The API operation (as [`crate::iam::PERMISSIONS`] names it) that `self` stands for
    /// when the error's type does not say.
    fn operation(self) -> &'static str {
        match self {
            Op::List => "ListObjectsV2",
            Op::Put => "PutObject",
            Op::Copy => "CopyObject",
            Op::Delete => "DeleteObjects",
            Op::Head => "HeadObject",
        }
    }
}

/// The S3 operation whose error `E` is (`aws_sdk_s3::operation::put_object::PutObjectError`
/// is `PutObject`), when [`crate::iam::PERMISSIONS`] lists it.
fn operation_of<E>() -> Option<&'static str> {
    let name = std::any::type_name::<E>();
    let operation = name.rsplit("::").next()?.strip_suffix("Error")?;
    crate::iam::PERMISSIONS
        .iter()
        .find(|p| p.service == crate::iam::Service::S3 && p.operation == operation)
        .map(|p| p.operation)
}

/// What the refused request was doing, for the operations on the bucket itself.
fn doing(operation: &str) -> Option<&'static str> {
    match operation {
        "ListObjectsV2" => Some("listing the bucket"),
        "ListObjectVersions" => Some("listing the bucket's versions"),
        "GetBucketVersioning" => Some("reading the bucket's versioning"),
        _ => None,
    }
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

/// Turn an S3 error into a message that names the missing permission or the fix. An
/// `AccessDenied` names the actions and resource of the operation's rows in
/// [`crate::iam::PERMISSIONS`] (`acl`: an ACL or grants are set, so s3:PutObjectAcl too).
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
    let operation = operation_of::<E>().unwrap_or_else(|| op.operation());
    match code.as_str() {
        "NoSuchBucket" => {
            format!("bucket {bucket:?} does not exist ({detail}): create it, or fix S3_BUCKET")
        }
        "PermanentRedirect" | "AuthorizationHeaderMalformed" => format!(
            "bucket {bucket:?} is in another region than the one configured ({detail}): set AWS_DEFAULT_REGION to the bucket's region"
        ),
        "AccessDenied" => match (
            crate::iam::s3_allow(operation, bucket, key, acl),
            doing(operation),
        ) {
            (Some(allow), Some(what)) => {
                format!("access denied {what} ({detail}): {allow} for this role or user")
            }
            (Some(allow), None) => format!("access denied ({detail}): {allow}"),
            (None, _) => detail,
        },
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

#[cfg(test)]
mod tests {
    use aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadError;
    use aws_sdk_s3::operation::copy_object::CopyObjectError;
    use aws_sdk_s3::operation::list_object_versions::ListObjectVersionsError;
    use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Error;
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_sdk_s3::operation::upload_part::UploadPartError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    /// S3's 403 AccessDenied to an operation whose error type `make` builds.
    fn denied<E>(make: fn(ErrorMetadata) -> E) -> SdkError<E, HttpResponse> {
        let meta = ErrorMetadata::builder()
            .code("AccessDenied")
            .message("Access Denied")
            .build();
        let status = StatusCode::try_from(403).expect("a status");
        SdkError::service_error(make(meta), HttpResponse::new(status, SdkBody::empty()))
    }

    /// The permission named is the refused operation's, from `iam::PERMISSIONS`: the
    /// operation is the error's own, whatever `Op` the caller passed.
    #[test]
    fn access_denied_names_the_operations_action_and_resource() {
        let detail = "(AccessDenied: Access Denied)";
        assert_eq!(
            explain(
                Op::List,
                "b",
                None,
                false,
                &denied(ListObjectsV2Error::generic)
            ),
            format!(
                "access denied listing the bucket {detail}: allow s3:ListBucket on arn:aws:s3:::b for this role or user"
            )
        );
        assert_eq!(
            explain(
                Op::List,
                "b",
                None,
                false,
                &denied(ListObjectVersionsError::generic)
            ),
            format!(
                "access denied listing the bucket's versions {detail}: allow s3:ListBucketVersions on arn:aws:s3:::b for this role or user"
            )
        );
        assert_eq!(
            explain(
                Op::Put,
                "b",
                Some("site/big.bin"),
                false,
                &denied(AbortMultipartUploadError::generic)
            ),
            format!(
                "access denied {detail}: allow s3:AbortMultipartUpload on arn:aws:s3:::b/site/big.bin"
            )
        );
        assert_eq!(
            explain(
                Op::Put,
                "bkt",
                Some("bad.css"),
                true,
                &denied(PutObjectError::generic)
            ),
            format!(
                "access denied {detail}: allow s3:PutObject and s3:PutObjectAcl (ACL is set) on arn:aws:s3:::bkt/bad.css"
            )
        );
        assert_eq!(
            explain(
                Op::Put,
                "b",
                Some("k"),
                false,
                &denied(UploadPartError::generic)
            ),
            format!("access denied {detail}: allow s3:PutObject on arn:aws:s3:::b/k")
        );
        assert!(
            explain(
                Op::Copy,
                "b",
                Some("k"),
                false,
                &denied(CopyObjectError::generic)
            )
            .contains(
                "allow s3:GetObject and s3:PutObject on arn:aws:s3:::b/k, and s3:GetObjectVersion"
            )
        );
    }
}
