//! The controller's rules, one table of event sequences, and its behaviour against simulated
//! stores (near, far, saturated, throttling), compared with fixed numbers of requests in flight.

use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One thing that happens to a controller.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A window in which the limit held requests back: `limit` requests (at least
    /// `MIN_WINDOW`) complete over `ms`, each after `latency_ms`.
    Busy { ms: u64, latency_ms: u64 },
    /// A busy window with the throughput of the window before: a saturated store.
    Flat,
    /// A window in which the pipe had fewer requests to make than the limit.
    Idle,
    /// An attempt sent now is throttled.
    Throttle,
    /// An attempt of a request sent before the last cut is throttled.
    LateThrottle,
}

/// Round trips of 100 ms, the throughput follows the limit.
const FAR: Step = Step::Busy {
    ms: 100,
    latency_ms: 100,
};

/// Feed `steps`, returning the limit after each.
fn run(ceiling: usize, steps: &[Step]) -> Vec<usize> {
    let t0 = Instant::now();
    let mut now = t0;
    let mut p = Pace::new(ceiling, now);
    let mut rate = 0.0_f64;
    let mut limits = Vec::new();
    for step in steps {
        #[allow(clippy::cast_precision_loss)]
        let busy = |p: &mut Pace, now: &mut Instant, d: Duration, latency: Duration| {
            let n = p.limit().max(MIN_WINDOW);
            p.started(p.limit());
            *now += d;
            for _ in 0..n {
                p.completed(*now, *now - latency, 1_000);
            }
            n as f64 / d.as_secs_f64()
        };
        match *step {
            Step::Busy { ms: d, latency_ms } => {
                rate = busy(&mut p, &mut now, ms(d), ms(latency_ms))
            }
            Step::Flat => {
                #[allow(clippy::cast_precision_loss)]
                let d = Duration::from_secs_f64(p.limit().max(MIN_WINDOW) as f64 / rate);
                rate = busy(&mut p, &mut now, d, d);
            }
            Step::Idle => {
                p.started(1);
                now += ms(10);
                for _ in 0..p.limit().max(MIN_WINDOW) {
                    p.completed(now, now - ms(1), 1_000);
                }
            }
            Step::Throttle => {
                now += ms(1);
                p.throttled(now, now);
            }
            Step::LateThrottle => {
                now += ms(1);
                p.throttled(now, t0);
            }
        }
        limits.push(p.limit());
    }
    limits
}

/// `steps`, then `n` times `step`.
fn then(steps: &[Step], n: usize, step: Step) -> Vec<Step> {
    let mut v = steps.to_vec();
    v.extend(std::iter::repeat_n(step, n));
    v
}

#[test]
fn rules() {
    use Step::{Flat, Idle, LateThrottle, Throttle};
    // Slow start to 128, which does not pay off: back to 64, then the first window there
    // measures the level and 8 more hold it.
    let settled = then(&[FAR, FAR, Flat], 9, FAR);
    let settled_limits = then_limits(&[64, 128, 64], 9, 64);
    let table: Vec<(&str, usize, Vec<Step>, Vec<usize>)> = vec![
        (
            "slow start doubles while the throughput follows, up to the ceiling",
            256,
            vec![FAR; 5],
            vec![64, 128, 256, 256, 256],
        ),
        (
            "a ceiling below the start is where it starts",
            8,
            vec![FAR; 2],
            vec![8, 8],
        ),
        (
            "a doubling that does not pay off goes back, and holds",
            256,
            settled.clone(),
            settled_limits.clone(),
        ),
        (
            "then probes additively by 1/16 of the level, judged at +1/4: kept when it paid off",
            256,
            then(&settled, 5, FAR),
            [settled_limits.clone(), vec![68, 72, 76, 80, 85]].concat(),
        ),
        (
            "a probe that does not pay off goes back to the level kept",
            256,
            then(&settled, 5, Flat),
            [settled_limits.clone(), vec![68, 72, 76, 80, 64]].concat(),
        ),
        (
            "latency that doubles without the throughput cuts a quarter",
            256,
            then(
                &settled,
                1,
                Step::Busy {
                    ms: 250,
                    latency_ms: 250,
                },
            ),
            [settled_limits.clone(), vec![48]].concat(),
        ),
        (
            "windows where the limit held nothing back change nothing",
            256,
            vec![Idle, Idle, Idle, FAR],
            vec![32, 32, 32, 64],
        ),
        (
            "a throttle halves at once and ends slow start; probing starts after a window",
            256,
            vec![FAR, Throttle, FAR, FAR, FAR],
            vec![64, 32, 32, 32, 34],
        ),
        (
            "throttles of requests sent before the cut were answered by it",
            256,
            vec![FAR, Throttle, LateThrottle, LateThrottle],
            vec![64, 32, 32, 32],
        ),
        (
            "each throttle after the cut halves again, never below 1",
            256,
            vec![Throttle; 7],
            vec![16, 8, 4, 2, 1, 1, 1],
        ),
        (
            "a throttled level is not reached again",
            256,
            then(&[Throttle], 19, FAR),
            [vec![16; 3], (17..=31).collect(), vec![31; 2]].concat(),
        ),
    ];
    for (name, ceiling, steps, want) in table {
        assert_eq!(run(ceiling, &steps), want, "{name}");
    }
}

fn then_limits(limits: &[usize], n: usize, limit: usize) -> Vec<usize> {
    let mut v = limits.to_vec();
    v.extend(std::iter::repeat_n(limit, n));
    v
}

/// A store for the simulation: a round trip, a rate it cannot exceed (requests queue for it),
/// and a number of requests in flight above which it answers 503.
#[derive(Debug, Clone, Copy)]
struct Store {
    rtt_ms: u64,
    /// Requests per second the store (or the client's CPUs) can serve.
    capacity: f64,
    throttle_above: Option<usize>,
}

#[derive(Debug, Default)]
struct Outcome {
    elapsed: Duration,
    throttles: usize,
    /// Throttles once a third of the requests were done: after the level was found.
    late_throttles: usize,
    /// The most requests in flight at the store once a third of the requests were done.
    settled_most: usize,
    last_limit: usize,
}

/// What happens next to a request: its attempt is answered (503 or not), or, after a 503, the
/// SDK's backoff ends and it is sent again.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Attempt {
    at: std::cmp::Reverse<Duration>,
    seq: u64,
    /// When its request took its permit.
    permit: Duration,
    throttled: bool,
    /// A backoff ending, not an answer.
    retry: bool,
}

/// A simulated run: a store, the attempts at it, and what was seen.
struct Sim {
    store: Store,
    requests: usize,
    done: usize,
    at_store: usize,
    seq: u64,
    /// When the store is next free to serve a request (its capacity).
    free_at: Duration,
    queue: BinaryHeap<Attempt>,
    out: Outcome,
}

impl Sim {
    /// An attempt arrives: answered 503 at once when the store already serves its most, else
    /// served in turn.
    fn send(&mut self, now: Duration, permit: Duration) {
        self.seq += 1;
        let throttled = self
            .store
            .throttle_above
            .is_some_and(|n| self.at_store >= n);
        if !throttled {
            self.at_store += 1;
        }
        if self.done * 3 >= self.requests {
            self.out.settled_most = self
                .out
                .settled_most
                .max(self.at_store + usize::from(throttled));
        }
        let served = if throttled {
            now
        } else {
            let per_request = Duration::from_secs_f64(1.0 / self.store.capacity);
            self.free_at = self.free_at.max(now) + per_request;
            self.free_at
        };
        self.queue.push(Attempt {
            at: std::cmp::Reverse(served + ms(self.store.rtt_ms)),
            seq: self.seq,
            permit,
            throttled,
            retry: false,
        });
    }
}

/// Run `requests` requests against `store`, adaptive up to `ceiling` (or `fixed` in flight).
/// The pipe always has requests to make; the SDK retries a throttled attempt after a backoff,
/// its permit held meanwhile.
fn simulate(store: Store, requests: usize, ceiling: Option<usize>, fixed: usize) -> Outcome {
    let t0 = Instant::now();
    let mut pace = ceiling.map(|c| Pace::new(c, t0));
    let limit = |p: &Option<Pace>| p.as_ref().map_or(fixed, Pace::limit);
    let mut sim = Sim {
        store,
        requests,
        done: 0,
        at_store: 0,
        seq: 0,
        free_at: Duration::ZERO,
        queue: BinaryHeap::new(),
        out: Outcome::default(),
    };
    let (mut started, mut held, mut now) = (0, 0, Duration::ZERO);
    while sim.done < requests {
        while held < limit(&pace) && started < requests {
            held += 1;
            started += 1;
            if let Some(p) = &mut pace {
                p.started(held);
            }
            sim.send(now, now);
        }
        let Some(a) = sim.queue.pop() else { break };
        now = a.at.0;
        if a.retry {
            sim.send(now, a.permit);
            continue;
        }
        if a.throttled {
            sim.out.throttles += 1;
            if sim.done * 3 >= requests {
                sim.out.late_throttles += 1;
            }
            if let Some(p) = &mut pace {
                p.throttled(t0 + now, t0 + a.permit);
            }
            // The SDK's backoff: 50–150 ms, spread by the attempt's number.
            sim.queue.push(Attempt {
                at: std::cmp::Reverse(now + ms(50 + (a.seq * 37) % 100)),
                retry: true,
                ..a
            });
            continue;
        }
        sim.at_store -= 1;
        held -= 1;
        sim.done += 1;
        if let Some(p) = &mut pace {
            p.completed(t0 + now, t0 + a.permit, 10_000);
        }
    }
    sim.out.elapsed = now;
    sim.out.last_limit = limit(&pace);
    sim.out
}

/// The time of the best of these fixed numbers.
fn best_fixed(store: Store, requests: usize, levels: &[usize]) -> Duration {
    levels
        .iter()
        .map(|&n| simulate(store, requests, None, n).elapsed)
        .min()
        .unwrap_or_default()
}

/// Against stores near and far, the adaptive limit is about as fast as the best fixed one: at
/// most 10% slower, plus the 3 round trips slow start takes from 32 to 256 (which a deploy of
/// 3,000 files at 100 ms, 12 round trips at 256, notices; a real run's listing, state and
/// start-up take longer than that).
#[test]
fn finds_the_level_of_far_and_near_stores() {
    let table: &[(&str, Store)] = &[
        (
            "100 ms, the store keeps up",
            Store {
                rtt_ms: 100,
                capacity: 20_000.0,
                throttle_above: None,
            },
        ),
        (
            "30 ms, the client's CPUs serve 3,000 requests/s",
            Store {
                rtt_ms: 30,
                capacity: 3_000.0,
                throttle_above: None,
            },
        ),
        (
            "1 ms, the client's CPUs serve 2,000 requests/s",
            Store {
                rtt_ms: 1,
                capacity: 2_000.0,
                throttle_above: None,
            },
        ),
    ];
    for (name, store) in table {
        let adaptive = simulate(*store, 3_000, Some(256), 0);
        let best = best_fixed(*store, 3_000, &[16, 32, 64, 128, 256]);
        let allowed = best.mul_f64(1.1) + ms(store.rtt_ms) * 3;
        assert!(
            adaptive.elapsed <= allowed,
            "{name}: {adaptive:?} against the best fixed {best:?}"
        );
        assert_eq!(adaptive.throttles, 0, "{name}");
    }
}

/// "Under a store that answers 503 whenever more than N requests are in flight, the deploy must
/// end with no more retries than a fixed setting of N would cause" (#27). A fixed N causes none;
/// no controller that starts above N can match that, so: finding the level costs a bounded
/// number of 503s at the start (not one per file, as the old fixed 64 does), and once it is
/// found, no more than one per re-probe of the throttled level.
#[test]
fn a_store_that_throttles_above_n_costs_a_bounded_number_of_retries() {
    for n in [4, 8, 24] {
        let store = Store {
            rtt_ms: 20,
            capacity: 50_000.0,
            throttle_above: Some(n),
        };
        for requests in [1_000, 4_000] {
            let adaptive = simulate(store, requests, Some(256), 0);
            let at_n = simulate(store, requests, None, n);
            let old_default = simulate(store, requests, None, 64);
            let what = format!("n {n}, {requests} requests: {adaptive:?}");
            assert_eq!(at_n.throttles, 0, "fixed {n}");
            assert!(
                adaptive.throttles * 10 < old_default.throttles,
                "{what}; fixed 64: {old_default:?}"
            );
            let reprobes = requests / (THROTTLED_WINDOWS as usize * n) + 1;
            assert!(adaptive.late_throttles <= reprobes, "{what}");
            assert!(
                adaptive.settled_most <= n + 1 && adaptive.settled_most >= n / 2,
                "{what}"
            );
            assert!(adaptive.last_limit <= n, "{what}");
            assert!(
                adaptive.elapsed.as_secs_f64() <= at_n.elapsed.as_secs_f64() * 1.25,
                "{what}; fixed {n}: {at_n:?}"
            );
        }
    }
}
