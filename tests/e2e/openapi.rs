//! openapi.yaml stays true: the gateway serves it, and every documented
//! operation, called against the running stack with its documented
//! example, answers a documented status with a body matching its schema.

use serde_json::{Map, Value, json};

use crate::harness::{Porto, repo_root};

fn document() -> Value {
    let text = std::fs::read_to_string(repo_root().join("openapi.yaml")).expect("openapi.yaml");
    serde_yaml_ng::from_str(&text).expect("openapi.yaml is YAML")
}

#[test]
fn the_gateway_serves_the_document() {
    let porto = Porto::start_default();
    let reply = porto.gateway().get("/openapi.yaml");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/yaml"));
    let expected = std::fs::read_to_string(repo_root().join("openapi.yaml")).expect("read");
    assert_eq!(reply.body, expected);
}

#[test]
fn every_documented_operation_answers_as_documented() {
    let doc = document();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let porto = Porto::start_default();
    let api = porto.gateway();
    // Fresh records for the operations that name an id; deletes go last
    // so every other operation still finds its record.
    let user = api.post_json(
        "/api/users",
        &json!({"name": "Contract", "email": "contract@example.com"}),
    );
    let order = api.post_json(
        "/api/orders",
        &json!({"user_id": user.json()["id"], "items": [{"sku": "C-1", "quantity": 1, "unit_price_cents": 5}]}),
    );
    let ids = [
        ("/api/users/", user.json()["id"].clone()),
        ("/api/orders/", order.json()["id"].clone()),
    ];

    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if method != "parameters" {
                operations.push((path.clone(), method.to_ascii_uppercase(), operation.clone()));
            }
        }
    }
    operations.sort_by_key(|(_, method, _)| method == "DELETE");
    assert!(
        operations.len() >= 10,
        "only {} operations documented",
        operations.len()
    );

    for (path, method, operation) in &operations {
        let id = ids
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
            .map(|(_, id)| id.to_string())
            .unwrap_or_else(|| "1".into());
        let concrete = path.replace("{id}", &id);
        let example = &operation["requestBody"]["content"]["application/json"]["example"];
        let reply = match example {
            Value::Null => api.send(method, &concrete, &[], None),
            body => api.send(
                method,
                &concrete,
                &[("content-type", "application/json")],
                Some(&body.to_string()),
            ),
        };
        let what = format!("{method} {concrete}");
        let documented = &operation["responses"][reply.status.to_string()];
        assert!(
            documented.is_object(),
            "{what}: status {} is not documented: {}",
            reply.status,
            reply.body
        );
        assert!(
            reply.status < 300,
            "{what}: the example failed: {}",
            reply.body
        );
        let response = resolve(&doc, documented);
        if let Some(schema) = response["content"]["application/json"].get("schema") {
            let body: Value = serde_json::from_str(&reply.body)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", reply.body));
            if let Err(violation) = conforms(&doc, schema, &body, "$") {
                panic!("{what}: {violation}\n{}", reply.body);
            }
        }
    }

    // Every operation that takes a body refuses an empty object with a
    // documented status and the documented error envelope.
    for (path, method, operation) in &operations {
        if operation["requestBody"].is_null() {
            continue;
        }
        let concrete = path.replace("{id}", "1");
        let reply = api.send(
            method,
            &concrete,
            &[("content-type", "application/json")],
            Some("{}"),
        );
        let what = format!("{method} {concrete} with {{}}");
        assert!(
            operation["responses"][reply.status.to_string()].is_object(),
            "{what}: status {} is not documented: {}",
            reply.status,
            reply.body
        );
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
        let body: Value = serde_json::from_str(&reply.body).expect("error body is JSON");
        if let Err(violation) = conforms(&doc, &doc["components"]["schemas"]["Error"], &body, "$") {
            panic!("{what}: {violation}");
        }
    }
}

fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("local $ref");
            resolve(doc, doc.pointer(pointer).expect("$ref resolves"))
        }
        None => node,
    }
}

/// The subset of OpenAPI 3.0 schemas the document uses: type, nullable,
/// required, properties, additionalProperties: false, items, enum, minimum.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if value.is_null() && schema["nullable"] == true {
        return Ok(());
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let matches = match schema["type"].as_str() {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_u64() || value.is_i64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => return Err(format!("{at}: unknown type {other}")),
    };
    if !matches {
        return Err(format!("{at}: {value} is not {}", schema["type"]));
    }
    if let (Some(minimum), Some(n)) = (schema["minimum"].as_f64(), value.as_f64())
        && n < minimum
    {
        return Err(format!("{at}: {n} < {minimum}"));
    }
    if let Some(object) = value.as_object() {
        check_object(doc, schema, object, at)?;
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            conforms(doc, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn check_object(
    doc: &Value,
    schema: &Value,
    object: &Map<String, Value>,
    at: &str,
) -> Result<(), String> {
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap_or_default();
        if !object.contains_key(name) {
            return Err(format!("{at}: missing required {name}"));
        }
    }
    let properties = schema["properties"].as_object();
    for (name, value) in object {
        match properties.and_then(|p| p.get(name)) {
            Some(property) => conforms(doc, property, value, &format!("{at}.{name}"))?,
            None if schema["additionalProperties"] == false => {
                return Err(format!("{at}: undocumented property {name}"));
            }
            None => {}
        }
    }
    Ok(())
}
