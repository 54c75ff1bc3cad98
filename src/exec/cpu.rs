//! The CPU time a stage took: the process's user and system time (`getrusage`: its own
//! threads, and the programs it started and waited for, which is where a `command` stage's
//! time goes) across the stage's run. Stages run in one process and share its thread pools, so
//! the figure is the stage's own only when no other stage ran meanwhile; otherwise it is not
//! kept (`run --jobs 1` runs one stage at a time). The record keeps it as `cpu_s`, beside the
//! wall time; the outputs never hold it, so they stay byte-identical from run to run.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stages running now in this process, and stages started since it began.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static STARTED: AtomicU64 = AtomicU64::new(0);

fn seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes the struct it is given and nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut u) } != 0 {
        return f64::NAN;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn now() -> f64 {
    seconds(libc::RUSAGE_SELF) + seconds(libc::RUSAGE_CHILDREN)
}

/// Started when a stage starts; [`CpuClock::stop`] when it has finished.
pub struct CpuClock {
    at: f64,
    /// The value of `STARTED` once this stage had started.
    started: u64,
    /// Whether another stage was running when this one started.
    shared: bool,
    stopped: bool,
}

impl CpuClock {
    pub fn start() -> CpuClock {
        let shared = RUNNING.fetch_add(1, Ordering::SeqCst) > 0;
        let started = STARTED.fetch_add(1, Ordering::SeqCst) + 1;
        CpuClock {
            at: now(),
            started,
            shared,
            stopped: false,
        }
    }

    /// The stage's CPU seconds, or None when another stage ran beside it.
    pub fn stop(mut self) -> Option<f64> {
        let secs = now() - self.at;
        self.stopped = true;
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        let alone = !self.shared && STARTED.load(Ordering::SeqCst) == self.started;
        (alone && secs.is_finite()).then_some(secs)
    }
}

impl Drop for CpuClock {
    fn drop(&mut self) {
        if !self.stopped {
            RUNNING.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test for both cases: the counters are the process's, and tests run in parallel.
    #[test]
    fn a_stage_alone_gets_its_cpu_time_and_overlapping_ones_none() {
        let mut kept = None;
        // other tests of this binary may start stages meanwhile: try a few times
        for _ in 0..20 {
            let c = CpuClock::start();
            let mut x = 0u64;
            for k in 0..20_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(k);
            }
            std::hint::black_box(x);
            if let Some(s) = c.stop() {
                kept = Some(s);
                break;
            }
        }
        let s = kept.expect("a stage alone keeps its CPU time");
        assert!(s > 0.0 && s < 60.0, "{s}");
        let a = CpuClock::start();
        let b = CpuClock::start();
        assert_eq!(b.stop(), None, "it started beside another");
        assert_eq!(a.stop(), None, "another started beside it");
    }
}
