//! A small deterministic mutator for the CI smoke test (tests/smoke.rs): not coverage guided,
//! it only makes sure every target runs on many inputs near its seeds without AFL.

/// A xorshift64* generator: deterministic from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced by a fixed non-zero value).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Values AFL also likes: boundaries of 8- and 16-bit fields.
const INTERESTING: [u8; 9] = [0, 1, 0x7f, 0x80, 0xff, b'\n', b' ', b'{', b'"'];

/// Applies one to eight random edits to `input`: bit flips, byte sets, inserted, deleted or
/// duplicated ranges, and splices from `other` (another seed), keeping it under `max_len`.
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8], max_len: usize) {
    for _ in 0..1 + rng.below(8) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next_u64() as u8;
            }
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                input.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(32)).min(len);
                input.drain(at..end);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(32)).min(len);
                let copy = input[at..end].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, copy);
            }
            _ if !other.is_empty() => {
                let at = rng.below(other.len());
                let end = (at + 1 + rng.below(64)).min(other.len());
                let to = rng.below(len + 1);
                input.splice(to..to, other[at..end].iter().copied());
            }
            _ => input.push(rng.next_u64() as u8),
        }
    }
    input.truncate(max_len);
}
