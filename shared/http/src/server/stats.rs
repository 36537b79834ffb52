//! Connection-level refusals and timeouts, counted and logged in
//! aggregate: one line per reporting interval at most, whatever the rate,
//! so a flood is visible without filling a disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why the server refused or closed a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over the server's connection cap: 503.
    Capacity,
    /// Over the per-address connection cap: 503.
    PeerLimit,
    /// A new connection sent nothing in time: closed.
    FirstByteTimeout,
    /// A request head did not arrive in time (or a kept-alive connection
    /// stayed idle too long): closed.
    HeaderTimeout,
    /// A request head was refused before parsing (4xx, then closed).
    HeadRefused,
    /// The client did not read its response in time: closed.
    WriteTimeout,
}

impl Refusal {
    const ALL: [Refusal; 6] = [
        Refusal::Capacity,
        Refusal::PeerLimit,
        Refusal::FirstByteTimeout,
        Refusal::HeaderTimeout,
        Refusal::HeadRefused,
        Refusal::WriteTimeout,
    ];

    /// The name in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Capacity => "over_capacity",
            Refusal::PeerLimit => "over_peer_limit",
            Refusal::FirstByteTimeout => "first_byte_timeout",
            Refusal::HeaderTimeout => "header_timeout",
            Refusal::HeadRefused => "head_refused",
            Refusal::WriteTimeout => "write_timeout",
        }
    }
}

/// Counters of every [`Refusal`] since start.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    counts: [AtomicU64; 6],
}

impl ConnectionStats {
    pub fn count(&self, why: Refusal) {
        self.counts[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count of each kind since start.
    pub fn totals(&self) -> [(Refusal, u64); 6] {
        Refusal::ALL.map(|r| (r, self.counts[r as usize].load(Ordering::Relaxed)))
    }
}

/// Log what changed, once per `every`, while refusals happen.
pub(super) async fn report_every(stats: Arc<ConnectionStats>, every: Duration) {
    let mut last = stats.totals();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = stats.totals();
        if now == last {
            continue;
        }
        let mut fields = serde_json::Map::new();
        for ((why, total), (_, before)) in now.iter().zip(last.iter()) {
            if total > before {
                fields.insert(why.name().to_string(), serde_json::json!(total - before));
            }
        }
        let totals: serde_json::Map<String, serde_json::Value> =
            now.iter().map(|(why, n)| (why.name().to_string(), serde_json::json!(n))).collect();
        tracing::warn!(
            target: "lockstep::connections",
            interval_secs = every.as_secs_f64(),
            refused = %serde_json::Value::Object(fields),
            totals = %serde_json::Value::Object(totals),
            "connections refused or timed out"
        );
        last = now;
    }
}
