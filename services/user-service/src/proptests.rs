//! Fuzzing of user input: every accepted name and email obeys the stored
//! invariants, every refusal names its field, nothing panics.

use proptest::prelude::*;
use service_kit::request::parse_json;

use crate::domain::{CreateUser, Email, NAME_MAX_CHARS, Name, PatchUser};

proptest! {
    #[test]
    fn accepted_names_are_trimmed_bounded_and_printable(raw in "\\PC{0,120}|[ \\t]{0,3}\\PC{0,8}[ \\t\\n]{0,3}|.{0,8}") {
        if let Ok(name) = Name::parse(&raw) {
            let name = name.into_inner();
            prop_assert_eq!(name.trim(), name.as_str());
            prop_assert!((1..=NAME_MAX_CHARS).contains(&name.chars().count()));
            prop_assert!(!name.chars().any(char::is_control));
            prop_assert_eq!(Name::parse(&name).map(Name::into_inner), Ok(name));
        }
    }

    #[test]
    fn accepted_emails_are_one_lower_case_spelling(
        raw in "\\PC{0,40}|[A-Za-z0-9._%+-]{0,20}@[A-Za-z0-9.-]{0,20}|[a-z]{1,8}@[a-z]{1,8}\\.[A-Za-z]{2,4}",
    ) {
        if let Ok(email) = Email::parse(&raw) {
            let email = email.into_inner();
            prop_assert!(email.is_ascii() && email.len() <= 254);
            prop_assert_eq!(email.to_ascii_lowercase(), email.clone());
            prop_assert_eq!(email.matches('@').count(), 1);
            prop_assert_eq!(Email::parse(&email.to_ascii_uppercase()).map(Email::into_inner), Ok(email));
        }
    }

    #[test]
    fn any_create_body_is_a_user_or_a_named_400(name in "\\PC{0,12}", email in "\\PC{0,12}|[a-z]{1,5}@[a-z]{1,5}\\.com", extra in proptest::option::of("[a-z]{1,6}")) {
        let mut body = serde_json::json!({"name": name, "email": email});
        if let Some(field) = extra {
            body[field] = serde_json::Value::Bool(true);
        }
        let outcome = parse_json::<CreateUser>(body.to_string().as_bytes()).and_then(CreateUser::validate);
        if let Err(e) = outcome {
            prop_assert_eq!(e.status, 400);
            prop_assert!(e.details.is_some_and(|d| !d.is_empty()), "{}", e.message);
        }
    }

    #[test]
    fn any_patch_body_is_a_patch_or_400(body in "\\PC{0,40}|\\{\"(name|email)\": ?(null|\"\\PC{0,8}\"|1)\\}") {
        if let Err(e) = parse_json::<PatchUser>(body.as_bytes()).and_then(PatchUser::validate) {
            prop_assert_eq!(e.status, 400);
        }
    }
}
