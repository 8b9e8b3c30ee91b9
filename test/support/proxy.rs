//! A small HTTP/1.1 fault-injecting reverse proxy for integration tests.
//!
//! The program under test points `AWS_ENDPOINT_URL` at [`Proxy::url`]; the proxy forwards every
//! request byte-for-byte (method, raw path + query, all headers including `Host`, body) to the
//! upstream (usually the moto server) and relays the upstream response unchanged. Every request is
//! recorded (see [`Recorded`]) and can be answered by a fault [`Rule`] instead of being forwarded.
//!
//! The proxy owns its own tokio runtime, so it is usable from plain synchronous `#[test]`s.
//!
//! ```ignore
//! let proxy = Proxy::start(&moto_url);
//! proxy.set_rules(vec![Rule::new(Match::any().method("PUT"), Action::s3_slow_down()).times(2)]);
//! // ... run the binary with AWS_ENDPOINT_URL=proxy.url() ...
//! assert!(proxy.requests().iter().any(|r| r.is_put_object()));
//! ```

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Only this many leading body bytes are recorded and matched by `body_contains`.
pub const RECORDED_BODY_LIMIT: usize = 64 * 1024;
/// Seed of the PRNG that rolls rule probabilities (reset by every [`Proxy::set_rules`]).
pub const DEFAULT_SEED: u64 = 42;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;
type UpstreamClient = Client<HttpConnector, BoxBody<Bytes, Infallible>>;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// A running proxy. Dropping it stops the listener and closes every connection.
pub struct Proxy {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Listen on 127.0.0.1:0, forward to `upstream` (e.g. "http://127.0.0.1:5000").
    pub fn start(upstream: &str) -> Proxy {
        let upstream = if upstream.contains("://") {
            upstream.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", upstream.trim_end_matches('/'))
        };
        let uri: Uri = upstream
            .parse()
            .unwrap_or_else(|e| panic!("proxy: bad upstream url {upstream:?}: {e}"));
        let target = Target {
            scheme: uri.scheme().cloned().unwrap_or(Scheme::HTTP),
            authority: uri
                .authority()
                .cloned()
                .unwrap_or_else(|| panic!("proxy: upstream url {upstream:?} has no host")),
        };

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy: bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("proxy: set_nonblocking");
        let addr = listener.local_addr().expect("proxy: local_addr");

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-proxy")
            .enable_all()
            .build()
            .expect("proxy: build tokio runtime");

        let shared = Arc::new(Shared {
            log: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            faults: Mutex::new(Faults::new(Vec::new(), DEFAULT_SEED)),
            kms_etags: Mutex::new(std::collections::HashMap::new()),
            ignored_headers: Mutex::new(Vec::new()),
        });

        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: UpstreamClient = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(20))
            .pool_timer(TokioTimer::new())
            .build(connector);

        let ctx = Arc::new(Ctx {
            shared: shared.clone(),
            client,
            target,
        });
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).expect("proxy: register listener")
        };
        runtime.spawn(accept_loop(listener, ctx));

        Proxy {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// "http://127.0.0.1:PORT"
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request seen so far, in arrival order (including ones answered by a fault rule).
    pub fn requests(&self) -> Vec<Recorded> {
        let mut log = lock(&self.shared.log).clone();
        log.sort_by_key(|(seq, _)| *seq);
        log.into_iter().map(|(_, r)| r).collect()
    }

    /// The recorded requests for which `pred` holds.
    pub fn requests_where(&self, pred: impl Fn(&Recorded) -> bool) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| pred(r)).collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Replace the fault rules. Rules are checked in order; the first whose matcher matches and
    /// whose probability roll succeeds applies. A rule may have `times: Some(n)` limiting how
    /// often it fires. Also resets the PRNG to [`DEFAULT_SEED`] and the fire counters.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.set_rules_seeded(rules, DEFAULT_SEED);
    }

    /// Like [`Proxy::set_rules`] with an explicit PRNG seed.
    pub fn set_rules_seeded(&self, rules: Vec<Rule>, seed: u64) {
        *lock(&self.shared.faults) = Faults::new(rules, seed);
    }

    /// Forward every request without these headers (recorded as sent), as a store that
    /// ignores them would: e.g. `if-none-match`, which Ceph RGW 16 ignores on PutObject.
    pub fn ignore_request_headers(&self, names: &[&str]) {
        *lock(&self.shared.ignored_headers) =
            names.iter().map(|n| n.to_ascii_lowercase()).collect();
    }

    /// Remove all fault rules (forward everything).
    pub fn clear_rules(&self) {
        self.set_rules(Vec::new());
    }

    /// How often each current rule has fired, in rule order.
    pub fn fired(&self) -> Vec<usize> {
        lock(&self.shared.faults)
            .rules
            .iter()
            .map(|s| s.fired)
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Drops the accept loop (closing the listener) and every connection task.
            rt.shutdown_background();
        }
    }
}

/// One request as seen by the proxy.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Raw, still percent-encoded, as sent on the wire, without query.
    pub path: String,
    /// Raw query string ("" if none).
    pub query: String,
    /// From `Authorization: AWS4-HMAC-SHA256 Credential=AKID/date/...` (or a presigned
    /// `X-Amz-Credential` query parameter).
    pub access_key: Option<String>,
    /// Lower-case names, in wire order (repeated headers appear repeatedly).
    pub headers: Vec<(String, String)>,
    /// The first [`RECORDED_BODY_LIMIT`] bytes of the request body.
    pub body: Vec<u8>,
    /// Full length of the request body (as received, i.e. still aws-chunked encoded if it was).
    pub body_len: usize,
    /// Status returned to the client (0 for reset/drop, 502 if upstream was unreachable).
    pub status: u16,
    /// For STS requests only: the upstream's response body (to read issued credentials).
    pub response_body: Vec<u8>,
}

impl Recorded {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The recorded body as (lossy) UTF-8.
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The percent-decoded path.
    pub fn decoded_path(&self) -> String {
        percent_decode(&self.path)
    }

    /// Whether the query has parameter `name` (with or without a value).
    pub fn has_query_param(&self, name: &str) -> bool {
        self.query_param(name).is_some()
    }

    /// The percent-decoded value of query parameter `name` ("" for a bare `?name`).
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(&self.query, name)
    }

    /// S3 path-style bucket: the first path segment, if any.
    pub fn s3_bucket(&self) -> Option<String> {
        let rest = self.path.strip_prefix('/')?;
        let bucket = rest.split('/').next().unwrap_or("");
        (!bucket.is_empty()).then(|| percent_decode(bucket))
    }

    /// S3 helper: the object key for path-style requests `/bucket/key` (percent-decoded), if any.
    pub fn s3_key(&self) -> Option<String> {
        let rest = self.path.strip_prefix('/')?;
        let (bucket, key) = rest.split_once('/')?;
        (!bucket.is_empty() && !key.is_empty()).then(|| percent_decode(key))
    }

    fn is(&self, method: &str) -> bool {
        self.method.eq_ignore_ascii_case(method)
    }

    fn has_copy_source(&self) -> bool {
        self.header("x-amz-copy-source").is_some()
    }

    /// A request for the pipe's own release state (a key with a `.s3-deploy-pipe` segment, see
    /// test/releases.rs). The object predicates below (`is_put_object`, `is_copy_object`,
    /// `is_head_object`) are about the site's objects and leave these out.
    pub fn is_state(&self) -> bool {
        self.decoded_path()
            .split('/')
            .any(|s| s == ".s3-deploy-pipe")
    }

    /// PutObject of a site object: PUT with a key, no `x-amz-copy-source`, not a part upload.
    pub fn is_put_object(&self) -> bool {
        !self.is_state()
            && self.is("PUT")
            && self.s3_key().is_some()
            && !self.has_copy_source()
            && !self.has_query_param("partNumber")
            && !self.has_query_param("uploadId")
    }

    /// UploadPart (or UploadPartCopy): PUT `?partNumber=N&uploadId=ID`.
    pub fn is_upload_part(&self) -> bool {
        self.is("PUT")
            && self.s3_key().is_some()
            && self.has_query_param("partNumber")
            && self.has_query_param("uploadId")
    }

    /// CopyObject: PUT with `x-amz-copy-source` (not UploadPartCopy).
    pub fn is_copy_object(&self) -> bool {
        !self.is_state()
            && self.is("PUT")
            && self.s3_key().is_some()
            && self.has_copy_source()
            && !self.has_query_param("partNumber")
    }

    /// DeleteObjects: POST `?delete`.
    pub fn is_delete_objects(&self) -> bool {
        self.is("POST") && self.has_query_param("delete")
    }

    /// DeleteObject: DELETE of a key (not AbortMultipartUpload).
    pub fn is_delete_object(&self) -> bool {
        self.is("DELETE") && self.s3_key().is_some() && !self.has_query_param("uploadId")
    }

    /// CreateMultipartUpload: POST `/bucket/key?uploads`.
    pub fn is_create_multipart_upload(&self) -> bool {
        self.is("POST") && self.s3_key().is_some() && self.has_query_param("uploads")
    }

    /// CompleteMultipartUpload: POST `/bucket/key?uploadId=ID`.
    pub fn is_complete_multipart_upload(&self) -> bool {
        self.is("POST") && self.s3_key().is_some() && self.has_query_param("uploadId")
    }

    /// AbortMultipartUpload: DELETE `/bucket/key?uploadId=ID`.
    pub fn is_abort_multipart_upload(&self) -> bool {
        self.is("DELETE") && self.s3_key().is_some() && self.has_query_param("uploadId")
    }

    /// HeadObject: HEAD of a key.
    pub fn is_head_object(&self) -> bool {
        !self.is_state() && self.is("HEAD") && self.s3_key().is_some()
    }

    /// ListObjects / ListObjectsV2: GET on a bucket without a key (excluding sub-resources such
    /// as `?location`, `?versioning`).
    pub fn is_list_objects(&self) -> bool {
        self.is("GET")
            && self.s3_bucket().is_some()
            && self.s3_key().is_none()
            && (self.query.is_empty()
                || self.has_query_param("list-type")
                || self.has_query_param("prefix")
                || self.has_query_param("continuation-token")
                || self.has_query_param("marker"))
    }

    /// An STS request (form body or query with `Action=...` and `Version=2011-06-15`).
    pub fn is_sts(&self) -> bool {
        let body = self.body_str();
        query_param(&body, "Version").as_deref() == Some("2011-06-15")
            || self.query_param("Version").as_deref() == Some("2011-06-15")
    }

    /// CloudFront CreateInvalidation: POST `/<version>/distribution/<id>/invalidation`.
    pub fn is_create_invalidation(&self) -> bool {
        self.is("POST")
            && self.path.contains("/distribution/")
            && self.path.ends_with("/invalidation")
    }
}

/// What a rule applies to. Every `Some` field must match; `Match::default()` matches everything.
#[derive(Clone, Debug, Default)]
pub struct Match {
    /// Case-insensitive method, e.g. "PUT".
    pub method: Option<String>,
    /// Substring of the raw path OR of the percent-decoded path.
    pub path_contains: Option<String>,
    /// Substring of the raw OR the percent-decoded query string.
    pub query_contains: Option<String>,
    /// Substring of the (first 64 KiB of the) body, e.g. "Action=AssumeRoleWithWebIdentity".
    pub body_contains: Option<String>,
    /// (lower-case header name, substring of its value), e.g. ("authorization", "/us-east-1/")
    /// for every request signed for us-east-1.
    pub header_contains: Option<(String, String)>,
}

impl Match {
    /// Matches every request.
    pub fn any() -> Match {
        Match::default()
    }
    pub fn method(mut self, method: &str) -> Match {
        self.method = Some(method.to_string());
        self
    }
    pub fn path_contains(mut self, s: &str) -> Match {
        self.path_contains = Some(s.to_string());
        self
    }
    pub fn query_contains(mut self, s: &str) -> Match {
        self.query_contains = Some(s.to_string());
        self
    }
    pub fn body_contains(mut self, s: &str) -> Match {
        self.body_contains = Some(s.to_string());
        self
    }

    pub fn header_contains(mut self, name: &str, s: &str) -> Match {
        self.header_contains = Some((name.to_ascii_lowercase(), s.to_string()));
        self
    }

    /// Whether this matcher matches a recorded request.
    pub fn matches(&self, r: &Recorded) -> bool {
        self.matches_parts(&r.method, &r.path, &r.query, &r.headers, &r.body)
    }

    fn matches_parts(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> bool {
        let contains = |hay: &str, needle: &Option<String>| match needle {
            None => true,
            Some(n) => hay.contains(n.as_str()) || percent_decode(hay).contains(n.as_str()),
        };
        self.method
            .as_ref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && contains(path, &self.path_contains)
            && contains(query, &self.query_contains)
            && self
                .body_contains
                .as_ref()
                .is_none_or(|b| contains_bytes(body, b.as_bytes()))
            && self.header_contains.as_ref().is_none_or(|(name, value)| {
                headers
                    .iter()
                    .any(|(n, v)| n == name && v.contains(value.as_str()))
            })
    }
}

#[derive(Clone, Debug)]
pub enum Action {
    /// Answer without forwarding.
    Respond {
        status: u16,
        content_type: String,
        body: String,
    },
    /// Close the TCP connection without answering (after reading the request), with a reset.
    Drop,
    /// Forward, but wait this long before answering.
    Delay(Duration),
    /// Answer without forwarding, with these extra headers.
    RespondWith {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Read the request and never answer: the connection stays open and silent, as with a
    /// black-holed connection or a NAT that dropped its state. The pipe must give up and retry.
    Stall,
    /// Forward (the upstream carries the request out), then never answer: the answer is lost.
    LoseAnswer,
    /// Forward, then send the answer's body in `chunks` pieces, `every` apart: slow but moving.
    Trickle { chunks: usize, every: Duration },
    /// Forward with one byte of the request body changed (the middle one, inverted), as a
    /// faulty middlebox or NIC would: headers, Content-MD5 included, go through untouched.
    CorruptBody,
    /// Read the request, then wait at the gate until the test lets it through, then forward:
    /// the test changes something (a file on disk) at a moment it controls.
    Hold(Gate),
    /// Forward, and answer as S3 does for objects encrypted with SSE-KMS: every ETag (header,
    /// listing, CompleteMultipartUpload and CopyObject results) is replaced by an opaque one
    /// of the same form (32 hex digits that are not the content's MD5, the `-<parts>` suffix
    /// kept), and writes and reads say `x-amz-server-side-encryption: aws:kms`. Conditions the
    /// client sends with an opaque ETag (`If-Match`) reach the upstream with the real one.
    SseKms,
}

/// A gate for [`Action::Hold`]: counts the requests that reached it and lets through as many
/// as the test released.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<GateState>);

#[derive(Debug, Default)]
struct GateState {
    arrived: std::sync::atomic::AtomicUsize,
    released: std::sync::atomic::AtomicUsize,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Wait until `n` requests have reached the gate (at most 60 s, then panic).
    pub fn wait_arrivals(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.0.arrived.load(Ordering::SeqCst) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "no request {n} reached the gate within 60 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Let the first `n` requests that reach the gate through.
    pub fn release(&self, n: usize) {
        self.0.released.store(n, Ordering::SeqCst);
    }

    async fn pass(&self) {
        let me = self.0.arrived.fetch_add(1, Ordering::SeqCst);
        while self.0.released.load(Ordering::SeqCst) <= me {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Action {
    /// A generic S3-style XML error.
    pub fn s3_error(status: u16, code: &str, message: &str) -> Action {
        Action::Respond {
            status,
            content_type: "application/xml".to_string(),
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>\
                 <RequestId>PROXYFAULT0000001</RequestId><HostId>proxy-fault-injection</HostId></Error>",
                xml_escape(code),
                xml_escape(message)
            ),
        }
    }

    /// S3's answer for a bucket in another region: `301 PermanentRedirect` naming the bucket's
    /// region in `x-amz-bucket-region`, as S3 sends it to a request signed for the wrong region.
    pub fn s3_wrong_region(bucket: &str, region: &str) -> Action {
        Action::RespondWith {
            status: 301,
            headers: vec![
                ("content-type".into(), "application/xml".into()),
                ("x-amz-bucket-region".into(), region.to_string()),
            ],
            body: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.</Message><Endpoint>{b}.s3.{r}.amazonaws.com</Endpoint><Bucket>{b}</Bucket><RequestId>PROXYFAULT0000002</RequestId><HostId>proxy-fault-injection</HostId></Error>",
                b = xml_escape(bucket),
                r = xml_escape(region)
            ),
        }
    }

    /// S3 `503 SlowDown`.
    pub fn s3_slow_down() -> Action {
        Action::s3_error(503, "SlowDown", "Please reduce your request rate.")
    }

    /// S3 `500 InternalError`.
    pub fn s3_internal_error() -> Action {
        Action::s3_error(
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        )
    }

    /// An STS (query protocol) error document.
    /// CloudFront's error shape is the same `<ErrorResponse><Error>…` document as STS's.
    pub fn cloudfront_error(status: u16, code: &str, message: &str) -> Action {
        Action::sts_error(status, code, message)
    }

    pub fn sts_error(status: u16, code: &str, message: &str) -> Action {
        Action::Respond {
            status,
            content_type: "text/xml".to_string(),
            body: format!(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
                 <Code>{}</Code><Message>{}</Message></Error><RequestId>00000000-0000-0000-0000-proxyfault01</RequestId></ErrorResponse>",
                xml_escape(code),
                xml_escape(message)
            ),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub matcher: Match,
    pub action: Action,
    /// Chance in [0, 1] that a matching request is hit (1.0 = always).
    pub probability: f64,
    /// Fire at most this many times (None = unlimited).
    pub times: Option<usize>,
}

impl Rule {
    /// Always fires, unlimited times.
    pub fn new(matcher: Match, action: Action) -> Rule {
        Rule {
            matcher,
            action,
            probability: 1.0,
            times: None,
        }
    }
    pub fn probability(mut self, p: f64) -> Rule {
        self.probability = p;
        self
    }
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }
}

/// Percent-decode (`%XX` only; `+` stays `+`), lossy UTF-8.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h << 4) | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------------------------

struct Shared {
    log: Mutex<Vec<(u64, Recorded)>>,
    seq: AtomicU64,
    faults: Mutex<Faults>,
    /// Request headers the upstream never sees ([`Proxy::ignore_request_headers`]).
    ignored_headers: Mutex<Vec<String>>,
    /// [`Action::SseKms`]: opaque ETag → the upstream's.
    kms_etags: Mutex<std::collections::HashMap<String, String>>,
}

struct RuleSlot {
    rule: Rule,
    fired: usize,
}

struct Faults {
    rules: Vec<RuleSlot>,
    rng: XorShift64,
}

impl Faults {
    fn new(rules: Vec<Rule>, seed: u64) -> Faults {
        Faults {
            rules: rules
                .into_iter()
                .map(|rule| RuleSlot { rule, fired: 0 })
                .collect(),
            rng: XorShift64::new(seed),
        }
    }

    fn decide(&mut self, r: &Recorded) -> Option<Action> {
        for slot in &mut self.rules {
            if slot.rule.times.is_some_and(|t| slot.fired >= t) {
                continue;
            }
            if !slot.rule.matcher.matches(r) {
                continue;
            }
            if slot.rule.probability < 1.0 && self.rng.next_f64() >= slot.rule.probability {
                continue;
            }
            slot.fired += 1;
            return Some(slot.rule.action.clone());
        }
        None
    }
}

/// xorshift64, seeded through splitmix64 so that small seeds give well-mixed first draws.
struct XorShift64(u64);

impl XorShift64 {
    fn new(seed: u64) -> XorShift64 {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift64(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Target {
    scheme: Scheme,
    authority: Authority,
}

struct Ctx {
    shared: Arc<Shared>,
    client: UpstreamClient,
    target: Target,
}

impl Shared {
    fn record(&self, seq: u64, rec: Recorded) {
        lock(&self.log).push((seq, rec));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not poison the proxy for the remaining assertions.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn accept_loop(listener: tokio::net::TcpListener, ctx: Arc<Ctx>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, ctx.clone()));
            }
            // e.g. EMFILE: back off briefly instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve_connection(stream: TcpStream, ctx: Arc<Ctx>) {
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ResetOnDrop {
        stream,
        reset: reset.clone(),
    });
    let service = service_fn(move |req| handle(ctx.clone(), reset.clone(), req));
    // Errors here are client disconnects or deliberate drops; nothing to report.
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .serve_connection(io, service)
        .await;
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by proxy fault rule")
    }
}

impl std::error::Error for Dropped {}

/// Hop-by-hop headers that describe one connection, not the message.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection"
    )
}

async fn handle(
    ctx: Arc<Ctx>,
    reset: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, BoxError> {
    let seq = ctx.shared.seq.fetch_add(1, Ordering::SeqCst);
    let (mut parts, body) = req.into_parts();

    let pq: PathAndQuery = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let path = pq.path().to_string();
    let query = pq.query().unwrap_or("").to_string();
    let headers = header_list(&parts.headers);
    let access_key = access_key(&parts.headers, &query);

    let mut rec = Recorded {
        method: parts.method.as_str().to_string(),
        path,
        query,
        access_key,
        headers,
        body: Vec::new(),
        body_len: 0,
        response_body: Vec::new(),
        status: 0,
    };

    let (body, trailers) = match body.collect().await {
        Ok(b) => {
            let trailers = b.trailers().cloned();
            (b.to_bytes(), trailers)
        }
        Err(e) => {
            // Client went away mid-body.
            ctx.shared.record(seq, rec);
            return Err(e.into());
        }
    };
    rec.body = body[..body.len().min(RECORDED_BODY_LIMIT)].to_vec();
    rec.body_len = body.len();

    let action = lock(&ctx.shared.faults).decide(&rec);
    let mut corrupt = false;
    let kms = matches!(action, Some(Action::SseKms));
    if kms {
        kms_conditions(&ctx.shared, &mut parts.headers);
    }

    let delay = match action {
        Some(Action::Respond {
            status,
            content_type,
            body,
        }) => {
            rec.status = status;
            ctx.shared.record(seq, rec);
            let resp = Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .header("content-type", content_type)
                .header("x-amz-request-id", format!("PROXYFAULT{seq:07}"))
                .body(full(Bytes::from(body)))?;
            return Ok(resp);
        }
        Some(Action::RespondWith {
            status,
            headers,
            body,
        }) => {
            rec.status = status;
            ctx.shared.record(seq, rec);
            let mut resp = Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .header("x-amz-request-id", format!("PROXYFAULT{seq:07}"));
            for (k, v) in headers {
                resp = resp.header(k, v);
            }
            return Ok(resp.body(full(Bytes::from(body)))?);
        }
        Some(Action::Drop) => {
            rec.status = 0;
            ctx.shared.record(seq, rec);
            reset.store(true, Ordering::SeqCst);
            return Err(Box::new(Dropped));
        }
        Some(Action::Stall) => {
            rec.status = 0;
            ctx.shared.record(seq, rec);
            // Hold the socket open until the client gives up (or the proxy is dropped).
            std::future::pending::<()>().await;
            return Err(Box::new(Dropped));
        }
        Some(Action::LoseAnswer) => Some(Pace::Never),
        Some(Action::Delay(d)) => Some(Pace::Delay(d)),
        Some(Action::Trickle { chunks, every }) => Some(Pace::Trickle(chunks, every)),
        Some(Action::CorruptBody) => {
            corrupt = true;
            None
        }
        Some(Action::Hold(gate)) => {
            gate.pass().await;
            None
        }
        Some(Action::SseKms) | None => None,
    };

    // Forward. Headers (including Host) and the raw path+query go through untouched.
    parts.uri = Uri::builder()
        .scheme(ctx.target.scheme.clone())
        .authority(ctx.target.authority.clone())
        .path_and_query(pq)
        .build()?;
    parts.headers.retain_hop_by_hop();
    for name in lock(&ctx.shared.ignored_headers).iter() {
        parts.headers.remove(name.as_str());
    }
    // The whole body is forwarded as received (HTTP trailers of a chunked request included).
    let body = if kms {
        kms_request_body(&ctx.shared, body)
    } else {
        body
    };
    let body = if corrupt && !body.is_empty() {
        let mut b = body.to_vec();
        let mid = b.len() / 2;
        b[mid] = !b[mid];
        Bytes::from(b)
    } else {
        body
    };
    let upstream_body = match trailers {
        None => Full::new(body).boxed(),
        Some(t) => Full::new(body)
            .with_trailers(std::future::ready(Some(Ok(t))))
            .boxed(),
    };
    let upstream_req = Request::from_parts(parts, upstream_body);

    // Run the upstream exchange in its own task so that the request is recorded even if the
    // client disconnects (and hyper drops this future) meanwhile.
    let client = ctx.client.clone();
    let shared = ctx.shared.clone();
    let exchange = tokio::spawn(async move {
        match client.request(upstream_req).await {
            Ok(resp) if rec.is_sts() => {
                rec.status = resp.status().as_u16();
                let (parts, body) = resp.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                rec.response_body = bytes.to_vec();
                shared.record(seq, rec);
                Ok(Response::from_parts(
                    parts,
                    Full::new(bytes)
                        .map_err(|e| -> BoxError { match e {} })
                        .boxed(),
                ))
            }
            Ok(resp) => {
                rec.status = resp.status().as_u16();
                shared.record(seq, rec);
                Ok(resp.map(|b| b.map_err(|e| -> BoxError { e.into() }).boxed()))
            }
            Err(e) => {
                rec.status = 502;
                shared.record(seq, rec);
                Err(e)
            }
        }
    });
    let result = exchange.await?;
    match delay {
        Some(Pace::Delay(d)) => tokio::time::sleep(d).await,
        Some(Pace::Never) => std::future::pending::<()>().await,
        _ => {}
    }
    match result {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            parts.headers.retain_hop_by_hop();
            if kms {
                let bytes = body.collect().await?.to_bytes();
                let bytes = kms_answer(&ctx.shared, &mut parts, &bytes);
                return Ok(Response::from_parts(parts, full(bytes)));
            }
            if let Some(Pace::Trickle(chunks, every)) = delay {
                let bytes = body.collect().await?.to_bytes();
                let size = bytes.len().div_ceil(chunks.max(1)).max(1);
                let pieces = (0..bytes.len())
                    .step_by(size)
                    .map(|i| bytes.slice(i..(i + size).min(bytes.len())))
                    .collect();
                let body = TrickleBody {
                    pieces,
                    every,
                    timer: None,
                };
                return Ok(Response::from_parts(parts, body.boxed()));
            }
            Ok(Response::from_parts(parts, body))
        }
        Err(e) => Ok(Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .header("content-type", "text/plain")
            .body(full(Bytes::from(format!("proxy: upstream error: {e:?}"))))?),
    }
}

/// [`Action::SseKms`]: the opaque ETag standing for the upstream's `etag` (no quotes): the
/// same form, other hex digits.
fn kms_etag(shared: &Shared, etag: &str) -> String {
    use md5::{Digest, Md5};
    let (hex, parts) = etag
        .split_once('-')
        .map_or((etag, None), |(h, n)| (h, Some(n)));
    let opaque = hex::encode(Md5::digest(format!("kms:{hex}").as_bytes()));
    let opaque = match parts {
        Some(n) => format!("{opaque}-{n}"),
        None => opaque,
    };
    lock(&shared.kms_etags).insert(opaque.clone(), etag.to_string());
    opaque
}

/// [`Action::SseKms`]: conditions on an opaque ETag, made conditions on the upstream's.
fn kms_conditions(shared: &Shared, headers: &mut HeaderMap) {
    for name in ["if-match", "if-none-match", "x-amz-copy-source-if-match"] {
        let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let inner = v.trim_matches('"');
        let real = lock(&shared.kms_etags).get(inner).cloned();
        if let Some(real) = real
            && let Ok(v) = HeaderValue::from_str(&format!("\"{real}\""))
        {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
}

/// [`Action::SseKms`]: a CompleteMultipartUpload names its parts by the opaque ETags the
/// client was given; the upstream knows them by its own.
fn kms_request_body(shared: &Shared, body: Bytes) -> Bytes {
    let Ok(text) = std::str::from_utf8(&body) else {
        return body;
    };
    if !text.contains("<ETag>") {
        return body;
    }
    let known = lock(&shared.kms_etags).clone();
    let mut out = text.to_string();
    for (opaque, real) in known {
        if out.contains(&opaque) && opaque.len() == real.len() {
            out = out.replace(&opaque, &real);
        }
    }
    Bytes::from(out)
}

/// [`Action::SseKms`]: the upstream's answer with opaque ETags (same lengths, so
/// `Content-Length` stays right) and the encryption header on a successful object answer.
fn kms_answer(shared: &Shared, parts: &mut hyper::http::response::Parts, body: &[u8]) -> Bytes {
    if let Some(e) = parts.headers.get("etag").and_then(|v| v.to_str().ok()) {
        let opaque = kms_etag(shared, e.trim_matches('"'));
        if let Ok(v) = HeaderValue::from_str(&format!("\"{opaque}\"")) {
            parts.headers.insert("etag", v);
        }
        parts.headers.insert(
            "x-amz-server-side-encryption",
            HeaderValue::from_static("aws:kms"),
        );
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Bytes::copy_from_slice(body);
    };
    if !text.contains("<ETag>") {
        return Bytes::copy_from_slice(body);
    }
    if parts.status.is_success() && !text.contains("<ListBucketResult") {
        // CompleteMultipartUpload, CopyObject.
        parts.headers.insert(
            "x-amz-server-side-encryption",
            HeaderValue::from_static("aws:kms"),
        );
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("<ETag>") {
        let (head, tail) = rest.split_at(i + "<ETag>".len());
        out.push_str(head);
        let end = tail.find("</ETag>").unwrap_or(tail.len());
        let value = &tail[..end];
        let (open, inner, close) = ["&quot;", "&#34;", "\""]
            .iter()
            .find_map(|q| {
                let inner = value.strip_prefix(q)?.strip_suffix(q)?;
                Some((*q, inner, *q))
            })
            .unwrap_or(("", value, ""));
        out.push_str(open);
        out.push_str(&kms_etag(shared, inner));
        out.push_str(close);
        rest = &tail[end..];
    }
    out.push_str(rest);
    Bytes::from(out)
}

/// How a forwarded answer is paced.
enum Pace {
    Delay(Duration),
    Never,
    Trickle(usize, Duration),
}

/// A body sent in pieces, `every` apart (the first after `every` too).
struct TrickleBody {
    pieces: std::collections::VecDeque<Bytes>,
    every: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl hyper::body::Body for TrickleBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        if self.pieces.is_empty() {
            return Poll::Ready(None);
        }
        let every = self.every;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.timer = None;
                let piece = self.pieces.pop_front().unwrap_or_default();
                Poll::Ready(Some(Ok(hyper::body::Frame::data(piece))))
            }
        }
    }
}

trait HopByHop {
    fn retain_hop_by_hop(&mut self);
}

impl HopByHop for HeaderMap<HeaderValue> {
    /// Remove connection-level headers (hyper manages keep-alive per hop).
    fn retain_hop_by_hop(&mut self) {
        let names: Vec<HeaderName> = self.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
        for n in names {
            self.remove(n);
        }
    }
}

fn full(b: Bytes) -> ProxyBody {
    Full::new(b).map_err(|e: Infallible| match e {}).boxed()
}

fn header_list(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn access_key(h: &HeaderMap, query: &str) -> Option<String> {
    let from_auth = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| {
            let rest = &auth[auth.find("Credential=")? + "Credential=".len()..];
            let akid = rest.split(['/', ',', ' ']).next()?;
            (!akid.is_empty()).then(|| akid.to_string())
        });
    from_auth.or_else(|| {
        let cred = query_param(query, "X-Amz-Credential")?;
        let akid = cred.split('/').next()?;
        (!akid.is_empty()).then(|| akid.to_string())
    })
}

/// Value of form/query parameter `name` (percent-decoded, `+` as space), "" for a bare key.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(&v.replace('+', " ")))
    })
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The client connection; if a `Drop` rule fired on it, closing sends a TCP RST
/// (SO_LINGER 0) instead of a graceful FIN.
struct ResetOnDrop {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ResetOnDrop {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetOnDrop {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
