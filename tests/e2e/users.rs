//! user-service as README "Users" and openapi.yaml describe it, through the gateway.

use serde_json::json;

use crate::harness::Porto;

#[test]
fn fresh_store_holds_the_original_users() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let page = api.get("/api/users");
    assert_eq!(page.status, 200);
    let body = page.json();
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], 1);
    assert_eq!(items[0]["name"], "Alice Johnson");
    assert_eq!(items[0]["email"], "alice@example.com");
    assert_eq!(items[1]["id"], 2);
    assert_eq!(items[1]["name"], "Bob Smith");
    assert!(body["next_cursor"].is_null());
    let created_at = items[0]["created_at"].as_str().expect("created_at");
    assert!(
        created_at.ends_with('Z') && created_at.contains('T'),
        "{created_at}"
    );
}

#[test]
fn create_get_patch_delete() {
    let porto = Porto::start_default();
    let api = porto.gateway();

    let created = api.post_json(
        "/api/users",
        &json!({"name": "  Zoë Ångström ", "email": "Zoe@Example.COM"}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let user = created.json();
    let id = user["id"].as_u64().expect("id");
    assert_eq!(id, 3, "ids continue after the seeded users");
    assert_eq!(user["name"], "Zoë Ångström");
    assert_eq!(user["email"], "zoe@example.com");
    assert_eq!(created.header("location"), Some("/users/3"));

    assert_eq!(api.get("/api/users/3").json(), user);

    let patched = api.patch_json("/api/users/3", &json!({"name": "Zoë A."}));
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.json()["name"], "Zoë A.");
    assert_eq!(patched.json()["email"], "zoe@example.com");

    let moved = api.patch_json("/api/users/3", &json!({"email": "zoe@new.example"}));
    assert_eq!(moved.status, 200, "{}", moved.body);
    // The old address is free again, the new one is taken.
    let reuse = api.post_json(
        "/api/users",
        &json!({"name": "Other", "email": "zoe@example.com"}),
    );
    assert_eq!(reuse.status, 201, "{}", reuse.body);
    let clash = api.post_json(
        "/api/users",
        &json!({"name": "Other", "email": "ZOE@new.example"}),
    );
    assert_eq!(
        (clash.status, clash.error_code().as_str()),
        (409, "email_taken")
    );

    let deleted = api.delete("/api/users/3");
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    let gone = api.get("/api/users/3");
    assert_eq!(
        (gone.status, gone.error_code().as_str()),
        (404, "user_not_found")
    );
    assert_eq!(api.delete("/api/users/3").status, 404);
    assert_eq!(
        api.patch_json("/api/users/3", &json!({"name": "x"})).status,
        404
    );
    // A deleted user's address can be registered again.
    assert_eq!(
        api.post_json(
            "/api/users",
            &json!({"name": "Back", "email": "zoe@new.example"})
        )
        .status,
        201
    );
}

#[test]
fn duplicate_email_is_409_whatever_the_case() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let dup = api.post_json(
        "/api/users",
        &json!({"name": "Fake Alice", "email": "ALICE@example.com"}),
    );
    assert_eq!(dup.status, 409);
    assert_eq!(dup.error_code(), "email_taken");
    assert_eq!(dup.json()["error"]["details"]["email"], "alice@example.com");
}

#[test]
fn validation_names_every_bad_field() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    let bad = api.post_json("/api/users", &json!({"name": "", "email": "not-an-email"}));
    assert_eq!(
        (bad.status, bad.error_code().as_str()),
        (400, "validation_failed")
    );
    let details = &bad.json()["error"]["details"];
    assert!(
        details["name"].is_string() && details["email"].is_string(),
        "{details}"
    );

    let long = api.post_json(
        "/api/users",
        &json!({"name": "x".repeat(101), "email": "a@b.co"}),
    );
    assert_eq!(long.status, 400);
    let wrong_type = api.post_json("/api/users", &json!({"name": 5, "email": "a@b.co"}));
    assert_eq!(
        (wrong_type.status, wrong_type.error_code().as_str()),
        (400, "validation_failed")
    );
    let unknown = api.post_json(
        "/api/users",
        &json!({"name": "A", "email": "a@b.co", "admin": true}),
    );
    assert_eq!(unknown.status, 400);
    let empty_patch = api.patch_json("/api/users/1", &json!({}));
    assert_eq!(empty_patch.status, 400);
}

#[test]
fn pages_walk_in_id_order() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    for i in 0..5 {
        let r = api.post_json(
            "/api/users",
            &json!({"name": format!("User {i}"), "email": format!("u{i}@example.com")}),
        );
        assert_eq!(r.status, 201);
    }
    api.delete("/api/users/4");
    let mut seen = Vec::new();
    let mut path = "/api/users?limit=2".to_string();
    loop {
        let page = api.get(&path).json();
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|u| u["id"].as_u64().expect("id")),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![1, 2, 3, 5, 6, 7]);

    for bad in [
        "/api/users?limit=0",
        "/api/users?limit=101",
        "/api/users?limit=x",
        "/api/users?cursor=zzz",
    ] {
        let r = api.get(bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
}

#[test]
fn user_service_answers_directly_too() {
    let porto = Porto::start_default();
    let users = crate::harness::Client::new(porto.url("user-service"));
    assert_eq!(users.get("/users/2").json()["name"], "Bob Smith");
    assert_eq!(users.get("/healthz").json()["status"], "ok");
}

/// A name must show something, and show what it is: names of only
/// invisible characters, or with bidirectional overrides, are refused.
#[test]
fn invisible_and_spoofing_names_are_refused() {
    let porto = Porto::start_default();
    let api = porto.gateway();
    for (n, name) in [
        "\u{200B}\u{200D}",
        "\u{FEFF} \u{2060}",
        "Alice\u{202E}nosnhoJ",
    ]
    .into_iter()
    .enumerate()
    {
        let bad = api.post_json(
            "/api/users",
            &json!({"name": name, "email": format!("ghost{n}@example.com")}),
        );
        assert_eq!(
            (bad.status, bad.error_code().as_str()),
            (400, "validation_failed"),
            "{name:?}: {}",
            bad.body
        );
        assert!(bad.json()["error"]["details"]["name"].is_string());
        let renamed = api.patch_json("/api/users/1", &json!({"name": name}));
        assert_eq!(renamed.status, 400, "{name:?}: {}", renamed.body);
    }
    assert_eq!(api.get("/api/users/1").json()["name"], "Alice Johnson");
    let users = api.get("/api/users").json();
    assert_eq!(users["items"].as_array().map(Vec::len), Some(2), "{users}");
}
