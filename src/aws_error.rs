//! What an AWS SDK error says, for messages that name the fix.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The service error code (empty when the request never got an answer) and a one-line detail:
/// `Code: message` from the service; for a request that got no answer, the cause in the user's
/// words (`network::explain_dispatch_failure`) or the error chain. Never `Debug` text: that
/// goes to the DEBUG log only.
pub(crate) fn code_and_detail<E, R>(err: &SdkError<E, R>) -> (String, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err.as_service_error() {
        Some(e) if e.code() == Some("RequestTimeTooSkewed") => (
            "RequestTimeTooSkewed".to_string(),
            "RequestTimeTooSkewed: the runner's clock differs from AWS's by more than 15 minutes: fix the clock (NTP) of the machine or container that runs the pipe".to_string(),
        ),
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
