//! Names and formats shared between the singleton and the worker VMs (same `vm_id`).

/// Shared-data key holding the pushed policy: `version`, a newline, then the policy JSON.
pub const POLICY_KEY: &str = "vigil.policy";
/// Shared-data key holding the control plane's dynamic blocks: a `vigil.v1.BlockList`.
pub const BLOCKS_KEY: &str = "vigil.blocks";
/// Shared-data key holding the reputation list: a `vigil.v1.IntelList`.
pub const INTEL_KEY: &str = "vigil.intel";
/// Shared-data key holding penalties one worker decided, so every worker of this Envoy applies
/// them within a tick, control plane or not: a `vigil.v1.BlockList` (reason = detector).
pub const PENALTIES_KEY: &str = "vigil.penalties";
/// Penalties kept in [`PENALTIES_KEY`]; the oldest go first.
pub const MAX_SHARED_PENALTIES: usize = 1_000;
/// Shared queue the workers put events on and the singleton drains.
pub const EVENTS_QUEUE: &str = "vigil_events";
/// The `vm_id` both roles must use (Envoy scopes shared data and queues by it).
pub const VM_ID: &str = "vigil";

pub fn encode_policy(version: &str, json: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(version.len() + 1 + json.len());
    out.extend_from_slice(version.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(json.as_bytes());
    out
}

pub fn decode_policy(bytes: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.split_once('\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_round_trip() {
        let enc = encode_policy("7", "{\"mode\":\"monitor\"}\n");
        assert_eq!(decode_policy(&enc), Some(("7", "{\"mode\":\"monitor\"}\n")));
        assert_eq!(decode_policy(b"no newline"), None);
    }
}
