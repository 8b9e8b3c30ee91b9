//! What an AWS SDK error says, for messages that name the fix.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The service error code (empty when the request never got an answer) and a one-line detail:
/// `Code: message` from the service, or the whole error chain for network and other failures.
pub(crate) fn code_and_detail<E, R>(err: &SdkError<E, R>) -> (String, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err.as_service_error() {
        Some(e) => (
            e.code().unwrap_or("").to_string(),
            format!(
                "{}: {}",
                e.code().unwrap_or("error"),
                e.message().unwrap_or("")
            ),
        ),
        None => (String::new(), DisplayErrorContext(err).to_string()),
    }
}
