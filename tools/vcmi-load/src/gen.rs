//! Seeded pseudo-random byte streams for relay payloads.
//!
//! Writer and reader of one direction construct the same generator independently, so the reader can
//! verify every received byte without the data ever being stored. SplitMix64 is used because it is
//! tiny, fast (several GB/s, far above what the relay can carry) and has no short cycles; it is
//! not meant to be cryptographic. Each (pair, direction) gets its own stream so that a proxy that
//! mixed up pairs or directions would be caught by the verification.

pub struct DataGen {
    state: u64,
    /// Unused bytes of the last 64-bit word (little-endian order), so that the stream does not
    /// depend on how callers slice it into chunks.
    spare: u64,
    spare_len: usize,
}

impl DataGen {
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut g = DataGen {
            state: seed ^ stream.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03),
            spare: 0,
            spare_len: 0,
        };
        // Discard one output so that seeds differing in few bits diverge immediately.
        g.next_u64();
        g
    }

    /// Stream id for a pair and direction (0 = server side → client side, 1 = the reverse).
    pub fn stream_id(pair: usize, direction: u64) -> u64 {
        (pair as u64) * 2 + direction
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `out` with the next `out.len()` bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut i = 0;
        while self.spare_len > 0 && i < out.len() {
            out[i] = self.spare as u8;
            self.spare >>= 8;
            self.spare_len -= 1;
            i += 1;
        }
        let mut words = out[i..].chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rem = words.into_remainder();
        if !rem.is_empty() {
            let v = self.next_u64();
            rem.copy_from_slice(&v.to_le_bytes()[..rem.len()]);
            self.spare = v >> (8 * rem.len());
            self.spare_len = 8 - rem.len();
        }
    }

    /// Checks `got` against the next `got.len()` bytes of the stream, using `scratch` to avoid
    /// allocating. Returns the index of the first differing byte.
    pub fn verify(&mut self, got: &[u8], scratch: &mut Vec<u8>) -> Option<usize> {
        scratch.resize(got.len(), 0);
        self.fill(scratch);
        if scratch[..] == *got {
            None
        } else {
            got.iter().zip(scratch.iter()).position(|(a, b)| a != b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(seed: u64, stream: u64, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        DataGen::new(seed, stream).fill(&mut v);
        v
    }

    #[test]
    fn deterministic_and_independent_of_slicing() {
        let reference = whole(42, 3, 1000);
        assert_eq!(reference, whole(42, 3, 1000));
        for step in [1usize, 3, 7, 8, 9, 64, 333] {
            let mut g = DataGen::new(42, 3);
            let mut got = Vec::new();
            let mut left = 1000;
            while left > 0 {
                let n = step.min(left);
                let mut buf = vec![0; n];
                g.fill(&mut buf);
                got.extend_from_slice(&buf);
                left -= n;
            }
            assert_eq!(got, reference, "step {step}");
        }
    }

    #[test]
    fn streams_and_seeds_differ() {
        let a = whole(1, 0, 64);
        assert_ne!(a, whole(1, 1, 64));
        assert_ne!(a, whole(2, 0, 64));
        assert_ne!(whole(0, 0, 64), vec![0; 64]);
        assert_ne!(DataGen::stream_id(0, 1), DataGen::stream_id(1, 0));
    }

    #[test]
    fn verify_reports_first_mismatch() {
        let data = whole(9, 9, 100);
        let mut scratch = Vec::new();
        let mut g = DataGen::new(9, 9);
        assert_eq!(g.verify(&data[..10], &mut scratch), None);
        let mut bad = data[10..50].to_vec();
        bad[17] ^= 0x40;
        assert_eq!(g.verify(&bad, &mut scratch), Some(17));
    }

    #[test]
    fn bytes_look_random() {
        // crude sanity check: every byte value appears in 64 KiB
        let v = whole(7, 0, 65536);
        let mut seen = [false; 256];
        for b in v {
            seen[b as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
