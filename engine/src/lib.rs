//! vigil-engine: every detection decision vigil makes, as pure code.
//!
//! No I/O, no clock, no proxy-wasm: the Envoy filter, the CLI (`vigil policy test`,
//! `vigil replay`) and the control plane all call this crate, so what a rule author tests is
//! exactly what runs at the edge. Time is passed in by the caller.

pub mod behaviour;
mod bytes;
pub mod compiled;
pub mod detect;
pub mod inspect;
pub mod jwt;
mod memo;
pub mod model;
pub mod normalize;
pub mod policy;
pub mod routes;
pub mod signatures;
pub mod targets;

pub use compiled::{check_ids, CompiledPolicy, RuleInfo};
pub use inspect::{severity_score, Finding, Outcome, Request, Verdict};
pub use model::{Category, Mode, RuleAction, Severity};
pub use policy::{PolicyDocument, PolicyError};
