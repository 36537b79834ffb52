//! Waits between tries of a contended write, a conflicting transaction or
//! a partly processed batch: one rule for every retry in the service.

use std::time::Duration;

/// A random number below `n` (uniform enough for jitter).
fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        return u64::from(nanos) % n.max(1);
    }
    u64::from_le_bytes(bytes) % n.max(1)
}

/// The wait before try `attempt` (1-based): an exponential step capped at
/// 100 ms, with full jitter so that the writers that collided spread out
/// instead of colliding again.
pub fn backoff(attempt: u32) -> Duration {
    let step_ms = 2u64.saturating_mul(1u64 << attempt.min(10)).min(100);
    Duration::from_millis(step_ms / 2 + random_below(step_ms / 2 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_stay_bounded() {
        for attempt in 1..40 {
            let step = 2u64.saturating_mul(1u64 << attempt.min(10)).min(100);
            let wait = backoff(attempt).as_millis() as u64;
            assert!(wait >= step / 2 && wait <= step, "attempt {attempt}: {wait} ms");
        }
    }
}
