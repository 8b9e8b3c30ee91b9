//! How many S3 requests may be in flight: a controller that finds the level the network and the
//! store allow, and the gate ([`Gate`]) that the uploads and restores take their permits from.
//!
//! A fixed number cannot be right both near and far. Near (a few ms), 16 requests in flight
//! already keep the CPUs busy; at 100 ms, 64 cap a deploy at 640 requests/s, and a store that
//! throttles (S3 answers 503 SlowDown above 3,500 PUTs/s per prefix) wants fewer. So, unless
//! `MAX_CONCURRENCY` fixes the number, [`Pace`] moves it, between 1 and the ceiling:
//!
//! - **Slow start.** From [`INITIAL`], the limit doubles each window while the throughput
//!   grows with it. A doubling that does not pay off ends slow start at the level before it.
//! - **Probing.** Then the limit grows additively, by a step of 1/16 of the level it started
//!   from, and once it has grown by a quarter the probe is judged: kept when the throughput grew,
//!   else the limit goes back and holds for [`HOLD_WINDOWS`] windows before it probes again.
//! - **Throttling** (an attempt answered 503 or 429) cuts the limit to [`THROTTLED_KEEP`] of
//!   itself at once (once for the requests sent since the last cut), and the level that was
//!   throttled is not reached again for [`THROTTLED_WINDOWS`] windows.
//! - **Sharply rising latency** (a window's small requests take twice as long as at the level
//!   last kept, without the throughput to show for it) cuts the limit by a quarter.
//!
//! "The throughput grew" means: by at least a quarter as much as the limit did
//! ([`GAIN_SHARE`]). A pipe limited by round trips gains as much throughput as it adds requests
//! in flight (Little's law: throughput = requests in flight / latency); one limited elsewhere
//! (the CPUs, the bandwidth, the store) gains nothing. Requests per
//! second and bytes per second are both looked at, so that large parts count as much as small
//! files.
//!
//! A **window** is the time it takes `limit` requests to complete (at least [`MIN_WINDOW`]):
//! one round trip when the pipe is busy. After a cut, requests sent before it are not counted. Only windows in which the limit
//! held requests back count: when the pipe has fewer requests to make than the limit allows,
//! the throughput says nothing about the limit.
//!
//! [`Pace`] is pure (time is an input) and tested with tables; [`Gate`] wraps it around a
//! semaphore, and [`paced`] reports the throttled attempts of a client's requests to it.

use std::time::{Duration, Instant};

mod gate;

pub(crate) use gate::{Gate, paced};

/// The limit an adaptive run starts at. 32 is half the fixed default this pipe had before it
/// adapted (64, so a store that coped with that is not pushed harder at the start), already
/// enough to keep both cores of a CI runner busy on a near store (16 did, BENCHMARKS.md's
/// sweep), and two doublings from 128 and three from the default ceiling of 256: at 100 ms
/// a far bucket is at 256 after about 0.3 s.
pub(crate) const INITIAL: usize = 32;

/// The share of a limit's growth that the throughput must show for the growth to be kept. Half
/// (the midpoint between "round-trip bound" and "bound elsewhere") ended slow start at 128 for
/// a bucket 100 ms away on a loaded 2-core runner, where 256 still gave 27% more (bench L2:
/// 79% of the best fixed level); a quarter keeps such a doubling, and still stops where
/// doubling gains under 25% (near buckets: 64 → 128 gave 7%).
const GAIN_SHARE: f64 = 0.25;

/// The fewest completions a window waits for: fewer make too noisy a rate (one slow request in
/// four would halve it).
const MIN_WINDOW: usize = 8;

/// Requests with bodies up to this size are the ones whose latency is watched: their time is
/// round trips and the store's own work, which is what rises when requests queue. A large part's
/// time is its transfer, and grows with the bandwidth each connection gets, not with queueing.
const SMALL_BODY: u64 = 256 * 1024;

/// A window's small requests taking this many times as long as at the level last kept is a
/// sharp rise: queueing somewhere (the store, a proxy, the CPUs), or a store slowing down before
/// it throttles. Twice: a doubling of latency at the same throughput means twice the requests
/// waiting (Little's law), far above the noise of a window's mean.
const LATENCY_RISE: f64 = 2.0;

/// Windows to hold after a probe that did not pay off, before probing again. Probing costs load
/// on the store and on the CPUs for nothing when the level is right; 8 windows (about 8 round
/// trips when busy) keep that cost at a few percent while still following a store that changes.
const HOLD_WINDOWS: u32 = 8;

/// What a throttle leaves of the limit: half, TCP Reno's cut. The store said the level is too
/// high, not by how much; a start far above what it takes (32 against a store that takes 4)
/// must come down in few steps, because every step costs the 503s of the requests sent over
/// the store's level, and their retries: measured in the simulation of `tests.rs`, halving
/// cost 52 throttles where CUBIC's gentler 7/10 cost 108. What halving gives away below the
/// store's level is regained by the probes that follow, which stop short of the remembered
/// level ([`THROTTLED_WINDOWS`]).
const THROTTLED_KEEP: (usize, usize) = (1, 2);

/// Windows during which the limit stays below a level that was throttled. S3 answers 503
/// SlowDown while it scales a prefix up, which takes minutes; probing the same level again at
/// once would only collect more 503s. 64 windows (seconds at a far bucket, a few hundred
/// requests at a near one) bound the retries a store that throttles at a fixed level costs to
/// about one per 64 windows, and still let the pipe find out when the store has grown.
const THROTTLED_WINDOWS: u32 = 64;

/// The probe step is this fraction of the level a probe starts from: additive growth that
/// reaches +25% (where a probe is judged) in 4 windows at any level, so that a far bucket at 128
/// does not take 128 windows to try 256.
const STEP_DIVISOR: usize = 16;

/// The controller: the limit, and what it is based on. See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct Pace {
    limit: usize,
    ceiling: usize,
    slow_start: bool,
    window: Window,
    /// Slow start: the window before (at half the limit). Afterwards: the level last kept, that
    /// a probe is judged against; `None` until a window at the current level measures it.
    reference: Option<Sample>,
    /// The probe's step (fixed for a probe, so that the growth is additive).
    step: usize,
    /// Windows left to hold before probing again.
    hold: u32,
    /// A level the store throttled, and the windows left before it may be reached again.
    throttled: Option<(usize, u32)>,
    /// When the limit last went down. A request sent before was sent under the higher limit:
    /// that cut answered its throttling already, and the SDK retries it whatever the limit is
    /// now, so its throttled retries are no news.
    epoch: Instant,
}

/// What one window measured.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    limit: usize,
    /// Completed requests per second.
    rate: f64,
    /// Bytes of completed requests per second.
    byte_rate: f64,
    /// Mean latency of the window's small requests, when there were enough.
    latency: Option<Duration>,
}

impl Sample {
    /// The throughput grew, compared with `before`, by at least [`GAIN_SHARE`] of what the
    /// limit did.
    fn paid_off(&self, before: &Sample) -> bool {
        #[allow(clippy::cast_precision_loss)]
        let wanted = 1.0 + (self.limit as f64 / before.limit.max(1) as f64 - 1.0) * GAIN_SHARE;
        self.rate >= before.rate * wanted
            || (before.byte_rate > 0.0 && self.byte_rate >= before.byte_rate * wanted)
    }

    /// The small requests took [`LATENCY_RISE`] times as long as in `before`.
    fn latency_rose(&self, before: &Sample) -> bool {
        match (self.latency, before.latency) {
            (Some(now), Some(then)) => now.as_secs_f64() > then.as_secs_f64() * LATENCY_RISE,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Window {
    start: Instant,
    /// The requests that completed in this window, and their bytes.
    completed: u64,
    bytes: u64,
    small_latency: Duration,
    small: u32,
    /// The limit held requests back at some point.
    saturated: bool,
}

impl Window {
    fn new(start: Instant) -> Window {
        Window {
            start,
            completed: 0,
            bytes: 0,
            small_latency: Duration::ZERO,
            small: 0,
            saturated: false,
        }
    }
}

impl Pace {
    /// A controller that starts at [`INITIAL`] (or `ceiling`, when lower) at `now`.
    pub(crate) fn new(ceiling: usize, now: Instant) -> Pace {
        let ceiling = ceiling.max(1);
        Pace {
            limit: INITIAL.min(ceiling),
            ceiling,
            slow_start: true,
            window: Window::new(now),
            reference: None,
            step: 1,
            hold: 0,
            throttled: None,
            epoch: now,
        }
    }

    /// Requests that may be in flight now.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// A request was let through, and `in_flight` are now in flight.
    pub(crate) fn started(&mut self, in_flight: usize) {
        if in_flight >= self.limit {
            self.window.saturated = true;
        }
    }

    /// A request that started at `started` completed at `now` (successfully or not), with a body
    /// of `bytes`.
    pub(crate) fn completed(&mut self, now: Instant, started: Instant, bytes: u64) {
        if started < self.epoch {
            // Sent under a higher limit: says nothing about this one (and is still paying the
            // cut off).
            return;
        }
        let w = &mut self.window;
        w.completed += 1;
        w.bytes += bytes;
        if bytes <= SMALL_BODY {
            w.small += 1;
            w.small_latency += now.saturating_duration_since(started);
        }
        if w.completed >= self.limit.max(MIN_WINDOW) as u64 {
            self.close(now);
        }
    }

    /// An attempt of a request sent at `request_started` was throttled (503 SlowDown, 429).
    pub(crate) fn throttled(&mut self, now: Instant, request_started: Instant) {
        if request_started < self.epoch {
            return;
        }
        self.throttled = Some((self.limit, THROTTLED_WINDOWS));
        self.slow_start = false;
        self.reference = None;
        // The window after the cut measures the new level before the next probe.
        self.hold = 1;
        self.set(now, self.limit * THROTTLED_KEEP.0 / THROTTLED_KEEP.1);
    }

    /// The highest the limit may go now.
    fn cap(&self) -> usize {
        match self.throttled {
            Some((level, _)) => self.ceiling.min(level.saturating_sub(1)).max(1),
            None => self.ceiling,
        }
    }

    fn set(&mut self, now: Instant, limit: usize) {
        let limit = limit.clamp(1, self.ceiling);
        if limit < self.limit {
            self.epoch = now;
        }
        self.limit = limit;
        self.window = Window::new(now);
    }

    /// The window is complete: judge it.
    fn close(&mut self, now: Instant) {
        let w = std::mem::replace(&mut self.window, Window::new(now));
        if let Some((level, left)) = self.throttled {
            self.throttled = (left > 1).then(|| (level, left - 1));
        }
        if !w.saturated {
            // Fewer requests to make than the limit allows: nothing to learn about the limit.
            return;
        }
        let secs = now
            .saturating_duration_since(w.start)
            .as_secs_f64()
            .max(1e-6);
        #[allow(clippy::cast_precision_loss)]
        let sample = Sample {
            limit: self.limit,
            rate: w.completed as f64 / secs,
            byte_rate: w.bytes as f64 / secs,
            latency: (w.small as usize >= MIN_WINDOW.min(self.limit))
                .then(|| w.small_latency / w.small),
        };
        if self.slow_start {
            self.slow_start_window(now, sample);
        } else {
            self.probe_window(now, sample);
        }
    }

    fn slow_start_window(&mut self, now: Instant, s: Sample) {
        let cap = self.cap();
        match self.reference {
            Some(before) if !s.paid_off(&before) => {
                // The doubling did not pay off: the level before it was as good.
                self.slow_start = false;
                self.reference = None;
                self.hold = HOLD_WINDOWS;
                self.set(now, before.limit);
            }
            _ if self.limit >= cap => {
                self.slow_start = false;
                self.reference = Some(s);
            }
            _ => {
                self.reference = Some(s);
                self.set(now, (self.limit * 2).min(cap));
            }
        }
    }

    fn probe_window(&mut self, now: Instant, s: Sample) {
        let cap = self.cap();
        let Some(kept) = self.reference else {
            // The first window at this level: it is what the next probe is judged against.
            self.reference = Some(s);
            self.step = (self.limit / STEP_DIVISOR).max(1);
            if self.hold == 0 && self.limit < cap {
                self.set(now, (self.limit + self.step).min(cap));
            }
            return;
        };
        if s.latency_rose(&kept) && !s.paid_off(&kept) {
            // Queueing: back off, and let the level settle before probing again.
            self.reference = None;
            self.hold = HOLD_WINDOWS;
            self.set(now, self.limit - self.limit / 4);
            return;
        }
        if self.hold > 0 {
            self.hold -= 1;
            return;
        }
        if self.limit > cap {
            // A throttled level is remembered: stay below it.
            self.reference = None;
            self.set(now, cap);
            return;
        }
        let judged = self.limit >= kept.limit + (kept.limit / 4).max(1) || self.limit >= cap;
        if !judged {
            self.set(now, (self.limit + self.step).min(cap));
        } else if self.limit == kept.limit {
            // At the cap already, nothing to probe: keep the measure fresh.
            self.reference = Some(s);
        } else if s.paid_off(&kept) {
            self.reference = Some(s);
            self.step = (self.limit / STEP_DIVISOR).max(1);
            if self.limit < cap {
                self.set(now, (self.limit + self.step).min(cap));
            }
        } else {
            self.reference = None;
            self.hold = HOLD_WINDOWS;
            self.set(now, kept.limit);
        }
    }
}

#[cfg(test)]
mod tests;
