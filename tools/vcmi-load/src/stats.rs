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

/// Latency histogram for the lobby mode: one sample per (message, recipient), i.e. millions with
/// thousands of users, so samples are counted in an HDR histogram (3 significant digits, bounded
/// memory) rather than stored.
pub struct Histogram(hdrhistogram::Histogram<u64>);

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        // Auto-resizing: any u64 latency can be recorded.
        Histogram(hdrhistogram::Histogram::new(3).expect("3 significant digits is a valid setting"))
    }

    pub fn record(&mut self, v: u64) {
        // `record` grows the histogram as needed (saturating_record would clamp instead); it
        // fails only beyond what any latency can be, which then counts as the largest value.
        if self.0.record(v).is_err() {
            self.0.saturating_record(v);
        }
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at percentile `p` (0..=100), `None` when empty.
    #[cfg(test)]
    pub fn percentile(&self, p: f64) -> Option<u64> {
        (!self.0.is_empty()).then(|| self.0.value_at_percentile(p))
    }

    pub fn summary(&self) -> Obj {
        let h = &self.0;
        let mut o = Obj::new();
        o.uint("samples", h.len());
        if h.is_empty() {
            return o;
        }
        o.uint("min", h.min());
        for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9)] {
            o.uint(name, h.value_at_percentile(p));
        }
        o.uint("max", h.max());
        o.float("mean", h.mean(), 1);
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
            r#"{"max":5,"mean":3.0,"min":1,"p50":3,"p90":5,"p99":5,"p999":5,"samples":5}"#
        );
        assert_eq!(summarize_exact(&mut []).render(), r#"{"samples":0}"#);
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
            // 3 significant digits: within 0.1 % (plus one for small values)
            assert!(a.abs_diff(e) <= e / 1000 + 1, "p{p}: exact {e} hist {a}");
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(Histogram::new().percentile(50.0), None);
        let s = h.summary().render();
        assert!(s.contains(r#""samples":10000"#), "{s}");
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
