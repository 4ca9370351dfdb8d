//! The nesting check before parsing: whether JSON text nests deeper than [`MAX_DEPTH`], by a
//! byte scan outside strings (64 bytes at a time with AVX2), so that a hostile line is refused
//! rather than parsed into a stack overflow.

/// OTLP documents nest about a dozen levels; anything far deeper is hostile.
pub const MAX_DEPTH: usize = 64;

/// Whether JSON text nests deeper than `MAX_DEPTH` (a byte scan, outside strings). With AVX2,
/// 64 bytes at a time with bit masks, as simdjson finds strings; exact for valid JSON (where
/// backslashes appear only inside strings).
pub(super) fn too_deep(b: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: the CPU has AVX2 and POPCNT, checked just above.
        return unsafe { too_deep_avx2(b) };
    }
    too_deep_from(b, Scan::default())
}

/// The scan's state between bytes.
#[derive(Default, Clone, Copy)]
pub(super) struct Scan {
    depth: usize,
    in_str: bool,
    /// The next byte is escaped by a backslash.
    esc: bool,
}

impl Scan {
    /// Takes one byte; true once the text nests deeper than `MAX_DEPTH`.
    #[inline(always)]
    fn step(&mut self, c: u8) -> bool {
        if self.in_str {
            if self.esc {
                self.esc = false;
            } else if c == b'\\' {
                self.esc = true;
            } else if c == b'"' {
                self.in_str = false;
            }
            return false;
        }
        match c {
            b'"' => self.in_str = true,
            b'[' | b'{' => {
                self.depth += 1;
                return self.depth > MAX_DEPTH;
            }
            b']' | b'}' => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        false
    }
}

/// The byte-by-byte scan, from a state.
pub(super) fn too_deep_from(b: &[u8], mut s: Scan) -> bool {
    b.iter().any(|&c| s.step(c))
}

/// Bit i set: byte i lies inside a string (its opening quote included), given the unescaped
/// quotes `q` of a block.
#[inline(always)]
fn prefix_xor(mut q: u64) -> u64 {
    q ^= q << 1;
    q ^= q << 2;
    q ^= q << 4;
    q ^= q << 8;
    q ^= q << 16;
    q ^= q << 32;
    q
}

/// The bytes escaped by a backslash in a block of 64, given its backslashes and whether its
/// first byte is escaped by the previous block; updates that carry for the next block.
/// simdjson's branch-free method: a run of backslashes escapes the byte after it when its
/// length is odd, found with one subtraction over the run.
#[inline(always)]
fn escaped_bytes(backslash: u64, next_escaped: &mut u64) -> u64 {
    const ODD_BITS: u64 = 0xAAAA_AAAA_AAAA_AAAA;
    let potential = backslash & !*next_escaped;
    let code = ((potential << 1) | ODD_BITS).wrapping_sub(potential) ^ ODD_BITS;
    let escaped = code ^ (backslash | *next_escaped);
    *next_escaped = (code & backslash) >> 63;
    escaped
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn too_deep_avx2(b: &[u8]) -> bool {
    use std::arch::x86_64::*;
    let splat = |c: u8| _mm256_set1_epi8(c as i8);
    let [quote, bslash, open_sq, close_sq, open_cu, close_cu] =
        [b'"', b'\\', b'[', b']', b'{', b'}'].map(splat);
    let (mut depth, mut next_escaped, mut in_str) = (0usize, 0u64, 0u64);
    let mut i = 0;
    while i + 64 <= b.len() {
        // SAFETY: i + 64 <= b.len(); unaligned loads.
        let (lo, hi) = unsafe {
            (
                _mm256_loadu_si256(b.as_ptr().add(i) as *const __m256i),
                _mm256_loadu_si256(b.as_ptr().add(i + 32) as *const __m256i),
            )
        };
        let eq = |w: __m256i| {
            let l = _mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, w)) as u32 as u64;
            let h = _mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, w)) as u32 as u64;
            l | (h << 32)
        };
        let escaped = escaped_bytes(eq(bslash), &mut next_escaped);
        let inside = prefix_xor(eq(quote) & !escaped) ^ in_str;
        in_str = ((inside as i64) >> 63) as u64;
        let opens = (eq(open_sq) | eq(open_cu)) & !inside;
        let closes = (eq(close_sq) | eq(close_cu)) & !inside;
        let (n_open, n_close) = (opens.count_ones() as usize, closes.count_ones() as usize);
        if depth + n_open <= MAX_DEPTH && n_close <= depth {
            // Neither the limit nor zero can be reached inside this block.
            depth = depth + n_open - n_close;
        } else {
            let mut all = opens | closes;
            while all != 0 {
                let k = all.trailing_zeros();
                all &= all - 1;
                if opens >> k & 1 == 1 {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return true;
                    }
                } else {
                    depth = depth.saturating_sub(1);
                }
            }
        }
        i += 64;
    }
    let s = Scan {
        depth,
        in_str: in_str != 0,
        esc: in_str != 0 && next_escaped != 0,
    };
    too_deep_from(&b[i..], s)
}
