//! Where a request's time goes inside Envoy, for benchmarks only. Built with
//! `--features timing`, the filter reads the WASI monotonic clock around its request-header and
//! request-body callbacks and around the engine's inspection, and adds the nanoseconds to the
//! counters `vigil.timing.{request_headers,request_body,engine,nothing}_ns`, flushed with the other
//! counters; divided by `vigil.requests.inspected` they give time per request (`bench/timing.sh`).
//! The default build has no clock reads: `timed` is just the call.

/// A measured part of a request.
#[derive(Clone, Copy)]
pub enum Phase {
    /// The whole request-headers callback (it inspects body-less requests).
    RequestHeaders = 0,
    /// The whole request-body callback (it inspects requests with bodies).
    RequestBody = 1,
    /// The engine's inspection alone, inside one of the two.
    Engine = 2,
    /// An empty window, once per request: what one measurement itself adds.
    Nothing = 3,
}

#[cfg(not(feature = "timing"))]
#[inline(always)]
pub fn timed<T>(_phase: Phase, f: impl FnOnce() -> T) -> T {
    f()
}

#[cfg(not(feature = "timing"))]
pub fn flush() {}

#[cfg(feature = "timing")]
pub use measured::{flush, timed};

#[cfg(feature = "timing")]
mod measured {
    use std::cell::OnceCell;
    use std::time::Instant;

    use super::Phase;
    use crate::metrics::Counter;

    thread_local! {
        static SPENT: OnceCell<[Counter; 4]> = const { OnceCell::new() };
    }

    fn define() -> [Counter; 4] {
        [
            "vigil.timing.request_headers_ns",
            "vigil.timing.request_body_ns",
            "vigil.timing.engine_ns",
            "vigil.timing.nothing_ns",
        ]
        .map(Counter::define)
    }

    pub fn timed<T>(phase: Phase, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        SPENT.with(|spent| spent.get_or_init(define)[phase as usize].add(ns));
        out
    }

    pub fn flush() {
        SPENT.with(|spent| {
            for counter in spent.get().into_iter().flatten() {
                counter.flush();
            }
        });
    }
}
