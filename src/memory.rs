//! The process's memory as the run sees it: its peak for the debug log, and freed memory handed
//! back to the system between phases.
//!
//! The allocator (mimalloc) keeps freed pages for a second by default before returning them,
//! which is fast while decoding but lets a nightly's peak add up the phases: the decoding's
//! freed pages were still resident while a month of stored facts was read. The tables and the
//! writing return theirs at once.

/// `mi_option_purge_delay` in the mimalloc 3 that `libmimalloc-sys` 0.1.49 builds (its
/// `mimalloc.h`; the crate's own constants are those of mimalloc 2).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// From now on, freed memory goes back to the system at once; what is already free goes now.
pub fn release() {
    // SAFETY: both calls only change the allocator's bookkeeping; any thread may make them.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        libmimalloc_sys::mi_collect(true);
    }
}

/// The process's peak resident memory so far (Linux), for the debug log.
pub fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option set is the purge delay: its default is mimalloc 3's 1000 ms (no other test of
    /// this binary calls `release`), and it is 0 afterwards. What that does to a run's memory is
    /// measured by the bench scripts.
    #[test]
    fn release_sets_the_purge_delay_to_zero() {
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 1000);
        release();
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 0);
    }
}
