//! Validation against the committed JSON Schemas in `schemas/`, so tests
//! can check that what the ledger writes and accepts is what the schemas
//! promise.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

/// Compiled validators for the envelope, every event version and every
/// command, loaded from the committed files.
#[derive(Debug)]
pub struct Schemas {
    envelope: jsonschema::Validator,
    by_path: BTreeMap<String, jsonschema::Validator>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn compile(path: &str) -> Result<jsonschema::Validator, String> {
    let text =
        std::fs::read_to_string(root().join(path)).map_err(|error| format!("{path}: {error}"))?;
    let schema: Value = serde_json::from_str(&text).map_err(|error| format!("{path}: {error}"))?;
    jsonschema::validator_for(&schema).map_err(|error| format!("{path}: {error}"))
}

fn check(validator: &jsonschema::Validator, instance: &Value, what: &str) -> Result<(), String> {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| format!("{} at {}", error, error.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{what} does not match its schema: {errors:?}\n{instance}"
        ))
    }
}

impl Schemas {
    pub fn load() -> Result<Schemas, String> {
        let mut by_path = BTreeMap::new();
        for directory in ["events", "commands"] {
            let entries =
                std::fs::read_dir(root().join(directory)).map_err(|error| error.to_string())?;
            for entry in entries {
                let name = entry.map_err(|error| error.to_string())?.file_name();
                let path = format!("{directory}/{}", name.to_string_lossy());
                by_path.insert(path.clone(), compile(&path)?);
            }
        }
        Ok(Schemas {
            envelope: compile("envelope.json")?,
            by_path,
        })
    }

    /// An envelope as stored or served: the envelope schema, and `data`
    /// against its type's schema at the envelope's `schema_version`.
    pub fn check_envelope(&self, envelope: &Value) -> Result<(), String> {
        check(&self.envelope, envelope, "envelope")?;
        let kind = envelope["type"].as_str().unwrap_or_default();
        let version = envelope["schema_version"].as_u64().unwrap_or_default();
        let path = format!("events/{kind}.v{version}.json");
        let validator = self
            .by_path
            .get(&path)
            .ok_or_else(|| format!("no schema {path}"))?;
        check(validator, &envelope["data"], &path)
    }

    /// A command as serialised (`{"type": ..., fields}`).
    pub fn check_command(&self, command: &Value) -> Result<(), String> {
        let kind = command["type"].as_str().unwrap_or_default();
        let path = format!("commands/{kind}.json");
        let validator = self
            .by_path
            .get(&path)
            .ok_or_else(|| format!("no schema {path}"))?;
        check(validator, command, &path)
    }
}
