//! AdminService calls of fleet response: dynamic blocks, the reputation list and the audit trail.
//! Every change is audited under the caller's token name and pushed to every edge at once.

use std::net::IpAddr;

use tonic::{Request, Response, Status};
use vigil_engine::behaviour::AddressRange;
use vigil_proto::v1::{
    AddBlockRequest, AuditEntry, BlockEntry, IntelList, ListAuditRequest, ListAuditResponse,
    ListBlocksRequest, ListBlocksResponse, ListIntelRequest, LoadIntelRequest, LoadIntelResponse,
    RemoveBlockRequest,
};

use super::fleet::{dynamic_block, intel_list};
use super::fleet_store::{BlockRecord, BlockSnapshot, IntelRecord};
use super::service::{actor, store_status, Admin};
use crate::timefmt::now_unix_ms;

pub const DEFAULT_AUDIT_LIMIT: u32 = 100;
pub const MAX_AUDIT_LIMIT: u32 = 10_000;
/// Entries of one reputation list.
pub const MAX_INTEL_ENTRIES: usize = 1_000_000;
/// Longest block value (principals and tokens are short; anything longer is a mistake).
const MAX_VALUE_LEN: usize = 512;

/// Checks a block's kind and value; returns the value in the form edges match (addresses
/// canonical, so `remove` finds what `add` stored).
pub fn canonical_value(kind: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("`value` is empty".into());
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(format!("`value` is longer than {MAX_VALUE_LEN} bytes"));
    }
    match kind {
        "ip" => value
            .parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .map_err(|_| format!("`{value}` is not an IP address")),
        "cidr" => AddressRange::parse(value).map(|_| value.to_owned()),
        "principal" | "token" => Ok(value.to_owned()),
        other => Err(format!(
            "`kind` must be ip, cidr, principal or token, not `{other}`"
        )),
    }
}

fn entry(b: &BlockRecord) -> BlockEntry {
    BlockEntry {
        block: Some(dynamic_block(b)),
        created_by: b.created_by.clone(),
        created_unix_ms: b.created_unix_ms,
    }
}

fn listing(snapshot: &BlockSnapshot) -> ListBlocksResponse {
    ListBlocksResponse {
        blocks: snapshot.blocks.iter().map(entry).collect(),
    }
}

impl Admin {
    pub(super) async fn add_block_impl(
        &self,
        request: Request<AddBlockRequest>,
    ) -> Result<Response<BlockEntry>, Status> {
        let actor = actor(&request);
        let AddBlockRequest { block, ttl_secs } = request.into_inner();
        let block = block.ok_or_else(|| Status::invalid_argument("`block` is missing"))?;
        let value = canonical_value(&block.kind, &block.value)
            .map_err(|m| Status::invalid_argument(format!("block: {m}")))?;
        let now = now_unix_ms();
        let expires_unix_ms = if ttl_secs > 0 {
            now.saturating_add(ttl_secs.saturating_mul(1_000))
        } else if ttl_secs < 0 {
            return Err(Status::invalid_argument("`ttl_secs` is negative"));
        } else {
            block.expires_unix_ms
        };
        if expires_unix_ms != 0 && expires_unix_ms <= now {
            return Err(Status::invalid_argument(
                "`block.expires_unix_ms` is in the past",
            ));
        }
        let record = BlockRecord {
            kind: block.kind,
            value,
            expires_unix_ms,
            reason: if block.reason.trim().is_empty() {
                "manual".to_owned()
            } else {
                block.reason.trim().to_owned()
            },
            limit_only: block.limit_only,
            created_by: actor,
            created_unix_ms: now,
        };
        let stored = record.clone();
        let snapshot = self
            .hub
            .store
            .run(move |s| s.add_block(&stored, now))
            .await
            .map_err(store_status)?;
        self.hub.fleet.publish_blocks(&snapshot);
        tracing::info!(block = %record.describe(), by = %record.created_by, "block added");
        Ok(Response::new(entry(&record)))
    }

    pub(super) async fn remove_block_impl(
        &self,
        request: Request<RemoveBlockRequest>,
    ) -> Result<Response<ListBlocksResponse>, Status> {
        let actor = actor(&request);
        let RemoveBlockRequest { kind, value } = request.into_inner();
        let value = canonical_value(&kind, &value).map_err(Status::invalid_argument)?;
        let now = now_unix_ms();
        let (k, v) = (kind.clone(), value.clone());
        let snapshot = self
            .hub
            .store
            .run(move |s| s.remove_block(&k, &v, &actor, now))
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("no block on {kind} {value}")))?;
        self.hub.fleet.publish_blocks(&snapshot);
        tracing::info!(kind = %kind, value = %value, "block removed");
        Ok(Response::new(listing(&snapshot)))
    }

    pub(super) async fn list_blocks_impl(
        &self,
        _request: Request<ListBlocksRequest>,
    ) -> Result<Response<ListBlocksResponse>, Status> {
        let now = now_unix_ms();
        let snapshot = self
            .hub
            .store
            .run(move |s| s.blocks(now))
            .await
            .map_err(store_status)?;
        Ok(Response::new(listing(&snapshot)))
    }

    pub(super) async fn load_intel_impl(
        &self,
        request: Request<LoadIntelRequest>,
    ) -> Result<Response<LoadIntelResponse>, Status> {
        let actor = actor(&request);
        let LoadIntelRequest { entries, source } = request.into_inner();
        if entries.len() > MAX_INTEL_ENTRIES {
            return Err(Status::invalid_argument(format!(
                "{} entries is more than {MAX_INTEL_ENTRIES}",
                entries.len()
            )));
        }
        // All or nothing: one bad entry refuses the list, and edges keep the one they have.
        let mut records = Vec::with_capacity(entries.len());
        for (i, e) in entries.into_iter().enumerate() {
            AddressRange::parse(&e.cidr)
                .map_err(|m| Status::invalid_argument(format!("entries[{i}]: {m}")))?;
            records.push(IntelRecord {
                cidr: e.cidr.trim().to_owned(),
                label: e.label.trim().to_owned(),
            });
        }
        let now = now_unix_ms();
        let loaded = u32::try_from(records.len()).unwrap_or(u32::MAX);
        let snapshot = self
            .hub
            .store
            .run(move |s| s.load_intel(&records, &source, &actor, now))
            .await
            .map_err(store_status)?;
        self.hub.fleet.publish_intel(&snapshot);
        tracing::info!(
            entries = loaded,
            revision = snapshot.revision,
            "intel loaded"
        );
        Ok(Response::new(LoadIntelResponse {
            loaded,
            revision: snapshot.revision,
        }))
    }

    pub(super) async fn list_intel_impl(
        &self,
        _request: Request<ListIntelRequest>,
    ) -> Result<Response<IntelList>, Status> {
        let snapshot = self
            .hub
            .store
            .run(|s| s.intel())
            .await
            .map_err(store_status)?;
        Ok(Response::new(intel_list(&snapshot)))
    }

    pub(super) async fn list_audit_impl(
        &self,
        request: Request<ListAuditRequest>,
    ) -> Result<Response<ListAuditResponse>, Status> {
        let limit = match request.get_ref().limit {
            0 => DEFAULT_AUDIT_LIMIT,
            n => n.min(MAX_AUDIT_LIMIT),
        };
        let records = self
            .hub
            .store
            .run(move |s| s.list_audit(limit))
            .await
            .map_err(store_status)?;
        Ok(Response::new(ListAuditResponse {
            entries: records
                .into_iter()
                .map(|r| AuditEntry {
                    unix_ms: r.unix_ms,
                    actor: r.actor,
                    action: r.action,
                    detail: r.detail,
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_values_are_checked_and_canonical() {
        assert_eq!(
            canonical_value("ip", " 203.0.113.5 ").unwrap(),
            "203.0.113.5"
        );
        assert_eq!(
            canonical_value("ip", "2001:DB8:0::1").unwrap(),
            "2001:db8::1"
        );
        assert!(canonical_value("ip", "203.0.113.5:80").is_err());
        assert!(canonical_value("ip", "10.0.0.0/8").is_err());
        assert_eq!(canonical_value("cidr", "10.0.0.0/8").unwrap(), "10.0.0.0/8");
        assert!(canonical_value("cidr", "10.0.0.0/33").is_err());
        assert_eq!(
            canonical_value("principal", "sub:alice").unwrap(),
            "sub:alice"
        );
        assert!(canonical_value("token", "").is_err());
        assert!(canonical_value("user", "x")
            .unwrap_err()
            .contains("ip, cidr, principal or token"));
    }
}
