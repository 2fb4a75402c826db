//! The machine-checked contract: every response the e2e tests receive from the Worker is checked
//! against `openapi.yaml` (OpenAPI 3.1): its status must be documented for the path and method,
//! and a JSON body must validate against the documented schema (JSON Schema 2020-12, with the
//! document's `components` in scope for `$ref`). ses-local's own endpoints (`/_…`, the Query API
//! at `POST /`, the Turnstile stand-in) are not the Worker's and are not checked.

use std::sync::OnceLock;

use serde_json::{json, Value};

fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi.yaml");
        serde_yaml::from_str(&text).expect("openapi.yaml is YAML")
    })
}

/// Whether a response at `path` is the Worker's (ses-local and the Turnstile stand-in share the
/// harness's helpers).
fn is_the_workers(method: &str, path: &str) -> bool {
    !(path.starts_with("/_")
        || path.starts_with("/turnstile/")
        || (path == "/" && method == "POST"))
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve(value: &Value) -> &Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => document()
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("openapi.yaml: {reference} does not exist")),
        None => value,
    }
}

/// Checks one response; panics with the reason when it breaks the contract. `url` is the full
/// request URL. Returns whether the response was checked (false: not the Worker's).
pub fn check(method: &str, url: &str, status: u16, content_type: &str, body: &str) -> bool {
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let path = path.split(['?', '#']).next().unwrap_or(path);
    if !is_the_workers(method, path) {
        return false;
    }
    let operation = document()["paths"]
        .get(path)
        .and_then(|item| item.get(method.to_ascii_lowercase()));
    let response = match operation {
        Some(operation) => resolve(
            operation["responses"]
                .get(status.to_string())
                .unwrap_or_else(|| {
                    panic!("openapi.yaml: {method} {path} does not document {status}: {body}")
                }),
        ),
        // A path or method the Worker does not serve: its 404 or 405 is the error shape.
        None => {
            assert!(
                status == 404 || status == 405,
                "openapi.yaml has no {method} {path}, yet it answered {status}: {body}"
            );
            &document()["components"]["responses"]["Error"]
        }
    };
    if !content_type.starts_with("application/json") {
        return true;
    }
    let schema = response
        .pointer("/content/application~1json/schema")
        .unwrap_or_else(|| {
            panic!("openapi.yaml: {method} {path} {status} documents no JSON body, yet got {body}")
        });
    let instance: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: a JSON content type with a body that is not JSON ({e}): {body}"));
    assert_valid(schema, &instance, &format!("{method} {path} {status}"));
    true
}

/// Validates `instance` against `schema`, with the document's components reachable by `$ref`.
pub fn assert_valid(schema: &Value, instance: &Value, what: &str) {
    let mut root = schema.clone();
    if let Value::Object(map) = &mut root {
        map.insert("components".into(), document()["components"].clone());
        map.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
    }
    let validator = jsonschema::validator_for(&root)
        .unwrap_or_else(|e| panic!("openapi.yaml: the schema for {what} is invalid: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the body breaks openapi.yaml: {}\n{instance}",
        errors.join("; ")
    );
}

/// The schema a name in `components/schemas` stands for.
pub fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}
