//! Reconnect policies and failover, as in Qpid Proton's Python container.

use core::fmt;
use std::time::Duration;

use super::url::Url;

/// Produces the delays between reconnect attempts (Proton's `reconnect=` object protocol).
///
/// * [`reset`](ReconnectPolicy::reset) is called once before a reconnect process begins: before
///   the first connection attempt, and again after each successful open once the connection is
///   lost.
/// * [`next`](ReconnectPolicy::next) returns the next delay. [`Failover`] calls it once per
///   *round*, i.e. once per pass over the whole URL list, and waits that long before each
///   attempt of the round (see [`Failover`] for the exact rule).
///
/// ```
/// use amqp_engine::messaging::{Reconnect, ReconnectPolicy};
/// use std::time::Duration;
///
/// /// The seeds' `ExampleReconnect`: 0.1 s, then doubling up to 10 s.
/// struct ExampleReconnect { delay: Duration }
///
/// impl ReconnectPolicy for ExampleReconnect {
///     fn reset(&mut self) { self.delay = Duration::ZERO; }
///     fn next(&mut self) -> Duration {
///         self.delay = if self.delay.is_zero() {
///             Duration::from_millis(100)
///         } else {
///             (self.delay * 2).min(Duration::from_secs(10))
///         };
///         self.delay
///     }
/// }
///
/// let reconnect = Reconnect::custom(ExampleReconnect { delay: Duration::ZERO });
/// assert!(reconnect.is_enabled());
/// ```
pub trait ReconnectPolicy: Send {
    /// Starts the delay sequence over; called once before each reconnect process begins.
    fn reset(&mut self);
    /// The next delay to wait before (re)connecting.
    fn next(&mut self) -> Duration;
}

impl<P: ReconnectPolicy + ?Sized> ReconnectPolicy for Box<P> {
    fn reset(&mut self) {
        (**self).reset();
    }

    fn next(&mut self) -> Duration {
        (**self).next()
    }
}

/// Proton's default reconnect policy: an exponential backoff.
///
/// Matches Python Proton's `Backoff`/`delay_iter(initial=0.1, factor=2.0, max_delay=10.0)`
/// (`proton/_reactor.py`): the first delay is always 0, the second is `initial`, and each
/// further delay is the previous one times `factor`, capped at `max`, forever. With the
/// defaults: 0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10, 10, … seconds. As in Proton, `initial`
/// itself is not capped by `max`. [`reset`](ReconnectPolicy::reset) starts over at 0.
///
/// Delays are computed in `f64` seconds, like Proton's, and rounded to the nearest nanosecond.
///
/// ```
/// use amqp_engine::messaging::{Backoff, ReconnectPolicy};
/// use std::time::Duration;
///
/// let mut b = Backoff::default();
/// let ms: Vec<u128> = (0..10).map(|_| b.next().as_millis()).collect();
/// assert_eq!(ms, [0, 100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
///
/// let mut slow = Backoff::new()
///     .with_initial(Duration::from_secs(1))
///     .with_factor(3.0)
///     .with_max(Duration::from_secs(20));
/// let s: Vec<u64> = (0..6).map(|_| slow.next().as_secs()).collect();
/// assert_eq!(s, [0, 1, 3, 9, 20, 20]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: f64,
    /// Whether the leading 0 has been handed out since the last reset.
    started: bool,
    /// The delay the next call returns once started.
    upcoming: Duration,
}

impl Backoff {
    /// Proton's second delay (the first non-zero one): 0.1 s.
    pub const DEFAULT_INITIAL: Duration = Duration::from_millis(100);
    /// Proton's cap on delays: 10 s.
    pub const DEFAULT_MAX: Duration = Duration::from_secs(10);
    /// Proton's growth factor: 2.
    pub const DEFAULT_FACTOR: f64 = 2.0;

    /// Proton's default backoff (same as [`Backoff::default`]).
    pub fn new() -> Backoff {
        Backoff {
            initial: Self::DEFAULT_INITIAL,
            max: Self::DEFAULT_MAX,
            factor: Self::DEFAULT_FACTOR,
            started: false,
            upcoming: Self::DEFAULT_INITIAL,
        }
    }

    /// Sets the first non-zero delay, and starts over.
    #[must_use]
    pub fn with_initial(mut self, initial: Duration) -> Backoff {
        self.initial = initial;
        self.restart();
        self
    }

    /// Sets the cap on delays, and starts over.
    #[must_use]
    pub fn with_max(mut self, max: Duration) -> Backoff {
        self.max = max;
        self.restart();
        self
    }

    /// Sets the growth factor, and starts over. A factor that is NaN, infinite or negative is
    /// replaced by 1.0 (constant delays) so that delays stay meaningful.
    #[must_use]
    pub fn with_factor(mut self, factor: f64) -> Backoff {
        self.factor = if factor.is_finite() && factor >= 0.0 {
            factor
        } else {
            1.0
        };
        self.restart();
        self
    }

    /// The first non-zero delay.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The cap on delays.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The growth factor.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    fn restart(&mut self) {
        self.started = false;
        self.upcoming = self.initial;
    }

    /// `min(max, d * factor)` without overflow or panics.
    fn grow(&self, d: Duration) -> Duration {
        let secs = d.as_secs_f64() * self.factor;
        if secs.is_nan() || secs <= 0.0 {
            return Duration::ZERO;
        }
        if secs >= self.max.as_secs_f64() {
            return self.max;
        }
        let nanos = (secs * 1e9).round();
        let grown = if nanos < u64::MAX as f64 {
            Duration::from_nanos(nanos as u64)
        } else {
            Duration::try_from_secs_f64(secs).unwrap_or(self.max)
        };
        grown.min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

impl ReconnectPolicy for Backoff {
    fn reset(&mut self) {
        self.restart();
    }

    fn next(&mut self) -> Duration {
        if !self.started {
            self.started = true;
            self.upcoming = self.initial;
            return Duration::ZERO;
        }
        let delay = self.upcoming;
        self.upcoming = self.grow(delay);
        delay
    }
}

/// The `reconnect` connect option.
///
/// Proton: `reconnect=None` (the default) is a fresh [`Backoff`]; `reconnect=False` disables
/// reconnect; any object with `reset()`/`next()` is a custom policy.
#[derive(Default)]
pub enum Reconnect {
    /// No reconnect: one attempt, to the first URL, and never again after a disconnect
    /// (Proton's `reconnect=False`).
    Disabled,
    /// Proton's default: [`Backoff::default()`].
    #[default]
    Default,
    /// A policy of the user's.
    Custom(Box<dyn ReconnectPolicy>),
}

impl Reconnect {
    /// Wraps a policy of the user's.
    pub fn custom(policy: impl ReconnectPolicy + 'static) -> Reconnect {
        Reconnect::Custom(Box::new(policy))
    }

    /// Whether reconnect is on (anything but [`Reconnect::Disabled`]).
    pub fn is_enabled(&self) -> bool {
        !matches!(self, Reconnect::Disabled)
    }

    /// The policy to run: `None` when disabled, a fresh [`Backoff`] for the default.
    pub fn into_policy(self) -> Option<Box<dyn ReconnectPolicy>> {
        match self {
            Reconnect::Disabled => None,
            Reconnect::Default => Some(Box::new(Backoff::default())),
            Reconnect::Custom(policy) => Some(policy),
        }
    }
}

impl From<bool> for Reconnect {
    /// `false` is [`Reconnect::Disabled`], `true` is [`Reconnect::Default`] (as Proton's
    /// `reconnect=False` / `reconnect=None`).
    fn from(enabled: bool) -> Reconnect {
        if enabled {
            Reconnect::Default
        } else {
            Reconnect::Disabled
        }
    }
}

impl<P: ReconnectPolicy + 'static> From<P> for Reconnect {
    /// A policy: [`Backoff`] with other numbers, or the user's own.
    fn from(policy: P) -> Reconnect {
        Reconnect::custom(policy)
    }
}

impl fmt::Debug for Reconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reconnect::Disabled => f.write_str("Disabled"),
            Reconnect::Default => f.write_str("Default"),
            Reconnect::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Optional limits on one reconnect process; both off by default, so reconnect goes on forever
/// as in Proton. A reconnect process starts with the first connection attempt, and again each
/// time an opened connection is lost (after [`Failover::reset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReconnectLimits {
    /// Give up after this many connection attempts in one process (counting the first).
    pub max_attempts: Option<u32>,
    /// Give up when the next attempt would start later than this after the process began.
    /// Enforced by [`Failover::next_attempt_within`], which is told the elapsed time.
    pub max_duration: Option<Duration>,
}

impl ReconnectLimits {
    /// No limits (the default).
    pub fn none() -> ReconnectLimits {
        ReconnectLimits::default()
    }

    /// Sets the maximum number of attempts per reconnect process.
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> ReconnectLimits {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// Sets the maximum time a reconnect process may go on.
    #[must_use]
    pub fn with_max_duration(mut self, max_duration: Duration) -> ReconnectLimits {
        self.max_duration = Some(max_duration);
        self
    }
}

/// The connection-attempt sequence over a failover URL list, as Proton's connector runs it.
///
/// This is the sequence of current Python Proton (`_Connector` in `proton/_reactor.py`, since
/// the `delay_iter` rewrite): `((delay, url) for delay in policy for url in urls)`. That is:
///
/// * A reconnect process resets the policy, then goes in *rounds*. At the start of each round
///   the policy's [`next`](ReconnectPolicy::next) is called once; every attempt in that round,
///   one per URL in list order, waits that delay before connecting. With the default
///   [`Backoff`] and URLs `[a, b]`: `a` after 0 s, `b` after 0 s, `a` after 0.1 s, `b` after
///   0.1 s, `a` after 0.2 s, … — "each delay tries every URL".
/// * The very first attempt of a new `Failover` (Proton's initial connect on local open) is
///   immediate: its delay is forced to 0 whatever the policy says. Later attempts of that first
///   round do use the policy's first delay.
/// * After a successful open the driver calls [`reset`](Failover::reset). When that connection
///   is lost, a new process starts from the first URL with the policy's first delay (0 s for
///   [`Backoff`], so an immediate reconnect), exactly as Proton rebuilds its sequence in
///   `on_connection_remote_open`.
/// * [`Reconnect::Disabled`] makes exactly one attempt, to the first URL, and then none, not
///   even after a reset (Proton's `reconnect=False` gives up on the first disconnect and never
///   tries the other URLs).
/// * [`ReconnectLimits`] (not in Proton, off by default) end a process early; `None` from
///   [`next_attempt`](Failover::next_attempt) means "give up".
///
/// (Older Proton releases advanced the URL and the delay together on every attempt; the rule
/// above is the one current Proton, the seeds and the design document describe.)
///
/// ```
/// use amqp_engine::messaging::{Failover, Reconnect, Url};
/// use std::time::Duration;
///
/// let urls = vec![Url::parse("amqp://a")?, Url::parse("amqp://b")?];
/// let mut f = Failover::new(urls, Reconnect::Default);
/// let ms = |f: &mut Failover| f.next_attempt().map(|(i, d)| (i, d.as_millis()));
/// assert_eq!(ms(&mut f), Some((0, 0)));
/// assert_eq!(ms(&mut f), Some((1, 0)));
/// assert_eq!(ms(&mut f), Some((0, 100)));
/// assert_eq!(ms(&mut f), Some((1, 100)));
/// assert_eq!(ms(&mut f), Some((0, 200)));
/// f.reset(); // the connection to `a` opened; later it is lost:
/// assert_eq!(ms(&mut f), Some((0, 0)));
/// assert_eq!(f.url(0).map(Url::host), Some("a"));
/// # Ok::<(), amqp_engine::messaging::UrlError>(())
/// ```
///
/// A [`ReconnectPolicy`] produces the delays between connection attempts; [`Backoff`] is
/// Proton's default (0 s, 0.1 s, 0.2 s, 0.4 s, … doubling up to 10 s, forever). [`Reconnect`]
/// is the `reconnect=` connect option, and [`Failover`] combines a policy with the list of URLs
/// into the exact sequence of `(url, delay)` attempts that Proton's connector makes.
///
/// Time is only ever a [`Duration`]: nothing here reads a clock.
pub struct Failover {
    urls: Vec<Url>,
    /// `None` when reconnect is disabled.
    policy: Option<Box<dyn ReconnectPolicy>>,
    limits: ReconnectLimits,
    /// No attempt has been made since construction: the next one is immediate.
    first_ever: bool,
    /// The policy has been reset for the current process.
    started: bool,
    /// Index of the next URL; 0 starts a new round.
    pos: usize,
    /// The delay of the current round.
    round_delay: Duration,
    /// `round_delay` was asked of the policy but no attempt has waited it yet (the initial
    /// attempt is immediate): the next round uses it instead of asking again.
    unused_delay: bool,
    /// Attempts made in the current process.
    attempts: u32,
    /// The current process gave up (duration limit hit).
    gave_up: bool,
}

impl Failover {
    /// A failover sequence over `urls` (in order) driven by `reconnect`.
    pub fn new(urls: Vec<Url>, reconnect: Reconnect) -> Failover {
        Failover {
            urls,
            policy: reconnect.into_policy(),
            limits: ReconnectLimits::default(),
            first_ever: true,
            started: false,
            pos: 0,
            round_delay: Duration::ZERO,
            unused_delay: false,
            attempts: 0,
            gave_up: false,
        }
    }

    /// Adds limits on each reconnect process.
    #[must_use]
    pub fn with_limits(mut self, limits: ReconnectLimits) -> Failover {
        self.limits = limits;
        self
    }

    /// The next attempt: the index of the URL to connect to and how long to wait first, or
    /// `None` to give up (no URLs, reconnect disabled after its one attempt, or
    /// [`ReconnectLimits::max_attempts`] reached). Ignores
    /// [`ReconnectLimits::max_duration`]; see [`next_attempt_within`](Failover::next_attempt_within).
    pub fn next_attempt(&mut self) -> Option<(usize, Duration)> {
        if self.urls.is_empty() || self.gave_up {
            return None;
        }
        if self
            .limits
            .max_attempts
            .is_some_and(|max| self.attempts >= max)
        {
            return None;
        }
        let first_ever = core::mem::replace(&mut self.first_ever, false);
        let Some(policy) = self.policy.as_mut() else {
            // Disabled: the initial attempt only.
            if first_ever {
                self.attempts += 1;
                return Some((0, Duration::ZERO));
            }
            return None;
        };
        if !self.started {
            policy.reset();
            self.started = true;
            self.pos = 0;
        }
        if self.pos == 0 && !core::mem::take(&mut self.unused_delay) {
            self.round_delay = policy.next();
        }
        let index = self.pos;
        self.pos = (self.pos + 1) % self.urls.len();
        self.attempts = self.attempts.saturating_add(1);
        if !first_ever {
            return Some((index, self.round_delay));
        }
        // The initial attempt is immediate. A policy whose first delay is not zero keeps that
        // delay for the next attempt: every delay `next()` gives is waited once.
        self.unused_delay = self.pos == 0 && !self.round_delay.is_zero();
        Some((index, Duration::ZERO))
    }

    /// Like [`next_attempt`](Failover::next_attempt), and also enforces
    /// [`ReconnectLimits::max_duration`]: `elapsed` is the time since the current reconnect
    /// process began (measured by the caller's clock). Gives up, until the next
    /// [`reset`](Failover::reset), when the attempt would start after the limit.
    pub fn next_attempt_within(&mut self, elapsed: Duration) -> Option<(usize, Duration)> {
        if let Some(max) = self.limits.max_duration {
            if elapsed > max {
                self.gave_up = true;
                return None;
            }
            let (index, delay) = self.next_attempt()?;
            if elapsed.saturating_add(delay) > max {
                self.gave_up = true;
                return None;
            }
            Some((index, delay))
        } else {
            self.next_attempt()
        }
    }

    /// Call after a successful open: the next attempt (once the connection is lost) starts a
    /// new reconnect process from the first URL, and the policy is reset before it.
    pub fn reset(&mut self) {
        self.started = false;
        self.pos = 0;
        self.round_delay = Duration::ZERO;
        self.unused_delay = false;
        self.attempts = 0;
        self.gave_up = false;
    }

    /// The URLs, in failover order.
    pub fn urls(&self) -> &[Url] {
        &self.urls
    }

    /// The URL at `index` (as returned by [`next_attempt`](Failover::next_attempt)).
    pub fn url(&self, index: usize) -> Option<&Url> {
        self.urls.get(index)
    }

    /// Attempts made in the current reconnect process.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether reconnect is enabled.
    pub fn is_enabled(&self) -> bool {
        self.policy.is_some()
    }

    /// The limits in force.
    pub fn limits(&self) -> ReconnectLimits {
        self.limits
    }
}

impl fmt::Debug for Failover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failover")
            .field("urls", &self.urls)
            .field("enabled", &self.policy.is_some())
            .field("limits", &self.limits)
            .field("attempts", &self.attempts)
            .field("next_url", &self.pos)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn urls(n: usize) -> Vec<Url> {
        (0..n)
            .map(|i| Url::parse(&format!("amqp://host{i}")).unwrap())
            .collect()
    }

    fn take(f: &mut Failover, n: usize) -> Vec<(usize, u128)> {
        (0..n)
            .map(|_| {
                let (i, d) = f.next_attempt().expect("attempt");
                (i, d.as_millis())
            })
            .collect()
    }

    #[test]
    fn backoff_exact_sequence() {
        let mut b = Backoff::default();
        let got: Vec<Duration> = (0..12).map(|_| b.next()).collect();
        let want = [
            0, 100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000, 10_000,
        ]
        .map(ms);
        assert_eq!(got, want);
    }

    #[test]
    fn backoff_reset_starts_over() {
        let mut b = Backoff::default();
        for _ in 0..5 {
            b.next();
        }
        b.reset();
        assert_eq!([b.next(), b.next(), b.next()], [ms(0), ms(100), ms(200)]);
    }

    #[test]
    fn backoff_configurable() {
        let mut b = Backoff::new()
            .with_initial(ms(50))
            .with_factor(1.5)
            .with_max(ms(200));
        let got: Vec<Duration> = (0..7).map(|_| b.next()).collect();
        let us = Duration::from_micros;
        assert_eq!(
            got,
            [
                ms(0),
                ms(50),
                ms(75),
                us(112_500),
                us(168_750),
                ms(200),
                ms(200)
            ]
        );
        assert_eq!((b.initial(), b.max(), b.factor()), (ms(50), ms(200), 1.5));
        // As in Proton, the initial delay is not capped by max.
        let mut b = Backoff::new().with_initial(ms(500)).with_max(ms(100));
        assert_eq!([b.next(), b.next(), b.next()], [ms(0), ms(500), ms(100)]);
    }

    #[test]
    fn backoff_odd_parameters_never_panic() {
        for factor in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1e308, f64::MIN_POSITIVE] {
            for (initial, max) in [
                (Duration::MAX, Duration::MAX),
                (Duration::ZERO, Duration::MAX),
                (ms(1), Duration::ZERO),
                (Duration::from_secs(u64::MAX / 2), Duration::MAX),
            ] {
                let mut b = Backoff::new()
                    .with_initial(initial)
                    .with_max(max)
                    .with_factor(factor);
                for _ in 0..100 {
                    let d = b.next();
                    assert!(d <= initial.max(max));
                }
            }
        }
        let b = Backoff::new().with_factor(f64::NAN);
        assert_eq!(b.factor(), 1.0);
        let mut z = Backoff::new().with_factor(0.0);
        assert_eq!([z.next(), z.next(), z.next()], [ms(0), ms(100), ms(0)]);
    }

    #[test]
    fn reconnect_option() {
        assert!(matches!(Reconnect::default(), Reconnect::Default));
        assert!(matches!(Reconnect::from(false), Reconnect::Disabled));
        assert!(matches!(Reconnect::from(true), Reconnect::Default));
        assert!(!Reconnect::Disabled.is_enabled());
        assert!(Reconnect::from(Backoff::default()).is_enabled());
        assert!(Reconnect::Disabled.into_policy().is_none());
        let mut p = Reconnect::Default.into_policy().unwrap();
        assert_eq!([p.next(), p.next()], [ms(0), ms(100)]);
        assert_eq!(
            format!("{:?}", Reconnect::custom(Backoff::new())),
            "Custom(..)"
        );
        assert_eq!(format!("{:?}", Reconnect::Disabled), "Disabled");
    }

    #[test]
    fn failover_single_url() {
        let mut f = Failover::new(urls(1), Reconnect::Default);
        assert_eq!(
            take(&mut f, 10),
            [
                (0, 0),
                (0, 100),
                (0, 200),
                (0, 400),
                (0, 800),
                (0, 1600),
                (0, 3200),
                (0, 6400),
                (0, 10_000),
                (0, 10_000)
            ]
        );
    }

    #[test]
    fn failover_two_urls() {
        let mut f = Failover::new(urls(2), Reconnect::Default);
        assert_eq!(
            take(&mut f, 8),
            [
                (0, 0),
                (1, 0),
                (0, 100),
                (1, 100),
                (0, 200),
                (1, 200),
                (0, 400),
                (1, 400)
            ]
        );
        assert_eq!(f.attempts(), 8);
    }

    #[test]
    fn failover_three_urls() {
        let mut f = Failover::new(urls(3), Reconnect::Default);
        assert_eq!(
            take(&mut f, 9),
            [
                (0, 0),
                (1, 0),
                (2, 0),
                (0, 100),
                (1, 100),
                (2, 100),
                (0, 200),
                (1, 200),
                (2, 200)
            ]
        );
        assert_eq!(f.url(2).unwrap().host(), "host2");
        assert_eq!(f.urls().len(), 3);
        assert!(f.url(3).is_none());
    }

    #[test]
    fn failover_reset_after_open() {
        let mut f = Failover::new(urls(3), Reconnect::Default);
        assert_eq!(
            take(&mut f, 5),
            [(0, 0), (1, 0), (2, 0), (0, 100), (1, 100)]
        );
        f.reset(); // opened on host1, then lost
        assert_eq!(f.attempts(), 0);
        assert_eq!(take(&mut f, 4), [(0, 0), (1, 0), (2, 0), (0, 100)]);
    }

    #[derive(Default)]
    struct Log {
        calls: Vec<&'static str>,
    }

    /// The seeds' ExampleReconnect, recording calls.
    struct Recording {
        delay: Duration,
        log: Arc<Mutex<Log>>,
    }

    impl ReconnectPolicy for Recording {
        fn reset(&mut self) {
            self.log.lock().unwrap().calls.push("reset");
            self.delay = Duration::ZERO;
        }

        fn next(&mut self) -> Duration {
            self.log.lock().unwrap().calls.push("next");
            self.delay = if self.delay.is_zero() {
                ms(100)
            } else {
                (self.delay * 2).min(Duration::from_secs(10))
            };
            self.delay
        }
    }

    #[test]
    fn custom_policy_called_as_documented() {
        let log = Arc::new(Mutex::new(Log::default()));
        let policy = Recording {
            delay: Duration::ZERO,
            log: Arc::clone(&log),
        };
        let mut f = Failover::new(urls(2), Reconnect::custom(policy));
        assert!(
            log.lock().unwrap().calls.is_empty(),
            "nothing before the first attempt"
        );
        // First attempt immediate although the policy's first delay is 0.1 s; the rest of the
        // round uses it.
        assert_eq!(
            take(&mut f, 6),
            [(0, 0), (1, 100), (0, 200), (1, 200), (0, 400), (1, 400)]
        );
        assert_eq!(log.lock().unwrap().calls, ["reset", "next", "next", "next"]);
        log.lock().unwrap().calls.clear();
        f.reset();
        assert!(
            log.lock().unwrap().calls.is_empty(),
            "reset is lazy, as in Proton"
        );
        assert_eq!(take(&mut f, 3), [(0, 100), (1, 100), (0, 200)]);
        assert_eq!(log.lock().unwrap().calls, ["reset", "next", "next"]);
    }

    #[test]
    fn custom_policy_first_delay_is_waited_with_one_url() {
        let log = Arc::new(Mutex::new(Log::default()));
        let policy = Recording {
            delay: Duration::ZERO,
            log: Arc::clone(&log),
        };
        let mut f = Failover::new(urls(1), Reconnect::custom(policy));
        assert_eq!(take(&mut f, 4), [(0, 0), (0, 100), (0, 200), (0, 400)]);
        assert_eq!(log.lock().unwrap().calls, ["reset", "next", "next", "next"]);
    }

    #[test]
    fn disabled_makes_one_attempt() {
        let mut f = Failover::new(urls(3), Reconnect::Disabled);
        assert!(!f.is_enabled());
        assert_eq!(f.next_attempt(), Some((0, Duration::ZERO)));
        assert_eq!(f.next_attempt(), None);
        f.reset();
        assert_eq!(f.next_attempt(), None);
    }

    #[test]
    fn empty_url_list_gives_up() {
        let mut f = Failover::new(Vec::new(), Reconnect::Default);
        assert_eq!(f.next_attempt(), None);
        assert_eq!(f.next_attempt_within(Duration::ZERO), None);
    }

    #[test]
    fn max_attempts_limit() {
        let limits = ReconnectLimits::none().with_max_attempts(3);
        let mut f = Failover::new(urls(2), Reconnect::Default).with_limits(limits);
        assert_eq!(f.limits(), limits);
        assert_eq!(take(&mut f, 3), [(0, 0), (1, 0), (0, 100)]);
        assert_eq!(f.next_attempt(), None);
        assert_eq!(f.next_attempt(), None);
        f.reset();
        assert_eq!(take(&mut f, 3), [(0, 0), (1, 0), (0, 100)]);
        assert_eq!(f.next_attempt(), None);
        let mut zero = Failover::new(urls(1), Reconnect::Default)
            .with_limits(ReconnectLimits::none().with_max_attempts(0));
        assert_eq!(zero.next_attempt(), None);
    }

    #[test]
    fn max_duration_limit() {
        let limits = ReconnectLimits::none().with_max_duration(Duration::from_secs(1));
        let mut f = Failover::new(urls(1), Reconnect::Default).with_limits(limits);
        assert_eq!(f.next_attempt_within(ms(0)), Some((0, ms(0))));
        assert_eq!(f.next_attempt_within(ms(10)), Some((0, ms(100))));
        assert_eq!(f.next_attempt_within(ms(700)), Some((0, ms(200))));
        // 950 + 400 > 1000: give up, and stay given up.
        assert_eq!(f.next_attempt_within(ms(950)), None);
        assert_eq!(f.next_attempt_within(ms(0)), None);
        assert_eq!(f.next_attempt(), None);
        f.reset();
        assert_eq!(f.next_attempt_within(ms(0)), Some((0, ms(0))));
        assert_eq!(f.next_attempt_within(ms(1001)), None);
        // Without a duration limit, elapsed time does not matter.
        let mut g = Failover::new(urls(1), Reconnect::Default);
        assert!(g.next_attempt_within(Duration::MAX).is_some());
    }

    #[test]
    fn debug_output() {
        let f = Failover::new(urls(1), Reconnect::Default);
        let s = format!("{f:?}");
        assert!(s.contains("Failover") && s.contains("host0"), "{s}");
    }
}
