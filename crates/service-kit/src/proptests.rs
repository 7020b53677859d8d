//! Fuzzing, as property tests, of every parser that sees client input:
//! whatever arrives, the answer is a value or a 4xx error, never a panic.

use http::Method;
use proptest::prelude::*;
use serde_json::Value;

use crate::pagination::{PageRequest, decode_cursor, encode_cursor, parse_limit};
use crate::request::{ApiRequest, has_json_content_type, parse_json};
use crate::routing::parse_id;

proptest! {
    #[test]
    fn cursors_round_trip(id in any::<u64>()) {
        prop_assert_eq!(decode_cursor("orders", &encode_cursor("orders", id)).ok(), Some(id));
        prop_assert!(decode_cursor("users", &encode_cursor("orders", id)).is_err());
    }

    #[test]
    fn any_cursor_text_is_an_id_or_400(raw in "\\PC{0,48}|v2:users:[0-9]{0,24}") {
        if let Err(e) = decode_cursor("users", &raw) {
            prop_assert_eq!(e.status, 400);
        }
    }

    #[test]
    fn ids_are_positive_decimals_or_400(raw in "\\PC{0,24}|[0-9]{1,24}") {
        match parse_id(&raw, "user") {
            Ok(id) => {
                prop_assert!(id > 0);
                prop_assert_eq!(raw.trim_start_matches('0'), id.to_string());
            }
            Err(e) => prop_assert_eq!((e.status, e.code), (400, "invalid_id")),
        }
    }

    #[test]
    fn limits_are_1_to_100_or_400(raw in "\\PC{0,8}|[0-9]{1,4}") {
        match parse_limit(&raw) {
            Ok(limit) => prop_assert!((1..=100).contains(&limit)),
            Err(e) => prop_assert_eq!(e.status, 400),
        }
    }

    #[test]
    fn any_query_string_is_a_page_or_400(query in "[a-z=&%0-9A-F+;_.~-]{0,64}|limit=[0-9]{1,3}&cursor=\\PC{0,16}") {
        let request = ApiRequest::new(Method::GET, &format!("/users?{query}"));
        if let Err(e) = PageRequest::from_request(&request, "users") {
            prop_assert_eq!(e.status, 400);
        }
    }

    #[test]
    fn any_body_is_json_or_400(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = parse_json::<Value>(&body) {
            prop_assert_eq!(e.status, 400);
        }
    }

    #[test]
    fn json_shaped_bodies_of_the_wrong_type_are_400(body in json_text()) {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Shape {
            name: String,
            count: u32,
        }
        if let Err(e) = parse_json::<Shape>(body.as_bytes()) {
            prop_assert_eq!(e.status, 400);
            prop_assert!(e.code == "invalid_json" || e.code == "validation_failed", "{}", e.code);
        }
    }

    #[test]
    fn any_content_type_is_judged_without_panic(value in "[ -~]{0,64}") {
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(http::header::CONTENT_TYPE, value);
            let _ = has_json_content_type(&headers);
        }
    }
}

/// Arbitrary JSON documents, as text.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("name|count|other|\\PC{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .prop_map(|v| v.to_string())
}
