//! A raw TCP proxy that puts a network's round trip between a client and a local S3 server,
//! for the benchmarks (bench/bench.py, scenarios L1, L2 and T3).
//!
//! Every byte the upstream sends is held `DELAY_MS` before it is passed on to the client, in
//! order, per connection; what the client sends goes upstream at once. So every
//! request/response exchange takes `DELAY_MS` longer, as over a network with that round trip,
//! and many connections wait side by side, as they would on a real network.
//!
//! Each connection's responses go through a queue of (deadline, bytes): the reader stamps each
//! chunk with the time it arrived plus the delay and goes on reading, the writer sleeps until
//! the head's deadline and writes it. No per-read sleep serializes the stream. A close from
//! either side is passed on as a half-close (the upstream's after the delay, like its bytes).
//!
//! It replaced bench/latency_proxy.py (Python, asyncio), which took 2 to 2.5 times its CPU per
//! request (check.py: 19 against 9 µs at 0 ms, 36 against 14 µs at 30 ms), CPU that the client
//! and the server under test share on a small machine.
//!
//! Usage: delay-proxy LISTEN_PORT UPSTREAM_HOST:PORT DELAY_MS   (listens on 127.0.0.1)

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore, SemaphorePermit};
use tokio::time::{sleep, sleep_until, Instant};

/// One read from a socket: as large as a socket's default receive buffer can deliver at once,
/// so a large response costs few reads.
const READ_BUFFER: usize = 64 * 1024;

/// Bytes held per connection before the proxy stops reading from the upstream (TCP's own flow
/// control then slows it down). 16 MiB held for a 100 ms delay passes 160 MiB/s per
/// connection, far beyond what the benchmarks' small objects need, and bounds the memory.
const HELD_BYTES: usize = 16 * 1024 * 1024;

/// How long to wait before accepting again after `accept` failed (e.g. out of file
/// descriptors), instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

struct Args {
    listen: u16,
    upstream: String,
    delay: Duration,
}

const USAGE: &str = "usage: delay-proxy LISTEN_PORT UPSTREAM_HOST:PORT DELAY_MS";

fn parse_args() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, delay] = argv.as_slice() else {
        return Err(USAGE.to_string());
    };
    let listen = listen
        .parse()
        .map_err(|_| format!("LISTEN_PORT {listen:?} is not a port number\n{USAGE}"))?;
    let delay: u64 = delay.parse().map_err(|_| {
        format!("DELAY_MS {delay:?} is not a whole number of milliseconds\n{USAGE}")
    })?;
    Ok(Args {
        listen,
        upstream: upstream.clone(),
        delay: Duration::from_millis(delay),
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // One thread: the work per byte is a copy, and the benchmarks' client and server need the
    // other cores more than the proxy does.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("delay-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("delay-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", args.listen)).await?;
    let upstream: Arc<str> = args.upstream.into();
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                tokio::spawn(relay(client, Arc::clone(&upstream), args.delay));
            }
            Err(e) => {
                eprintln!("delay-proxy: accept: {e}");
                sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// One client connection: a connection upstream, and the two directions side by side.
async fn relay(client: TcpStream, upstream: Arc<str>, delay: Duration) {
    let server = match TcpStream::connect(&*upstream).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("delay-proxy: connect to {upstream}: {e}");
            return; // dropping the client closes it
        }
    };
    // Small requests and responses must not wait for Nagle's algorithm on top of the delay.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        forward(client_read, server_write),
        forward_delayed(server_read, client_write, delay),
    );
}

/// Client to upstream, at once; the client's end of stream becomes the upstream's.
async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return; // the upstream is gone: dropping `to` closes it
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// A chunk the upstream sent, due at the client at `due`; empty for the end of the stream.
struct Held<'a> {
    due: Instant,
    bytes: Vec<u8>,
    _budget: Option<SemaphorePermit<'a>>,
}

/// Upstream to client, every chunk `delay` after it arrived, in order.
async fn forward_delayed(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let budget = Semaphore::new(HELD_BYTES);
    let (queue, mut due) = mpsc::unbounded_channel::<Held<'_>>();
    let read = async {
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let arrived = Instant::now();
            // n <= READ_BUFFER <= HELD_BYTES, so the permits always exist; Err only if closed,
            // which this function never does.
            let Ok(permit) = budget.acquire_many(n as u32).await else {
                break;
            };
            let held = Held {
                due: arrived + delay,
                bytes: buf[..n].to_vec(),
                _budget: Some(permit),
            };
            if queue.send(held).is_err() {
                return; // the client is gone
            }
        }
        let _ = queue.send(Held {
            due: Instant::now() + delay,
            bytes: Vec::new(),
            _budget: None,
        });
    };
    let write = async {
        while let Some(held) = due.recv().await {
            sleep_until(held.due).await;
            if held.bytes.is_empty() {
                break;
            }
            if to.write_all(&held.bytes).await.is_err() {
                due.close(); // the reader stops at its next chunk
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}
