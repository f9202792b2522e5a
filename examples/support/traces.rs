//! Key traces for hit-ratio measurements: Zipf streams and a Zipf stream with a one-pass scan.
//! Deterministic (a fixed-seed xorshift), so every run and every library sees the same keys.

/// xorshift64*: small, fast, good enough to drive a trace.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Samples ranks 0..n with P(rank k) proportional to 1 / (k + 1)^s.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 0..n {
            total += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(total);
        }
        for p in &mut cdf {
            *p /= total;
        }
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        self.cdf.partition_point(|&p| p < u) as u64
    }
}

/// A named trace of keys.
pub struct Trace {
    pub name: &'static str,
    pub keys: Vec<u64>,
}

/// The traces the benchmark issue names: Zipf(0.9), Zipf(1.1), and Zipf(0.9) with a one-pass scan
/// interleaved (every fourth access reads the next never-seen key).
pub fn traces(key_space: usize, len: usize) -> Vec<Trace> {
    let zipf = |s: f64, seed: u64| {
        let dist = Zipf::new(key_space, s);
        let mut rng = Rng::new(seed);
        (0..len).map(|_| dist.sample(&mut rng)).collect::<Vec<_>>()
    };
    let mut scan = zipf(0.9, 3);
    let mut next_scan_key = key_space as u64;
    for (i, key) in scan.iter_mut().enumerate() {
        if i % 4 == 3 {
            *key = next_scan_key;
            next_scan_key += 1;
        }
    }
    vec![
        Trace {
            name: "zipf 0.9",
            keys: zipf(0.9, 1),
        },
        Trace {
            name: "zipf 1.1",
            keys: zipf(1.1, 2),
        },
        Trace {
            name: "zipf 0.9 + scan",
            keys: scan,
        },
    ]
}
