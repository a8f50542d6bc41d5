//! When the event stream reconnects after a drop: the whole schedule, in one place.
//!
//! Attempt `n` (from 1) waits 0.5 s, 1 s, 2 s, 4 s, 8 s, then 10 s each time, ±20 % jitter. A
//! connection that delivered an event, or stayed open for [`HEALTHY_AFTER_MS`], counts as
//! healthy: its drop starts the schedule over.

/// First delay before reconnecting a dropped WebSocket.
pub const RECONNECT_BASE_MS: u32 = 500;
/// Longest delay between reconnect attempts.
pub const RECONNECT_MAX_MS: u32 = 10_000;
/// A connection that lived this long is healthy; the next drop starts the backoff over.
pub const HEALTHY_AFTER_MS: f64 = 5_000.0;

/// Delay before reconnect attempt `attempt` (from 1), before jitter.
pub fn reconnect_delay_ms(attempt: u32) -> u32 {
    let doublings = attempt.saturating_sub(1).min(16);
    RECONNECT_BASE_MS.saturating_mul(1 << doublings).min(RECONNECT_MAX_MS)
}

/// `delay_ms` moved by up to ±20 % by `random` (in `0..1`), so many tabs do not reconnect in
/// lockstep after a server restart.
pub fn jittered(delay_ms: u32, random: f64) -> u32 {
    (f64::from(delay_ms) * (0.8 + 0.4 * random)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_backoff_doubles_then_caps() {
        let delays: Vec<u32> = (1..=7).map(reconnect_delay_ms).collect();
        assert_eq!(delays, [500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        assert_eq!(reconnect_delay_ms(0), 500);
        assert_eq!(reconnect_delay_ms(u32::MAX), 10_000);
    }

    #[test]
    fn jitter_stays_within_a_fifth_either_way() {
        assert_eq!(jittered(1_000, 0.0), 800);
        assert_eq!(jittered(1_000, 0.5), 1_000);
        assert_eq!(jittered(1_000, 0.999_999), 1_199);
        assert_eq!(jittered(RECONNECT_MAX_MS, 1.0), 12_000);
    }
}
