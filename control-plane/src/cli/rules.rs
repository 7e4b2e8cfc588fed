//! `vigil rules [FILE]`: every rule of a policy and its state.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use vigil_engine::CompiledPolicy;

use super::policy::compile_file;

pub fn run(file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let policy = match file {
        Some(f) => compile_file(f)?,
        None => CompiledPolicy::builtin().context("built-in policy")?,
    };
    println!(
        "{:<28} {:<15} {:<9} {:<8} {:<4} description",
        "id", "category", "severity", "action", "on"
    );
    for (rule, on) in policy.rules() {
        println!(
            "{:<28} {:<15} {:<9} {:<8} {:<4} {}",
            rule.id,
            rule.category.as_str(),
            rule.severity.as_str(),
            rule.action.as_str(),
            if on { "yes" } else { "no" },
            rule.description
        );
    }
    Ok(ExitCode::SUCCESS)
}
