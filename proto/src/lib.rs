//! vigil.v1 wire types, generated from `vigil/v1/vigil.proto` (see that file for the protocol).
//! With the `grpc` feature the tonic clients and servers are generated too.

#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/vigil.v1.rs"));
}

/// Full gRPC method paths, for callers that frame calls themselves (the wasm singleton).
pub mod paths {
    pub const RULE_SERVICE: &str = "vigil.v1.RuleService";
    pub const EVENT_SERVICE: &str = "vigil.v1.EventService";
    pub const WATCH: &str = "Watch";
    pub const REPORT_STATUS: &str = "ReportStatus";
    pub const REPORT_EVENTS: &str = "Report";
}
