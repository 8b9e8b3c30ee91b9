//! The HTTP client every AWS call goes through (S3, STS, CloudFront): stall detection, fast
//! failure on TLS trust errors, and network failures explained in the user's words.
//!
//! # Why a "no progress" guard of our own
//!
//! What the SDK offers, read in aws-smithy-http-client 1.5 and aws-smithy-runtime 1.16:
//! - `TimeoutConfig::read_timeout` wraps the connector's whole `call`: from the request being
//!   handed to hyper until the response *headers* arrive. S3 answers an upload only after the
//!   whole body was received, so it is a deadline on sending the body too: at 30 s it cuts an
//!   8 MiB part on any link slower than 280 KB/s, however steadily the part is moving. And it
//!   does not cover the response body at all (a listing page that stalls half-way hangs).
//! - `operation_attempt_timeout` / `operation_timeout` are total-time deadlines: same problem.
//! - Stalled-stream protection (minimum throughput) is installed only on operations with
//!   streaming bodies (PutObject, UploadPart, GetObject), and stops watching once the upload
//!   body is sent: a black-holed CompleteMultipartUpload, DeleteObjects, listing page, STS or
//!   CloudFront call is never detected.
//!
//! So [`StallGuard`] wraps the SDK's own hyper client and measures *progress*: the clock
//! restarts whenever the connection takes request-body bytes, when the response headers
//! arrive, and whenever response-body bytes arrive. `READ_TIMEOUT` seconds without any of these
//! and the attempt fails with a timeout, which the SDK's standard retry classifies as transient
//! and retries (new connection, backoff) within the client's attempt budget. A slow but moving
//! part is never cut; a silent server is detected within `READ_TIMEOUT`. S3's long operations
//! (CompleteMultipartUpload, CopyObject) send their 200 headers early and then whitespace
//! while they work, which counts as progress.
//!
//! The SDK's `read_timeout` and stalled-stream protection are therefore turned off (they would
//! cut moving transfers); its `connect_timeout` stays (TCP connect and TLS handshake).

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;

/// What a user with no credentials at all reads: every source the pipe tried, and what to set.
pub(crate) const NO_CREDENTIALS: &str = "no AWS credentials found: the pipe tried OpenID Connect (AWS_OIDC_ROLE_ARN, with \"oidc: true\" on the step), access keys (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and the AWS chain (environment, profile, container and instance roles). Set AWS_OIDC_ROLE_ARN and add \"oidc: true\" to the step (recommended), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY as secured variables";

/// Default `READ_TIMEOUT`: seconds without progress before an attempt is abandoned and retried.
/// aws-cli waits 60 s; in CI a hang costs build minutes and blocks the next deploy, and a
/// healthy S3 connection is never silent for this long (S3 sends whitespace while it works on
/// long requests), so 30 s detects a stall within the bound with a wide margin.
pub(crate) const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `CONNECT_TIMEOUT`: TCP connect plus TLS handshake. The SDK's own default is 3.1 s,
/// short for a first handshake from a busy CI runner; aws-cli waits 60 s. A refused or
/// unresolvable endpoint fails at once whatever this is.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The timeouts in force: `None` means no timeout (the user set 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) read: Option<Duration>,
    pub(crate) connect: Option<Duration>,
}

impl Timeouts {
    /// From the configured values (`None`: default; zero: none).
    pub(crate) fn new(read: Option<Duration>, connect: Option<Duration>) -> Timeouts {
        let pick = |v: Option<Duration>, default| match v {
            None => Some(default),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
        };
        Timeouts {
            read: pick(read, DEFAULT_READ_TIMEOUT),
            connect: pick(connect, DEFAULT_CONNECT_TIMEOUT),
        }
    }

    /// The SDK timeout settings that go with the guard: connect only.
    pub(crate) fn sdk_config(&self) -> aws_smithy_types::timeout::TimeoutConfig {
        let t = aws_smithy_types::timeout::TimeoutConfig::builder().disable_read_timeout();
        match self.connect {
            Some(d) => t.connect_timeout(d),
            None => t.disable_connect_timeout(),
        }
        .build()
    }
}

/// The SDK's hyper 1 + rustls client (as its default: proxy from `HTTPS_PROXY` & co), trusting
/// `ca_pem` only when given (`--ca-bundle`), wrapped in the stall guard.
pub(crate) fn http_client(timeouts: Timeouts, ca_pem: Option<Vec<u8>>) -> SharedHttpClient {
    use aws_smithy_http_client::{ConnectorBuilder, proxy::ProxyConfig, tls};
    let context = ca_pem.and_then(|pem| {
        tls::TlsContext::builder()
            .with_trust_store(tls::TrustStore::empty().with_pem_certificate(pem))
            .build()
            .ok()
    });
    let base = aws_smithy_http_client::Builder::new().build_with_connector_fn(
        move |settings, components| {
            let mut b = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ));
            b.set_connector_settings(settings.cloned());
            if let Some(c) = components {
                b.set_sleep_impl(c.sleep_impl());
            }
            b.set_proxy_config(Some(ProxyConfig::from_env()));
            if let Some(ctx) = &context {
                b = b.tls_context(ctx.clone());
            }
            b.build()
        },
    );
    SharedHttpClient::new(StallGuard {
        inner: base,
        timeouts,
    })
}

/// Wraps an HTTP client: no progress for `timeouts.read` fails the attempt (see module docs).
#[derive(Debug, Clone)]
pub(crate) struct StallGuard {
    inner: SharedHttpClient,
    timeouts: Timeouts,
}

impl HttpClient for StallGuard {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(GuardedConnector {
            inner: self.inner.http_connector(settings, components),
            timeouts: self.timeouts,
        })
    }
}

#[derive(Debug)]
struct GuardedConnector {
    inner: SharedHttpConnector,
    timeouts: Timeouts,
}

/// The last moment of progress, in milliseconds since `start`.
#[derive(Debug)]
struct Progress {
    start: Instant,
    last_ms: AtomicU64,
}

impl Progress {
    fn new() -> Arc<Progress> {
        Arc::new(Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }
    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The error of a stalled attempt (retried by the SDK as a timeout).
#[derive(Debug, thiserror::Error)]
#[error(
    "no data sent or received for {0} s (READ_TIMEOUT): the connection stalled; the request is retried"
)]
pub(crate) struct Stalled(u64);

impl HttpConnector for GuardedConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let endpoint = endpoint_of(request.uri());
        let fail = move |e: ConnectorError| at_endpoint(fail_fast(e), &endpoint);
        let Some(idle) = self.timeouts.read else {
            let fut = self.inner.call(request);
            return HttpConnectorFuture::new(async move { fut.await.map_err(fail) });
        };
        let progress = Progress::new();
        let p = progress.clone();
        let body = std::mem::replace(request.body_mut(), SdkBody::taken());
        *request.body_mut() = body.map_preserve_contents(move |b| {
            SdkBody::from_body_1_x(ProgressBody {
                inner: b,
                progress: p.clone(),
            })
        });
        // The first period also covers connecting (the connect timeout's own business): it is
        // the longer of the two, so that a stall on a reused connection is still detected
        // within READ_TIMEOUT with the defaults, and a long CONNECT_TIMEOUT is not cut short.
        let first = idle.max(self.timeouts.connect.unwrap_or(Duration::ZERO));
        let fut = self.inner.call(request);
        HttpConnectorFuture::new(async move {
            let watchdog = async {
                let mut deadline = progress.last() + first;
                loop {
                    tokio::time::sleep_until(deadline.into()).await;
                    let next = progress.last() + idle;
                    if next <= Instant::now() {
                        return;
                    }
                    deadline = next;
                }
            };
            let mut response = tokio::select! {
                r = fut => r.map_err(fail)?,
                () = watchdog => {
                    return Err(fail(ConnectorError::timeout(Box::new(Stalled(idle.as_secs())))));
                }
            };
            let body = std::mem::replace(response.body_mut(), SdkBody::taken());
            *response.body_mut() = body.map_preserve_contents(move |b| {
                SdkBody::from_body_1_x(IdleBody {
                    inner: b,
                    idle,
                    timer: None,
                })
            });
            Ok(response)
        })
    }
}

/// A request body that reports each chunk the connection takes as progress.
struct ProgressBody {
    inner: SdkBody,
    progress: Arc<Progress>,
}

impl http_body::Body for ProgressBody {
    type Data = Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if r.is_ready() {
            self.progress.touch();
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }
    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

/// A response body that fails when no bytes arrive for `idle`.
struct IdleBody {
    inner: SdkBody,
    idle: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for IdleBody {
    type Data = Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(r) = Pin::new(&mut self.inner).poll_frame(cx) {
            self.timer = None;
            return Poll::Ready(r);
        }
        let idle = self.idle;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Stalled(idle.as_secs()))))),
            Poll::Pending => Poll::Pending,
        }
    }
    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }
    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

/// `scheme://host[:port]` of a request URI: where the request went, without path or query.
fn endpoint_of(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?']).next().unwrap_or(rest);
            format!("{scheme}://{authority}")
        }
        None => uri.to_string(),
    }
}

/// A connector error, with the endpoint it happened at (hyper's errors do not name it).
#[derive(Debug, thiserror::Error)]
#[error("{endpoint}")]
struct AtEndpoint {
    endpoint: String,
    #[source]
    source: ConnectorError,
}

/// Wrap `err` with its endpoint, keeping its kind (which decides whether it is retried).
fn at_endpoint(err: ConnectorError, endpoint: &str) -> ConnectorError {
    let (timeout, io, user, other) = (err.is_timeout(), err.is_io(), err.is_user(), err.as_other());
    let wrapped = Box::new(AtEndpoint {
        endpoint: endpoint.to_string(),
        source: err,
    });
    if timeout {
        ConnectorError::timeout(wrapped)
    } else if io {
        ConnectorError::io(wrapped)
    } else if user {
        ConnectorError::user(wrapped)
    } else {
        ConnectorError::other(wrapped, other)
    }
}

/// A certificate the trust store rejects will be rejected again: retrying it eight times only
/// delays the message (measured: ~35 s). Such errors become non-retryable; others pass as they are.
fn fail_fast(err: ConnectorError) -> ConnectorError {
    if is_certificate_error(&err) {
        ConnectorError::other(Box::new(err), None)
    } else {
        err
    }
}

/// `err` and its causes. An `io::Error`'s payload is visited too (`io::Error::source` skips
/// it, and hyper-rustls nests the rustls error two `io::Error`s deep).
fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn StdError + 'static)| next_cause(*e))
}

fn next_cause<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match e
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        Some(inner) => Some(inner as &(dyn StdError + 'static)),
        None => e.source(),
    }
}

/// The rustls error in `err`'s chain, if any.
fn rustls_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    chain(err).find_map(|e| e.downcast_ref::<rustls::Error>())
}

fn is_certificate_error(err: &(dyn StdError + 'static)) -> bool {
    matches!(
        rustls_error(err),
        Some(rustls::Error::InvalidCertificate(_))
    )
}

/// The error and its causes on one line, `a: b: c`, without repeats and without any `Debug`
/// text (what `DisplayErrorContext` appends).
pub(crate) fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain(err) {
        let t = e.to_string();
        if !t.is_empty() && !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
    }
    parts.join(": ")
}

/// One readable line for a request that got no answer (`None` when the error is something
/// else): connection refused, unknown host, TLS trust, stall or connect timeout, missing
/// credentials. Names the endpoint the request went to, as the user can fix it.
pub(crate) fn explain_dispatch_failure(err: &(dyn StdError + 'static)) -> Option<String> {
    let endpoint = chain(err)
        .find_map(|e| e.downcast_ref::<AtEndpoint>())
        .map_or("the AWS endpoint", |a| a.endpoint.as_str());
    let text: Vec<String> = chain(err).map(|e| e.to_string()).collect();
    let has = |needle: &str| {
        text.iter().any(|t| {
            t.to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase())
        })
    };
    if chain(err).any(|e| e.downcast_ref::<Stalled>().is_some()) {
        let secs = chain(err)
            .find_map(|e| e.downcast_ref::<Stalled>())
            .map_or(0, |s| s.0);
        return Some(format!(
            "{endpoint} stopped answering: no data for {secs} s on every attempt (READ_TIMEOUT): check the network, or raise READ_TIMEOUT"
        ));
    }
    if is_certificate_error(err) {
        let detail = rustls_error(err)
            .map(ToString::to_string)
            .unwrap_or_default();
        return Some(format!(
            "TLS: the certificate of {endpoint} is not trusted ({detail}): if it is signed by your own CA, set SSL_CERT_FILE or EXTRA_ARGS --ca-bundle to a PEM file of that CA; otherwise check AWS_ENDPOINT_URL"
        ));
    }
    if has("credential provider was not enabled")
        || has("no credentials")
        || has("credentials not loaded")
    {
        return Some(NO_CREDENTIALS.to_string());
    }
    if has("connection refused") {
        return Some(format!(
            "connection refused by {endpoint}: nothing listens there; check AWS_ENDPOINT_URL (or EXTRA_ARGS --endpoint-url) and that the service is up"
        ));
    }
    if has("dns error") || has("failed to lookup address") || has("name or service not known") {
        return Some(format!(
            "cannot resolve the host of {endpoint} (DNS): check the spelling of AWS_ENDPOINT_URL (or EXTRA_ARGS --endpoint-url) and AWS_DEFAULT_REGION, and the runner's DNS"
        ));
    }
    if has("timeout") || has("timed out") {
        return Some(format!(
            "could not connect to {endpoint} within CONNECT_TIMEOUT: check the network, a firewall or proxy (HTTPS_PROXY), or raise CONNECT_TIMEOUT"
        ));
    }
    if has("connection reset") || has("broken pipe") || has("connection closed") {
        return Some(format!(
            "{endpoint} kept closing the connection on every attempt: check the network or a proxy between the runner and AWS"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_none_and_unset_means_default() {
        let t = Timeouts::new(None, None);
        assert_eq!(t.read, Some(DEFAULT_READ_TIMEOUT));
        assert_eq!(t.connect, Some(DEFAULT_CONNECT_TIMEOUT));
        let t = Timeouts::new(Some(Duration::ZERO), Some(Duration::from_secs(4)));
        assert_eq!(t.read, None);
        assert_eq!(t.connect, Some(Duration::from_secs(4)));
        assert!(DEFAULT_READ_TIMEOUT <= Duration::from_secs(30));
    }

    #[test]
    fn failures_are_explained_by_cause() {
        let io = |kind, msg: &str| std::io::Error::new(kind, msg.to_string());
        let refused = io(
            std::io::ErrorKind::ConnectionRefused,
            "tcp connect error: Connection refused (os error 111)",
        );
        let text = explain_dispatch_failure(&at_endpoint(
            ConnectorError::io(Box::new(refused)),
            "http://127.0.0.1:9",
        ))
        .expect("explained");
        assert!(
            text.starts_with("connection refused by http://127.0.0.1:9"),
            "{text}"
        );
        let dns = io(
            std::io::ErrorKind::Other,
            "dns error: failed to lookup address information",
        );
        assert!(
            explain_dispatch_failure(&dns)
                .expect("explained")
                .contains("DNS")
        );
        let stalled = ConnectorError::timeout(Box::new(Stalled(2)));
        assert!(
            explain_dispatch_failure(&stalled)
                .expect("explained")
                .contains("no data for 2 s")
        );
        let tls = io(std::io::ErrorKind::InvalidData, "unused");
        assert_eq!(explain_dispatch_failure(&tls), None);
        // As hyper-rustls reports it: two io::Errors around the rustls error.
        let cert = ConnectorError::io(Box::new(std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ))));
        assert!(is_certificate_error(&cert));
        let fast = fail_fast(cert);
        assert!(!fast.is_io() && !fast.is_timeout() && fast.as_other().is_none());
        let kept = at_endpoint(ConnectorError::timeout(Box::new(Stalled(1))), "http://h:1");
        assert!(kept.is_timeout(), "the kind survives the endpoint context");
        assert_eq!(
            endpoint_of("https://b.s3.eu-west-1.amazonaws.com/k?x=1"),
            "https://b.s3.eu-west-1.amazonaws.com"
        );
        assert!(
            explain_dispatch_failure(&at_endpoint(fast, "https://s3.example"))
                .expect("explained")
                .contains("SSL_CERT_FILE")
        );
    }
}
