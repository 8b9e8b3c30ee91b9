//! A store that throttles by concurrency: an HTTP/1.1 reverse proxy in front of moto that
//! answers `503 SlowDown` (S3's body) to every request that arrives while `limit` requests are
//! already being served, and forwards the others, each held for `delay` first so that the store
//! is latency-bound (as a far bucket is: more requests in flight, more throughput, up to the
//! limit).
//!
//! It records, for every request, how many were in flight when it arrived and whether it was
//! throttled. A request is in flight from its arrival until its answer is complete, counted
//! before the answer is sent, so a client that sends its next request when it gets an answer
//! never finds the previous one still counted.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// One request as the store saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Requests in flight when it arrived, itself included.
    pub in_flight: usize,
    pub throttled: bool,
}

/// A running store; dropping it stops it.
pub struct LimitProxy {
    addr: std::net::SocketAddr,
    state: Arc<State>,
    _runtime: tokio::runtime::Runtime,
}

struct State {
    limit: usize,
    delay: Duration,
    upstream: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    /// In flight now, and every arrival in order.
    log: Mutex<(usize, Vec<Arrival>)>,
}

impl LimitProxy {
    /// Listen on 127.0.0.1, forward to `upstream` (`http://host:port`), throttle above `limit`.
    pub fn start(upstream: &str, limit: usize, delay: Duration) -> LimitProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("limit proxy: runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("limit proxy: bind");
        let addr = listener.local_addr().expect("limit proxy: address");
        let state = Arc::new(State {
            limit,
            delay,
            upstream: upstream.parse().expect("limit proxy: upstream URL"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            log: Mutex::new((0, Vec::new())),
        });
        let serving = state.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        LimitProxy {
            addr,
            state,
            _runtime: runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in the order they arrived.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// Forget the requests so far (between two runs).
    pub fn clear(&self) {
        self.state
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clear();
    }
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>LIMITPROXY</RequestId></Error>";

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let throttled = {
        let mut log = state.log.lock().unwrap_or_else(PoisonError::into_inner);
        let throttled = log.0 >= state.limit;
        let in_flight = log.0 + 1;
        log.1.push(Arrival {
            in_flight,
            throttled,
        });
        if !throttled {
            log.0 += 1;
        }
        throttled
    };
    if throttled {
        // Read the body, as S3 does, so that the connection can be used again.
        let _ = req.into_body().collect().await;
        return Ok(Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header("content-type", "application/xml")
            .body(Full::new(Bytes::from_static(SLOW_DOWN.as_bytes())))
            .expect("503 response"));
    }
    let answer = forward(&state, req).await;
    state.log.lock().unwrap_or_else(PoisonError::into_inner).0 -= 1;
    Ok(answer)
}

/// The upstream's answer to `req`, held for the store's delay first.
async fn forward(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    tokio::time::sleep(state.delay).await;
    let (mut parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!(
        "{}://{}{path}",
        state.upstream.scheme_str().unwrap_or("http"),
        state.upstream.authority().expect("upstream host")
    )
    .parse()
    .expect("upstream URI");
    let answer = match state
        .client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Full::new(Bytes::from(format!("limit proxy: {e}"))))
                .expect("502 response");
        }
    };
    let (mut parts, body) = answer.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    parts.headers.remove("transfer-encoding");
    parts.headers.remove("connection");
    Response::from_parts(parts, Full::new(body))
}
