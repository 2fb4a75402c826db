//! The machine-checked contract, `openapi.yaml` (OpenAPI 3.1), with one validator for both
//! directions:
//! - every response the e2e tests receive from the Worker ([`check`]): its status must be
//!   documented for the path and method, each documented header must be there when required and
//!   match its schema when sent, and a JSON body must validate against the documented schema;
//! - every webhook delivery the e2e receiver gets ([`webhook_violations`]): its `type` must name
//!   an entry of `webhooks`, its headers must match that entry's header parameters, and its body
//!   the entry's request body schema.
//!
//! Schemas are JSON Schema 2020-12, with the document's `components` in scope for `$ref`.
//! ses-local's own endpoints (`/_…`, the Query API at `POST /`, the Turnstile stand-in) are not
//! the Worker's and are not checked.

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

/// Follows local `$ref`s (`#/components/...`) to what they name.
fn resolve(value: &Value) -> &Value {
    let mut value = value;
    while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        value = document()
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("openapi.yaml: {reference} does not exist"));
    }
    value
}

/// The first value of header `name` (any case).
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What breaks one documented header (a Header object, or a Parameter object `in: header`):
/// missing though `required`, or a value its schema refuses.
fn header_violations(name: &str, documented: &Value, headers: &[(String, String)]) -> Vec<String> {
    let documented = resolve(documented);
    match header(headers, name) {
        None if documented["required"] == json!(true) => {
            vec![format!("the required header {name} is missing")]
        }
        None => Vec::new(),
        Some(value) => violations(&documented["schema"], &json!(value))
            .into_iter()
            .map(|e| format!("header {name}: {e}"))
            .collect(),
    }
}

/// When set, only responses from these origins are signup-verify's: `make bench` runs other
/// Workers (the baseline, the floors) beside it, whose answers the document does not describe.
static ONLY_ORIGINS: OnceLock<Vec<String>> = OnceLock::new();

/// Checks only responses from `origins` from now on (once per process).
pub fn check_only_origins(origins: Vec<String>) {
    let _ = ONLY_ORIGINS.set(origins);
}

/// Checks one response; panics with the reason when it breaks the contract. `url` is the full
/// request URL, `headers` the response's. Returns whether the response was checked (false: not
/// the Worker's).
pub fn check(
    method: &str,
    url: &str,
    status: u16,
    headers: &[(String, String)],
    body: &str,
) -> bool {
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let path = path.split(['?', '#']).next().unwrap_or(path);
    if !is_the_workers(method, path) {
        return false;
    }
    if let Some(origins) = ONLY_ORIGINS.get() {
        if !origins
            .iter()
            .any(|origin| url.starts_with(origin.as_str()))
        {
            return false;
        }
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
    let what = format!("{method} {path} {status}");
    let broken: Vec<String> = response
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .flat_map(|(name, documented)| header_violations(name, documented, headers))
        .collect();
    assert!(
        broken.is_empty(),
        "{what}: the headers break openapi.yaml: {}\n{headers:?}",
        broken.join("; ")
    );
    let content_type = header(headers, "content-type").unwrap_or_default();
    // A HEAD answer has the GET's headers and no body.
    if method == "HEAD" || !content_type.starts_with("application/json") {
        return true;
    }
    let schema = response
        .pointer("/content/application~1json/schema")
        .unwrap_or_else(|| panic!("openapi.yaml: {what} documents no JSON body, yet got {body}"));
    let instance: Value = serde_json::from_str(body).unwrap_or_else(|e| {
        panic!("{what}: a JSON content type with a body that is not JSON ({e}): {body}")
    });
    assert_valid(schema, &instance, &what);
    true
}

/// What breaks one webhook delivery (its headers and raw body), by the entry of `webhooks` its
/// `type` names; empty when nothing does.
pub fn webhook_violations(headers: &[(String, String)], body: &str) -> Vec<String> {
    let instance: Value = match serde_json::from_str(body) {
        Ok(instance) => instance,
        Err(e) => return vec![format!("the body is not JSON ({e}): {body}")],
    };
    let Some(kind) = instance["type"].as_str() else {
        return vec![format!("the body has no string `type`: {body}")];
    };
    let Some(operation) = document()["webhooks"]
        .get(kind)
        .map(resolve)
        .and_then(|item| item.get("post"))
    else {
        return vec![format!("openapi.yaml documents no webhook {kind:?}")];
    };
    let mut broken: Vec<String> = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(resolve)
        .filter(|parameter| parameter["in"] == "header")
        .flat_map(|parameter| {
            let name = parameter["name"].as_str().unwrap_or_default();
            header_violations(name, parameter, headers)
        })
        .collect();
    let content_type = header(headers, "content-type").unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    match resolve(&operation["requestBody"])["content"].get(media_type) {
        None => broken.push(format!(
            "{kind}: content-type {content_type:?} is not documented"
        )),
        Some(media) => broken.extend(
            violations(&media["schema"], &instance)
                .into_iter()
                .map(|e| format!("{kind} body: {e}")),
        ),
    }
    broken
}

/// The event types `webhooks` documents.
pub fn webhook_names() -> Vec<String> {
    document()["webhooks"]
        .as_object()
        .map(|webhooks| webhooks.keys().cloned().collect())
        .unwrap_or_default()
}

/// Validates `instance` against `schema`, with the document's components reachable by `$ref`:
/// what breaks it (empty when nothing does). Panics if the schema itself is invalid.
fn violations(schema: &Value, instance: &Value) -> Vec<String> {
    let mut root = schema.clone();
    if let Value::Object(map) = &mut root {
        map.insert("components".into(), document()["components"].clone());
        map.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
    }
    let validator = jsonschema::validator_for(&root)
        .unwrap_or_else(|e| panic!("openapi.yaml: the schema {schema} is invalid: {e}"));
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Panics unless `instance` satisfies `schema` (see [`violations`]).
pub fn assert_valid(schema: &Value, instance: &Value, what: &str) {
    let errors = violations(schema, instance);
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
