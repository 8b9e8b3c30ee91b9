//! What an AWS SDK error says, for messages that name the fix.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

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
