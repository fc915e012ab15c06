//! A summary as client_golang keeps one: `_sum` and `_count` over all time, and each objective
//! quantile over a sliding window of `MAX_AGE` in `AGE_BUCKETS` streams that are reset in turn
//! (client_golang's defaults: 10 minutes, 5 buckets). Every observation goes into every stream;
//! quantiles are read from the oldest one.
//!
//! Like beorn7/perks (client_golang's estimator), a stream answers exactly (nearest rank) until
//! it has held `BUF_CAP` observations, so small sets show what Go shows; past that the targeted
//! estimate comes from the `quantiles` crate's CKMS, bounded by the smallest objective error.

use std::time::{Duration, Instant};

use quantiles::ckms::CKMS;

pub const MAX_AGE: Duration = Duration::from_secs(600);
pub const AGE_BUCKETS: u32 = 5;
pub const BUF_CAP: usize = 500;

#[derive(Clone)]
pub struct Summary {
    /// (quantile, allowed error), sorted by quantile.
    objectives: Vec<(f64, f64)>,
    streams: Vec<Stream>,
    head: usize,
    head_expires: Instant,
    sum: f64,
    count: u64,
}

#[derive(Clone)]
struct Stream {
    exact: Vec<f64>,
    estimate: Option<CKMS<f64>>,
    error: f64,
}

impl Stream {
    fn new(error: f64) -> Self {
        Stream { exact: Vec::new(), estimate: None, error }
    }

    fn insert(&mut self, v: f64) {
        match &mut self.estimate {
            Some(ckms) => ckms.insert(v),
            None if self.exact.len() + 1 < BUF_CAP => self.exact.push(v),
            None => {
                let mut ckms = CKMS::new(self.error);
                for x in self.exact.drain(..).chain([v]) {
                    ckms.insert(x);
                }
                self.estimate = Some(ckms);
            }
        }
    }

    fn query(&self, q: f64) -> f64 {
        if let Some(ckms) = &self.estimate {
            return ckms.query(q).map_or(f64::NAN, |(_, v)| v);
        }
        if self.exact.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.exact.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = (sorted.len() as f64 * q).ceil() as usize;
        sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
    }
}

impl Summary {
    pub fn new(objectives: &[(f64, f64)], now: Instant) -> Self {
        let mut objectives = objectives.to_vec();
        objectives.sort_by(|a, b| a.0.total_cmp(&b.0));
        let error = objectives.iter().map(|o| o.1).fold(f64::INFINITY, f64::min);
        // Without objectives there are no quantiles and so nothing to keep a window of.
        let streams = if objectives.is_empty() { Vec::new() } else { vec![Stream::new(error); AGE_BUCKETS as usize] };
        Summary { objectives, streams, head: 0, head_expires: now + MAX_AGE / AGE_BUCKETS, sum: 0.0, count: 0 }
    }

    pub fn observe(&mut self, v: f64, now: Instant) {
        self.rotate(now);
        for stream in &mut self.streams {
            stream.insert(v);
        }
        self.sum += v;
        self.count += 1;
    }

    /// (quantile, value) per objective, `_sum` and `_count`.
    pub fn read(&mut self, now: Instant) -> (Vec<(f64, f64)>, f64, u64) {
        self.rotate(now);
        let quantiles = self.objectives.iter().map(|(q, _)| (*q, self.streams[self.head].query(*q))).collect();
        (quantiles, self.sum, self.count)
    }

    /// Resets the oldest stream each time its age bucket ends.
    fn rotate(&mut self, now: Instant) {
        while !self.streams.is_empty() && now >= self.head_expires {
            let error = self.streams[self.head].error;
            self.streams[self.head] = Stream::new(error);
            self.head = (self.head + 1) % self.streams.len();
            self.head_expires += MAX_AGE / AGE_BUCKETS;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJECTIVES: [(f64, f64); 3] = [(0.5, 0.05), (0.9, 0.01), (0.99, 0.001)];

    #[test]
    fn small_sets_answer_with_the_nearest_rank_as_go_does() {
        let now = Instant::now();
        let mut s = Summary::new(&OBJECTIVES, now);
        assert!(s.read(now).0.iter().all(|(_, v)| v.is_nan()), "no observations yet: NaN");
        for v in [0.3, 0.1, 0.2] {
            s.observe(v, now);
        }
        let (quantiles, sum, count) = s.read(now);
        assert_eq!(quantiles, [(0.5, 0.2), (0.9, 0.3), (0.99, 0.3)]);
        assert_eq!((sum, count), (0.6000000000000001, 3));
    }

    #[test]
    fn large_sets_stay_within_the_objective_errors() {
        let now = Instant::now();
        let mut s = Summary::new(&OBJECTIVES, now);
        for i in 1..=10_000 {
            s.observe(i as f64, now);
        }
        for ((q, v), (_, error)) in s.read(now).0.into_iter().zip(OBJECTIVES) {
            assert!((v / 10_000.0 - q).abs() <= error, "quantile {q}: {v}");
        }
    }

    #[test]
    fn old_observations_leave_the_window_but_not_sum_and_count() {
        let start = Instant::now();
        let bucket = MAX_AGE / AGE_BUCKETS;
        let mut s = Summary::new(&[(0.9, 0.01)], start);
        s.observe(100.0, start);
        s.observe(1.0, start + bucket * 3);
        // The head stream, the oldest one left, has both observations.
        assert_eq!(s.read(start + bucket * 3).0, [(0.9, 100.0)]);
        // Once MAX_AGE has passed since the first, only the later one is left...
        assert_eq!(s.read(start + MAX_AGE).0, [(0.9, 1.0)]);
        // ... and then neither.
        assert!(s.read(start + MAX_AGE + bucket * 3).0[0].1.is_nan());
        assert_eq!(s.read(start + MAX_AGE * 3).1, 101.0);
    }

    #[test]
    fn without_objectives_only_sum_and_count() {
        let now = Instant::now();
        let mut s = Summary::new(&[], now);
        s.observe(2.5, now);
        assert_eq!(s.read(now + MAX_AGE * 2), (vec![], 2.5, 1));
    }
}
