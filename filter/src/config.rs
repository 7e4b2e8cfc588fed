//! The singleton service's configuration (its plugin configuration, JSON).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// This Envoy's name in the fleet.
    pub node_id: String,
    /// Envoy cluster (HTTP/2) that reaches `vigil serve`.
    #[serde(default = "ServiceConfig::default_cluster")]
    pub cluster: String,
    /// Node token, sent as `authorization: Bearer`.
    #[serde(default)]
    pub token: String,
    /// Events kept while the control plane is away; beyond it the oldest are dropped and counted.
    #[serde(default = "ServiceConfig::default_max_buffered")]
    pub max_buffered_events: usize,
    /// Events per Report call.
    #[serde(default = "ServiceConfig::default_batch")]
    pub batch_size: usize,
    /// Tick period: how often events are shipped and reconnects attempted.
    #[serde(default = "ServiceConfig::default_tick_ms")]
    pub tick_ms: u64,
    /// Longest wait between reconnect attempts.
    #[serde(default = "ServiceConfig::default_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

impl ServiceConfig {
    fn default_cluster() -> String {
        "vigil_control_plane".into()
    }
    fn default_max_buffered() -> usize {
        10_000
    }
    fn default_batch() -> usize {
        500
    }
    fn default_tick_ms() -> u64 {
        100
    }
    fn default_backoff_max_ms() -> u64 {
        2_000
    }

    pub fn parse(bytes: &[u8]) -> Result<ServiceConfig, String> {
        let config: ServiceConfig = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if config.node_id.is_empty() {
            return Err("node_id must not be empty".into());
        }
        if config.max_buffered_events == 0 || config.batch_size == 0 || config.tick_ms == 0 {
            return Err("max_buffered_events, batch_size and tick_ms must be positive".into());
        }
        Ok(config)
    }
}
