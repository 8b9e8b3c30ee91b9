//! The permits requests take: a semaphore whose permits are added when the limit grows and
//! forgotten when it shrinks, and the hook that tells it about throttled attempts.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use aws_sdk_s3::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use tokio::sync::Semaphore;

use super::Pace;
use crate::config::Concurrency;

/// HTTP statuses that mean "slow down": S3's 503 (SlowDown, and ServiceUnavailable, which S3
/// documents as "reduce your request rate" too) and 429 Too Many Requests, which other stores
/// (and S3-compatible gateways) send for the same reason. Other 5xx are failures of one
/// request, not a sign of too many.
const THROTTLE_STATUSES: [u16; 2] = [503, 429];

/// The requests in flight: at most the limit, fixed (`MAX_CONCURRENCY` set) or moved by a
/// [`Pace`].
#[derive(Debug)]
pub(crate) struct Gate {
    permits: Semaphore,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// `None`: a fixed limit.
    pace: Option<Pace>,
    /// The limit the permits stand for: available + in flight = granted + debt.
    granted: usize,
    in_flight: usize,
    /// Permits to forget as they come back (the limit went down while they were held).
    debt: usize,
    /// The highest limit of the run and the throttled attempts seen, for the debug log.
    highest: usize,
    throttles: u64,
}

/// The semaphore is never closed.
#[derive(Debug, thiserror::Error)]
#[error("the request gate was closed")]
pub(crate) struct Closed;

/// One request in flight; dropping it lets the next one through.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    gate: &'a Gate,
    started: Instant,
    bytes: u64,
}

impl Permit<'_> {
    /// The request carries a body of `bytes` (for the throughput in bytes per second).
    pub(crate) fn set_bytes(&mut self, bytes: u64) {
        self.bytes = bytes;
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.gate.release(self.started, self.bytes);
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Gate {
    pub(crate) fn new(concurrency: Concurrency) -> Gate {
        let (pace, limit) = match concurrency {
            Concurrency::Fixed(n) => (None, n.max(1)),
            Concurrency::Adaptive { ceiling } => {
                let pace = Pace::new(ceiling, Instant::now());
                let limit = pace.limit();
                (Some(pace), limit)
            }
        };
        Gate {
            permits: Semaphore::new(limit),
            state: Mutex::new(State {
                pace,
                granted: limit,
                in_flight: 0,
                debt: 0,
                highest: limit,
                throttles: 0,
            }),
        }
    }

    /// Wait for a permit.
    pub(crate) async fn acquire(&self) -> Result<Permit<'_>, Closed> {
        self.permits.acquire().await.map_err(|_| Closed)?.forget();
        let mut s = lock(&self.state);
        s.in_flight += 1;
        let in_flight = s.in_flight;
        if let Some(p) = &mut s.pace {
            p.started(in_flight);
        }
        Ok(Permit {
            gate: self,
            started: Instant::now(),
            bytes: 0,
        })
    }

    /// The requests that may be in flight now.
    #[cfg(test)]
    pub(crate) fn limit(&self) -> usize {
        lock(&self.state).granted
    }

    /// An attempt of a request sent at `request_started` was answered "slow down".
    pub(crate) fn throttled(&self, request_started: Instant) {
        let mut s = lock(&self.state);
        s.throttles += 1;
        if let Some(p) = &mut s.pace {
            p.throttled(Instant::now(), request_started);
        }
        self.follow(&mut s);
    }

    fn release(&self, started: Instant, bytes: u64) {
        let mut s = lock(&self.state);
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.debt > 0 {
            s.debt -= 1;
        } else {
            self.permits.add_permits(1);
        }
        if let Some(p) = &mut s.pace {
            p.completed(Instant::now(), started, bytes);
        }
        self.follow(&mut s);
    }

    /// Make the permits stand for the controller's limit.
    fn follow(&self, s: &mut State) {
        let Some(want) = s.pace.as_ref().map(Pace::limit) else {
            return;
        };
        if want > s.granted {
            let add = want - s.granted;
            let repaid = add.min(s.debt);
            s.debt -= repaid;
            self.permits.add_permits(add - repaid);
        } else if want < s.granted {
            let cut = s.granted - want;
            let forgotten = self.permits.forget_permits(cut);
            s.debt += cut - forgotten;
        } else {
            return;
        }
        tracing::debug!(from = s.granted, to = want, "requests in flight");
        s.granted = want;
        s.highest = s.highest.max(want);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let s = lock(&self.state);
        if s.pace.is_some() {
            tracing::debug!(
                last = s.granted,
                highest = s.highest,
                throttled_attempts = s.throttles,
                "requests in flight at the end"
            );
        }
    }
}

/// `client`, with every attempt that is answered "slow down" reported to `gate`: the SDK
/// retries those attempts itself (with backoff), so this is where they can be seen.
pub(crate) fn paced(client: &Client, gate: Arc<Gate>) -> Client {
    Client::from_conf(
        client
            .config()
            .to_builder()
            .interceptor(ThrottleHook(gate))
            .build(),
    )
}

#[derive(Debug)]
struct ThrottleHook(Arc<Gate>);

/// When the request was sent (its first attempt; the SDK's retries come after).
#[derive(Debug, Clone, Copy)]
struct RequestStarted(Instant);

impl Storable for RequestStarted {
    type Storer = StoreReplace<Self>;
}

impl Intercept for ThrottleHook {
    fn name(&self) -> &'static str {
        "s3-deploy-pipe requests in flight"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(RequestStarted(Instant::now()));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let throttled = context
            .response()
            .is_some_and(|r| THROTTLE_STATUSES.contains(&r.status().as_u16()));
        if throttled {
            let started = cfg
                .load::<RequestStarted>()
                .map_or_else(Instant::now, |a| a.0);
            self.0.throttled(started);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fixed_gate_lets_exactly_n_through() {
        let gate = Gate::new(Concurrency::Fixed(3));
        let a = gate.acquire().await.expect("open");
        let _b = gate.acquire().await.expect("open");
        let _c = gate.acquire().await.expect("open");
        assert!(gate.permits.try_acquire().is_err(), "a fourth waits");
        // A throttle does not move a fixed limit.
        gate.throttled(Instant::now());
        assert_eq!(gate.limit(), 3);
        drop(a);
        assert_eq!(gate.permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_lower_limit_takes_effect_as_permits_come_back() {
        let gate = Gate::new(Concurrency::Adaptive { ceiling: 256 });
        assert_eq!(gate.limit(), super::super::INITIAL);
        let mut held = Vec::new();
        for _ in 0..super::super::INITIAL {
            held.push(gate.acquire().await.expect("open"));
        }
        gate.throttled(Instant::now());
        let half = super::super::INITIAL / 2;
        assert_eq!(gate.limit(), half);
        // All 32 are held: 16 must come back before another is let through.
        held.truncate(half);
        assert_eq!(
            gate.permits.available_permits(),
            0,
            "the debt is paid first"
        );
        held.pop();
        assert_eq!(gate.permits.available_permits(), 1);
        let s = lock(&gate.state);
        assert_eq!(s.in_flight + gate.permits.available_permits(), half);
        drop(s);
        // An attempt sent before the limit went down was answered by that cut already.
        gate.throttled(Instant::now() - std::time::Duration::from_secs(1));
        assert_eq!(gate.limit(), half);
    }
}
