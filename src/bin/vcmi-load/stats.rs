//! Percentiles, a compact latency histogram, throughput and size helpers.

use crate::json::Obj;

/// Nearest-rank percentile of an ascending-sorted slice (`p` in 0..=100).
///
/// Nearest-rank (rather than interpolation) always returns a value that was actually measured,
/// which is what operators expect when they compare "p99 = 812 µs" between runs.
pub fn percentile_sorted(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[rank(p, sorted.len() as u64) as usize - 1])
}

/// 1-based nearest rank `ceil(p/100 * n)`, clamped to 1..=n. The epsilon keeps binary rounding
/// from bumping exact ranks up (0.999 * 1000 is 999.0000000000001 in f64).
fn rank(p: f64, n: u64) -> u64 {
    let r = ((p / 100.0) * n as f64 - 1e-9).ceil();
    (r.max(1.0) as u64).min(n)
}

/// Summary of exact samples (ping-pong round trips): p50/p90/p99/p999/max etc. in microseconds.
pub fn summarize_exact(samples: &mut [u64]) -> Obj {
    samples.sort_unstable();
    let mut o = Obj::new();
    o.uint("samples", samples.len() as u64);
    if samples.is_empty() {
        return o;
    }
    let sum: u128 = samples.iter().map(|&v| v as u128).sum();
    o.uint("min", samples[0]);
    for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9)] {
        o.uint(name, percentile_sorted(samples, p).unwrap_or(0));
    }
    o.uint("max", samples[samples.len() - 1]);
    o.float("mean", sum as f64 / samples.len() as f64, 1);
    o
}

/// Log-linear histogram (HDR-like): exact below 128, then 64 sub-buckets per power of two, i.e. at
/// most ~1.6 % relative error.
///
/// The lobby mode records one latency per (message, recipient); with thousands of users that is
/// millions of samples, so storing them all would cost far more memory than these ~3.6k counters.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

const LINEAR: u64 = 128;
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        // exponents 7..=63 each get SUB buckets
        let buckets = LINEAR as usize + (64 - 7) * SUB as usize;
        Histogram {
            counts: vec![0; buckets],
            total: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= 7
        let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
        LINEAR as usize + (e as usize - 7) * SUB as usize + sub as usize
    }

    /// Smallest value that maps to bucket `idx` (so reported percentiles never overstate).
    fn lower_bound(idx: usize) -> u64 {
        if (idx as u64) < LINEAR {
            return idx as u64;
        }
        let rel = idx as u64 - LINEAR;
        let e = (rel / SUB) as u32 + 7;
        let sub = rel % SUB;
        (1u64 << e) | (sub << (e - SUB_BITS))
    }

    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.sum += v as u128;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Nearest-rank percentile; the exact maximum is returned for the top rank so `max` and `p100`
    /// agree.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = rank(p, self.total);
        if rank == self.total {
            return Some(self.max);
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::lower_bound(i).max(self.min));
            }
        }
        Some(self.max)
    }

    pub fn summary(&self) -> Obj {
        let mut o = Obj::new();
        o.uint("samples", self.total);
        if self.total == 0 {
            return o;
        }
        o.uint("min", self.min);
        for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9)] {
            o.uint(name, self.percentile(p).unwrap_or(0));
        }
        o.uint("max", self.max);
        o.float("mean", self.sum as f64 / self.total as f64, 1);
        o
    }
}

/// MiB/s for `bytes` moved in `secs` seconds.
pub fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return f64::NAN;
    }
    bytes as f64 / (1024.0 * 1024.0) / secs
}

/// Parses a byte count such as `4096`, `64K`, `16MiB`, `1G` (binary multiples, case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid size {s:?}: expected a number with optional K/M/G suffix"
        ));
    }
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("invalid size suffix in {s:?}: use K, M, G or T")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} overflows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_sorted(&v, 50.0), Some(50));
        assert_eq!(percentile_sorted(&v, 90.0), Some(90));
        assert_eq!(percentile_sorted(&v, 99.0), Some(99));
        assert_eq!(percentile_sorted(&v, 99.9), Some(100));
        assert_eq!(percentile_sorted(&v, 100.0), Some(100));
        assert_eq!(percentile_sorted(&v, 0.0), Some(1));
        assert_eq!(percentile_sorted(&[7], 99.9), Some(7));
        assert_eq!(percentile_sorted(&[], 50.0), None);
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile_sorted(&v, 99.9), Some(999));
    }

    #[test]
    fn exact_summary() {
        let mut v = vec![5, 1, 3, 2, 4];
        let s = summarize_exact(&mut v).render();
        assert_eq!(
            s,
            r#"{"samples":5,"min":1,"p50":3,"p90":5,"p99":5,"p999":5,"max":5,"mean":3.0}"#
        );
        assert_eq!(summarize_exact(&mut []).render(), r#"{"samples":0}"#);
    }

    #[test]
    fn histogram_bucket_bounds() {
        for v in [
            0u64,
            1,
            127,
            128,
            129,
            1000,
            65_535,
            1 << 20,
            123_456_789,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let i = Histogram::index(v);
            let lo = Histogram::lower_bound(i);
            assert!(lo <= v, "{v}: lower bound {lo}");
            // relative error bounded by one sub-bucket
            assert!(v - lo <= v / 64 + 1, "{v}: lower bound {lo} too far");
            if i + 1 < Histogram::new().counts.len() {
                assert!(Histogram::lower_bound(i + 1) > v);
            }
        }
    }

    #[test]
    fn histogram_percentiles_match_exact_within_error() {
        let mut h = Histogram::new();
        let mut exact = Vec::new();
        let mut x: u64 = 1;
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = (x >> 40) % 50_000;
            h.record(v);
            exact.push(v);
        }
        exact.sort_unstable();
        for p in [50.0, 90.0, 99.0, 99.9] {
            let e = percentile_sorted(&exact, p).unwrap();
            let a = h.percentile(p).unwrap();
            assert!(a <= e && e - a <= e / 64 + 1, "p{p}: exact {e} hist {a}");
        }
        assert_eq!(h.percentile(100.0), Some(*exact.last().unwrap()));
        assert_eq!(h.count(), 10_000);
        assert_eq!(Histogram::new().percentile(50.0), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999999999999").is_err());
    }

    #[test]
    fn throughput() {
        assert_eq!(mib_per_s(1 << 20, 1.0), 1.0);
        assert_eq!(mib_per_s(10 << 20, 2.0), 5.0);
        assert!(mib_per_s(1, 0.0).is_nan());
    }
}
