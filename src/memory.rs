//! The process's memory as the run sees it: its peak for the debug log, and freed memory handed
//! back to the system between phases.
//!
//! The allocator (mimalloc) keeps freed pages for a second by default before returning them,
//! which is fast while decoding but lets a nightly's peak add up the phases: the decoding's
//! freed pages were still resident while a month of stored facts was read. Building the tables
//! hands memory back at once; writing them, which frees and allocates large buffers over and
//! over, keeps it a while again.

/// `mi_option_purge_delay` in the mimalloc 3 that `libmimalloc-sys` 0.1.49 builds (its
/// `mimalloc.h`; the crate's own constants are those of mimalloc 2).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The allocator's own purge delay, kept by the first `release`.
static DEFAULT_DELAY: std::sync::OnceLock<std::ffi::c_long> = std::sync::OnceLock::new();

/// From now on, freed memory goes back to the system at once; what is already free goes now.
pub fn release() {
    // SAFETY: these calls only read or change the allocator's settings and free lists; any
    // thread may make them.
    unsafe {
        DEFAULT_DELAY.get_or_init(|| libmimalloc_sys::mi_option_get(PURGE_DELAY));
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        libmimalloc_sys::mi_collect(true);
    }
}

/// Freed memory is kept a while again, as the allocator does by default: for a phase that
/// allocates and frees large buffers over and over (encoding the tables: handing each back at
/// once made writing about a third slower), once the phase that sets the peak is over.
pub fn keep_freed() {
    if let Some(delay) = DEFAULT_DELAY.get() {
        // SAFETY: as in `release`.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, *delay) }
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
    /// this binary calls `release`), 0 after `release`, the default again after `keep_freed`. What that does to a run's memory is
    /// measured by the bench scripts.
    #[test]
    fn release_sets_the_purge_delay_to_zero_and_keep_freed_restores_it() {
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 1000);
        release();
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 0);
        keep_freed();
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 1000);
    }
}
