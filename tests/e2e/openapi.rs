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

/// Validates `value` against one of the document's schemas with a JSON
/// Schema validator (draft 2020-12, formats checked: `email`, `date-time`,
/// `pattern`, lengths, bounds and all). OpenAPI 3.0 schemas are JSON
/// Schema but for `nullable`, which becomes a `null` alternative; `$ref`s
/// point into the document, which travels along as `components`.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let mut root = json_schema(schema);
    root["components"] = json_schema(&doc["components"]);
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| format!("{at}: the schema does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{at}{}: {e}", e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// An OpenAPI 3.0 schema as JSON Schema: `nullable: true` admits `null`.
fn json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(fields) => {
            let mut out: Map<String, Value> = fields
                .iter()
                .filter(|(k, _)| k.as_str() != "nullable")
                .map(|(k, v)| (k.clone(), json_schema(v)))
                .collect();
            if fields.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(kind)) = out.get("type").cloned() {
                    out.insert("type".into(), json!([kind, "null"]));
                }
                if let Some(Value::Array(allowed)) = out.get_mut("enum") {
                    allowed.push(Value::Null);
                }
                if let Some(reference) = out.remove("$ref") {
                    out.insert(
                        "anyOf".into(),
                        json!([{"$ref": reference}, {"type": "null"}]),
                    );
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

/// The validator catches what the hand-written subset this replaced did
/// not: formats, patterns and lengths the document states.
#[test]
fn the_schemas_are_checked_in_full() {
    let doc = document();
    let user = &doc["components"]["schemas"]["User"];
    let valid = json!({"id": 1, "name": "Ann", "email": "ann@example.com", "created_at": "2026-12-01T10:00:00Z"});
    assert_eq!(conforms(&doc, user, &valid, "$"), Ok(()));
    let new_user = &doc["components"]["schemas"]["NewUser"];
    let valid_new = json!({"name": "Ann", "email": "ann@example.com"});
    assert_eq!(conforms(&doc, new_user, &valid_new, "$"), Ok(()));
    for (schema, valid, field, wrong) in [
        (user, &valid, "created_at", json!("yesterday")),
        (user, &valid, "id", json!(0)),
        (new_user, &valid_new, "email", json!("not an address")),
        (new_user, &valid_new, "name", json!("")),
    ] {
        let mut broken = valid.clone();
        broken[field] = wrong;
        assert!(
            conforms(&doc, schema, &broken, "$").is_err(),
            "{field} = {} passed",
            broken[field]
        );
    }
    let error = &doc["components"]["schemas"]["Error"];
    let bad_code = json!({"error": {"code": "Not-Snake", "message": "m"}});
    assert!(conforms(&doc, error, &bad_code, "$").is_err());
}
