//! Counting over time with constant memory per key. Times are milliseconds passed in by the
//! caller, so the same code runs at the edge and in the control plane and is tested without a clock.

/// Events in the last `window`: a fixed current bucket plus the previous one weighted by how
/// much of it still overlaps the sliding window (the usual sliding-window-counter estimate).
#[derive(Debug, Clone, Default)]
pub struct SlidingCount {
    bucket_start: u64,
    current: u64,
    previous: u64,
}

impl SlidingCount {
    pub fn add(&mut self, now_ms: u64, window_ms: u64, amount: u64) -> u64 {
        self.roll(now_ms, window_ms);
        self.current = self.current.saturating_add(amount);
        self.current_estimate(now_ms, window_ms)
    }

    pub fn estimate(&self, now_ms: u64, window_ms: u64) -> u64 {
        let mut rolled = self.clone();
        rolled.roll(now_ms, window_ms);
        rolled.current_estimate(now_ms, window_ms)
    }

    fn current_estimate(&self, now_ms: u64, window_ms: u64) -> u64 {
        let window_ms = window_ms.max(1);
        let into = now_ms.saturating_sub(self.bucket_start).min(window_ms);
        let previous_share =
            (u128::from(self.previous) * u128::from(window_ms - into)) / u128::from(window_ms);
        self.current
            .saturating_add(u64::try_from(previous_share).unwrap_or(u64::MAX))
    }

    fn roll(&mut self, now_ms: u64, window_ms: u64) {
        let window_ms = window_ms.max(1);
        let elapsed = now_ms.saturating_sub(self.bucket_start);
        if elapsed < window_ms {
            return;
        }
        self.previous = if elapsed < 2 * window_ms {
            self.current
        } else {
            0
        };
        self.current = 0;
        self.bucket_start = now_ms - elapsed % window_ms;
    }

    /// Nothing counted in the last two windows: the key can be forgotten.
    pub fn idle(&self, now_ms: u64, window_ms: u64) -> bool {
        now_ms.saturating_sub(self.bucket_start) >= 2 * window_ms.max(1)
    }
}

/// Distinct values (hashed) seen in the current and the previous window. Each generation keeps
/// at most `cap` hashes: a detector only needs to know whether `threshold` was reached, so
/// memory per key stays bounded whatever an attacker sends.
#[derive(Debug, Clone, Default)]
pub struct DistinctWindow {
    bucket_start: u64,
    current: Vec<u64>,
    previous: Vec<u64>,
}

impl DistinctWindow {
    /// Adds `value` and returns how many distinct values the two generations hold (at most 2·cap).
    pub fn add(&mut self, now_ms: u64, window_ms: u64, value: u64, cap: usize) -> u64 {
        let window_ms = window_ms.max(1);
        let elapsed = now_ms.saturating_sub(self.bucket_start);
        if elapsed >= window_ms {
            self.previous = if elapsed < 2 * window_ms {
                std::mem::take(&mut self.current)
            } else {
                Vec::new()
            };
            self.current.clear();
            self.bucket_start = now_ms - elapsed % window_ms;
        }
        if !self.current.contains(&value) && self.current.len() < cap {
            self.current.push(value);
        }
        let carried = self
            .previous
            .iter()
            .filter(|v| !self.current.contains(v))
            .count();
        (self.current.len() + carried) as u64
    }

    pub fn idle(&self, now_ms: u64, window_ms: u64) -> bool {
        now_ms.saturating_sub(self.bucket_start) >= 2 * window_ms.max(1)
    }
}

/// A token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    pub fn full(burst: u32, now_ms: u64) -> Self {
        TokenBucket {
            tokens: f64::from(burst),
            last_ms: now_ms,
        }
    }

    /// Takes one token. `Err(wait_ms)` tells how long until the next token.
    pub fn take(&mut self, now_ms: u64, per_second: f64, burst: u32) -> Result<(), u64> {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * per_second).min(f64::from(burst));
        self.last_ms = now_ms.max(self.last_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        let wait = if per_second > 0.0 {
            (missing / per_second * 1000.0).ceil()
        } else {
            f64::from(u32::MAX)
        };
        Err(wait as u64)
    }

    pub fn idle(&self, now_ms: u64, per_second: f64, burst: u32) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens + elapsed * per_second >= f64::from(burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_count_forgets_old_events_gradually() {
        let mut c = SlidingCount::default();
        let w = 10_000;
        for i in 0..10 {
            c.add(1_000 + i, w, 1);
        }
        assert_eq!(c.estimate(1_010, w), 10);
        // Half of the previous window still overlaps: about half of it counts.
        let half = c.estimate(15_000, w);
        assert!((4..=6).contains(&half), "{half}");
        assert_eq!(c.add(40_000, w, 1), 1);
        assert!(c.idle(80_000, w));
    }

    #[test]
    fn distinct_window_counts_each_value_once_and_is_capped() {
        let mut d = DistinctWindow::default();
        for v in [1, 2, 2, 3, 1] {
            d.add(0, 1_000, v, 100);
        }
        assert_eq!(d.add(10, 1_000, 3, 100), 3);
        // Previous generation still counts, without double counting.
        assert_eq!(d.add(1_500, 1_000, 1, 100), 3);
        assert_eq!(d.add(5_000, 1_000, 9, 100), 1);
        let mut capped = DistinctWindow::default();
        for v in 0..10_000 {
            capped.add(0, 1_000, v, 8);
        }
        assert_eq!(capped.add(0, 1_000, 77_777, 8), 8);
    }

    #[test]
    fn token_bucket_refills_at_rate() {
        let mut b = TokenBucket::full(2, 0);
        assert!(b.take(0, 1.0, 2).is_ok());
        assert!(b.take(0, 1.0, 2).is_ok());
        assert_eq!(b.take(0, 1.0, 2), Err(1_000));
        assert_eq!(b.take(500, 1.0, 2), Err(500));
        assert!(b.take(1_000, 1.0, 2).is_ok());
        assert!(b.idle(10_000, 1.0, 2));
    }
}
