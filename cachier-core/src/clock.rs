//! Clock readings for decisions that a few milliseconds do not change: an
//! entry's age against `stale_after`, when a file was last checked, whether
//! a directory was removed, an entry's last use. Where the kernel has coarse
//! clocks (Linux, FreeBSD), they are read instead of the precise ones: a
//! reading then costs about 10 ns instead of 38 ns (measured in a VM), and a
//! hit reads the clock up to three times. They lag the precise clocks by at
//! most one kernel tick (1 to 10 ms), as the times the kernel gives files do.

use std::time::SystemTime;

/// The time of day, to within a kernel tick.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
pub(crate) fn coarse_now() -> SystemTime {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    SystemTime::UNIX_EPOCH + std::time::Duration::new(now.tv_sec.max(0) as u64, now.tv_nsec as u32)
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
pub(crate) fn coarse_now() -> SystemTime {
    SystemTime::now()
}

/// Nanoseconds on a clock that never goes back, to within a kernel tick;
/// only differences between two readings mean anything.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
pub(crate) fn coarse_monotonic_nanos() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
pub(crate) fn coarse_monotonic_nanos() -> u64 {
    static EPOCH: std::sync::LazyLock<std::time::Instant> = std::sync::LazyLock::new(std::time::Instant::now);
    u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, SystemTime};

    /// Both clocks agree with the precise ones to within a tick, and move
    /// forward with them.
    #[test]
    fn coarse_readings_lag_the_precise_clocks_by_at_most_a_tick() {
        let tick = Duration::from_millis(20);
        let precise = SystemTime::now();
        let coarse = super::coarse_now();
        assert!(
            coarse <= precise + tick && precise <= coarse + tick,
            "{coarse:?} vs {precise:?}"
        );
        let (started, first) = (Instant::now(), super::coarse_monotonic_nanos());
        while started.elapsed() < 3 * tick {
            std::hint::spin_loop();
        }
        let moved = Duration::from_nanos(super::coarse_monotonic_nanos() - first);
        assert!(
            moved + tick >= 3 * tick && moved <= started.elapsed() + tick,
            "{moved:?}"
        );
    }
}
