//! # schemas
//!
//! Versioned JSON Schemas (2020-12) of every event payload, every command
//! and the event envelope, generated from the `ledger-core` types and
//! committed under `schemas/` (`events/<type>.v<N>.json`,
//! `commands/<type>.json`, `envelope.json`). A test fails when the
//! committed files differ from what the types generate; regenerate with
//! `UPDATE_SCHEMAS=1 cargo test -p schemas`.

pub mod examples;

use std::collections::BTreeMap;

use ledger_core::domain::Event;
use ledger_core::domain::command::{Actor, Command};
use ledger_core::domain::event::{EVENT_KINDS, current_schema_version};
use serde_json::{Value, json};

const ID_BASE: &str = "https://points-ledger.dev/schemas/";

/// The schema files, by path relative to `schemas/`, as committed.
pub fn generate() -> BTreeMap<String, Value> {
    let mut files = BTreeMap::new();
    let current = Event::payload_schemas()
        .into_iter()
        .map(|(kind, schema)| (kind, current_schema_version(kind), schema));
    for (kind, version, schema) in current.chain(Event::superseded_payload_schemas()) {
        let path = event_schema_path(kind, version);
        let mut schema = schema.to_value();
        describe(
            &mut schema,
            &path,
            &format!("The `data` of a `{kind}` event, version {version}"),
        );
        files.insert(path, schema);
    }
    for (kind, schema) in command_schemas() {
        let path = format!("commands/{kind}.json");
        let mut schema = schema;
        describe(&mut schema, &path, &format!("The `{kind}` command"));
        files.insert(path, schema);
    }
    files.insert("envelope.json".to_owned(), envelope_schema());
    files
}

pub fn event_schema_path(kind: &str, version: u32) -> String {
    format!("events/{kind}.v{version}.json")
}

fn describe(schema: &mut Value, path: &str, title: &str) {
    if let Value::Object(fields) = schema {
        fields.insert("$id".to_owned(), json!(format!("{ID_BASE}{path}")));
        fields.insert("title".to_owned(), json!(title));
    }
}

/// One schema per command type: the matching branch of the command enum's
/// schema, with the shared definitions it refers to.
fn command_schemas() -> Vec<(String, Value)> {
    let whole = schemars::schema_for!(Command).to_value();
    let definitions = whole.get("$defs").cloned();
    let branches = whole
        .get("oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    branches
        .into_iter()
        .filter_map(|branch| {
            let kind = branch
                .pointer("/properties/type/const")
                .and_then(Value::as_str)?
                .to_owned();
            let mut schema = json!({"$schema": "https://json-schema.org/draft/2020-12/schema"});
            if let (Value::Object(target), Value::Object(source)) = (&mut schema, branch) {
                target.extend(source);
                if let Some(definitions) = &definitions {
                    target.insert("$defs".to_owned(), definitions.clone());
                }
            }
            Some((kind, schema))
        })
        .collect()
}

/// The stored envelope (and, with the chain hashes, as the API and the
/// replay tool's export show it). `data` is validated against the event
/// type's own schema.
fn envelope_schema() -> Value {
    // The actor's definitions move to the envelope's root, where its
    // `#/$defs/...` references resolve.
    let mut actor = schemars::schema_for!(Actor).to_value();
    let actor_definitions = actor
        .as_object_mut()
        .and_then(|fields| {
            fields.remove("$schema");
            fields.remove("$defs")
        })
        .unwrap_or_else(|| json!({}));
    let hex64 = json!({"type": "string", "pattern": "^[0-9a-f]{64}$"});
    let uuid = json!({"type": "string", "format": "uuid"});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{ID_BASE}envelope.json"),
        "title": "An event envelope: one log record's payload",
        "type": "object",
        "required": ["position", "event_id", "type", "schema_version", "recorded_at", "command_id", "command_fingerprint", "actor", "data"],
        "additionalProperties": false,
        "properties": {
            "position": {"type": "integer", "minimum": 1, "description": "Global log position, gapless from 1"},
            "event_id": uuid,
            "type": {"enum": EVENT_KINDS},
            "schema_version": {"type": "integer", "minimum": 1, "description": "The version of the `data` schema: events/<type>.v<schema_version>.json"},
            "recorded_at": {"type": "string", "format": "date-time"},
            "command_id": uuid,
            "command_fingerprint": hex64,
            "actor": actor,
            "data": {"type": "object"},
            "prev_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "Chain hash of the previous record (API and exports only)"},
            "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256(prev_hash ‖ payload) (API and exports only)"},
        },
        "$defs": actor_definitions,
    })
}

/// The text a schema file holds.
pub fn render(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Every committed file under `schemas/` this crate owns, with its text:
/// the schemas and the event catalogue generated from them.
pub fn generate_files() -> BTreeMap<String, String> {
    let schemas = generate();
    let mut files: BTreeMap<String, String> = schemas
        .iter()
        .map(|(path, schema)| (path.clone(), render(schema)))
        .collect();
    files.insert("CATALOGUE.md".to_owned(), catalogue(&schemas));
    files
}

/// A readable name for a property's schema.
fn type_name(property: &Value) -> String {
    if let Some(reference) = property.get("$ref").and_then(Value::as_str) {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    if let Some(options) = property
        .get("anyOf")
        .or_else(|| property.get("oneOf"))
        .and_then(Value::as_array)
    {
        let names: Vec<String> = options.iter().map(type_name).collect();
        return names.join(" or ");
    }
    match property.get("type") {
        Some(Value::String(kind)) if kind == "array" => {
            format!(
                "array of {}",
                property
                    .get("items")
                    .map_or_else(|| "values".to_owned(), type_name)
            )
        }
        Some(Value::String(kind)) => kind.clone(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => property
            .get("enum")
            .map_or_else(|| "value".to_owned(), |values| format!("one of {values}")),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The event catalogue: each event type, what it records, its fields.
fn catalogue(schemas: &BTreeMap<String, Value>) -> String {
    let mut text = String::from(
        "# Event catalogue\n\nGenerated from the event types by `UPDATE_SCHEMAS=1 cargo test -p schemas`; do not edit.\nEach event's `data` is described by `events/<type>.v<N>.json`; the envelope around it by\n`envelope.json`. Types named in the tables are defined in each schema's `$defs`.\n",
    );
    let examples = examples::examples();
    for (path, schema) in schemas
        .iter()
        .filter(|(path, _)| path.starts_with("events/"))
    {
        let name = path.trim_start_matches("events/").trim_end_matches(".json");
        text.push_str(&format!("\n## `{name}`\n\n"));
        if let Some(description) = schema.get("description").and_then(Value::as_str) {
            text.push_str(&one_line(description));
            text.push_str("\n\n");
        }
        text.push_str("| field | type | required | meaning |\n|---|---|---|---|\n");
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|fields| fields.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (field, property) in properties {
                let meaning = property
                    .get("description")
                    .and_then(Value::as_str)
                    .map(one_line)
                    .unwrap_or_default();
                text.push_str(&format!(
                    "| `{field}` | {} | {} | {meaning} |\n",
                    type_name(property),
                    if required.contains(&field.as_str()) {
                        "yes"
                    } else {
                        "no"
                    }
                ));
            }
        }
        let kind = name.split(".v").next().unwrap_or(name);
        let is_current = name == format!("{kind}.v{}", current_schema_version(kind));
        if let (true, Some(example)) = (is_current, examples.get(kind)) {
            text.push_str("\nExample `data`:\n\n```json\n");
            text.push_str(&serde_json::to_string_pretty(example).unwrap_or_default());
            text.push_str("\n```\n");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn every_event_and_command_type_has_a_schema() {
        let files = generate();
        for kind in EVENT_KINDS {
            assert!(
                files.contains_key(&event_schema_path(kind, current_schema_version(kind))),
                "{kind}"
            );
        }
        let commands = files
            .keys()
            .filter(|path| path.starts_with("commands/"))
            .count();
        assert_eq!(commands, 18, "one per command type");
    }

    #[test]
    fn the_catalogue_has_a_real_example_of_every_event_type() {
        let examples = examples::examples();
        let missing: Vec<&&str> = EVENT_KINDS
            .iter()
            .filter(|kind| !examples.contains_key(**kind))
            .collect();
        assert!(missing.is_empty(), "no example of {missing:?}");
    }

    /// CI fails here when a type changed and the committed schemas did not.
    #[test]
    fn the_committed_schemas_are_what_the_types_generate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
        let mut stale = Vec::new();
        for (path, text) in generate_files() {
            let file = root.join(&path);
            if update {
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent).expect("schema directory");
                }
                std::fs::write(&file, &text).expect("schema file written");
            }
            if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
                stale.push(path);
            }
        }
        assert!(
            stale.is_empty(),
            "stale schemas (run `UPDATE_SCHEMAS=1 cargo test -p schemas` and commit): {stale:?}"
        );
    }
}
