//! The sink's latency histogram: bucket layout (mirrors `bucket_of()` in sink.bpf.c) and
//! percentiles.

/// Buckets 0..LINEAR are 1 µs wide.
pub const LINEAR: usize = 1000;
/// Total buckets (`HIST_BUCKETS`).
pub const BUCKETS: usize = 1056;

/// The bucket a latency of `us` microseconds falls in.
pub fn bucket_of(us: u64) -> usize {
    if us < LINEAR as u64 {
        return us as usize;
    }
    // us >= 1000 so ilog2 >= 9.
    let b = LINEAR + us.ilog2() as usize - 9;
    b.min(BUCKETS - 1)
}

/// Upper edge of bucket `b` in microseconds (exclusive): a latency in the bucket is below it.
pub fn upper_edge_us(b: usize) -> u64 {
    if b < LINEAR {
        b as u64 + 1
    } else {
        let k = (b - LINEAR + 9 + 1).min(63);
        1u64 << k
    }
}

/// Lower edge of bucket `b` in microseconds (inclusive).
pub fn lower_edge_us(b: usize) -> u64 {
    if b == 0 {
        0
    } else {
        upper_edge_us(b - 1)
    }
}

/// The histogram as text, one line per non-empty bucket: `lower_us upper_us count`.
pub fn to_text(hist: &[u64]) -> String {
    hist.iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(b, n)| format!("{} {} {}\n", lower_edge_us(b), upper_edge_us(b), n))
        .collect()
}

/// The `q`-quantile (0 < q ≤ 1) of the histogram as a bucket's upper edge in microseconds: at
/// least a fraction `q` of the samples were below it. `None` when there are no samples.
pub fn percentile_us(hist: &[u64], q: f64) -> Option<u64> {
    let total: u64 = hist.iter().sum();
    if total == 0 || !(q > 0.0 && q <= 1.0) {
        return None;
    }
    // The rank of the sample we want (1-based), rounded up so p100 is the maximum.
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0u64;
    for (b, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(upper_edge_us(b));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lists_non_empty_buckets_with_edges() {
        let mut h = vec![0u64; BUCKETS];
        h[0] = 2;
        h[17] = 5;
        h[1001] = 1;
        assert_eq!(to_text(&h), "0 1 2\n17 18 5\n1024 2048 1\n");
        for us in [0u64, 3, 999, 1000, 1500, 70_000] {
            let b = bucket_of(us);
            assert!(lower_edge_us(b) <= us && us < upper_edge_us(b), "{us}");
        }
    }

    #[test]
    fn buckets_are_linear_then_log2() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(999), 999);
        assert_eq!(bucket_of(1000), 1000); // [1000, 1024)
        assert_eq!(bucket_of(1023), 1000);
        assert_eq!(bucket_of(1024), 1001); // [1024, 2048)
        assert_eq!(bucket_of(2047), 1001);
        assert_eq!(bucket_of(2048), 1002);
        assert_eq!(bucket_of(u64::MAX), 1000 + 63 - 9);
        assert!(bucket_of(u64::MAX) < BUCKETS);
        // Every latency is below its bucket's upper edge and at or above the previous one's.
        for us in [
            0u64,
            1,
            5,
            998,
            999,
            1000,
            1023,
            1024,
            5000,
            1 << 20,
            (1 << 40) + 7,
        ] {
            let b = bucket_of(us);
            assert!(us < upper_edge_us(b), "{us}");
            if b > 0 {
                assert!(us >= upper_edge_us(b - 1), "{us}");
            }
        }
    }

    #[test]
    fn percentiles_of_known_distributions() {
        let mut h = vec![0u64; BUCKETS];
        assert_eq!(percentile_us(&h, 0.5), None);
        // 1000 samples: 900 at 3 µs, 90 at 10 µs, 9 at 200 µs, 1 at 5 ms.
        h[bucket_of(3)] += 900;
        h[bucket_of(10)] += 90;
        h[bucket_of(200)] += 9;
        h[bucket_of(5000)] += 1;
        assert_eq!(percentile_us(&h, 0.5), Some(4));
        assert_eq!(percentile_us(&h, 0.9), Some(4));
        assert_eq!(percentile_us(&h, 0.901), Some(11));
        assert_eq!(percentile_us(&h, 0.99), Some(11));
        assert_eq!(percentile_us(&h, 0.999), Some(201));
        assert_eq!(percentile_us(&h, 1.0), Some(8192));
        assert_eq!(percentile_us(&h, 0.0), None);
        // A single sample is every percentile.
        let mut one = vec![0u64; BUCKETS];
        one[bucket_of(42)] = 1;
        assert_eq!(percentile_us(&one, 0.5), Some(43));
        assert_eq!(percentile_us(&one, 0.999), Some(43));
    }
}
