//! Users and the rules their fields obey.
//!
//! Input is parsed into [`Name`] and [`Email`], which can only be built by
//! their validators, so a `User` in the store always satisfies the API contract (openapi.yaml, README "API").
//! All rules are checked together and reported per field, so a client
//! fixes every mistake in one round trip.

use serde::{Deserialize, Serialize};
use service_kit::ApiError;

pub const NAME_MAX_CHARS: usize = 100;
/// RFC 5321 limits: 64 octets of local part, 254 of address.
const EMAIL_MAX_LEN: usize = 254;
const LOCAL_MAX_LEN: usize = 64;
const LABEL_MAX_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Name {
    /// Trimmed, 1..=100 characters, at least one of them visible, no
    /// control characters and no bidirectional overrides (which make a
    /// name display as another).
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty");
        }
        if trimmed.chars().count() > NAME_MAX_CHARS {
            return Err("must be at most 100 characters");
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        if trimmed.chars().any(is_bidi_control) {
            return Err("must not contain bidirectional control characters");
        }
        if trimmed
            .chars()
            .all(|c| c.is_whitespace() || is_invisible(c))
        {
            return Err("must contain a visible character");
        }
        Ok(Self(trimmed.to_string()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Embeddings, overrides and isolates (U+202A..=U+202E, U+2066..=U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that render as nothing: zero-width spaces and joiners,
/// direction marks, word joiners and invisible operators, the byte-order
/// mark, the soft hyphen, and the Hangul and braille fillers.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
    )
}

impl Email {
    /// A plain `local@domain.tld` address, ASCII only, stored lower-case.
    ///
    /// Quoted local parts, IP-literal domains and internationalised
    /// addresses are refused: they are legal but rare, and each is a way to
    /// make two spellings of one mailbox look distinct to the uniqueness
    /// check.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const INVALID: &str = "must be an email address like name@example.com";
        let email = raw.trim().to_ascii_lowercase();
        if email.is_empty() || email.len() > EMAIL_MAX_LEN || !email.is_ascii() {
            return Err(INVALID);
        }
        let (local, domain) = email.split_once('@').ok_or(INVALID)?;
        if !valid_local(local) || !valid_domain(domain) {
            return Err(INVALID);
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

fn valid_local(local: &str) -> bool {
    const SPECIALS: &[u8] = b"!#$%&'*+/=?^_`{|}~-";
    !local.is_empty()
        && local.len() <= LOCAL_MAX_LEN
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || SPECIALS.contains(&b))
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= LABEL_MAX_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// `POST /users` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    pub email: String,
}

/// `PATCH /users/{id}` body; absent and `null` both mean "leave as is".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// A create request that passed every rule.
#[derive(Debug, PartialEq, Eq)]
pub struct ValidUser {
    pub name: Name,
    pub email: Email,
}

/// A patch that passed every rule and changes at least one field.
#[derive(Debug, PartialEq, Eq)]
pub struct ValidPatch {
    pub name: Option<Name>,
    pub email: Option<Email>,
}

fn validation_failed() -> ApiError {
    ApiError::bad_request("validation_failed", "Some fields are invalid.")
}

fn field_errors<const N: usize>(fields: [(&str, Option<&'static str>); N]) -> ApiError {
    fields
        .into_iter()
        .filter_map(|(field, reason)| Some((field, reason?)))
        .fold(validation_failed(), |err, (field, reason)| {
            err.with_detail(field, reason)
        })
}

impl CreateUser {
    pub fn validate(self) -> Result<ValidUser, ApiError> {
        let name = Name::parse(&self.name);
        let email = Email::parse(&self.email);
        match (name, email) {
            (Ok(name), Ok(email)) => Ok(ValidUser { name, email }),
            (name, email) => Err(field_errors([("name", name.err()), ("email", email.err())])),
        }
    }
}

impl PatchUser {
    pub fn validate(self) -> Result<ValidPatch, ApiError> {
        if self.name.is_none() && self.email.is_none() {
            return Err(validation_failed().with_detail("body", "give `name`, `email` or both"));
        }
        let name = self.name.as_deref().map(Name::parse).transpose();
        let email = self.email.as_deref().map(Email::parse).transpose();
        match (name, email) {
            (Ok(name), Ok(email)) => Ok(ValidPatch { name, email }),
            (name, email) => Err(field_errors([("name", name.err()), ("email", email.err())])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_kit::request::parse_json;

    #[test]
    fn name_is_trimmed() {
        assert_eq!(
            Name::parse("  Alice Johnson \n").map(Name::into_inner),
            Ok("Alice Johnson".into())
        );
    }

    #[test]
    fn name_bounds_count_characters_not_bytes() {
        assert!(Name::parse(&"é".repeat(100)).is_ok());
        assert!(Name::parse(&"é".repeat(101)).is_err());
        assert!(Name::parse(&"a".repeat(100)).is_ok());
        assert!(Name::parse(&"a".repeat(101)).is_err());
    }

    #[test]
    fn empty_and_blank_names_are_rejected() {
        assert!(Name::parse("").is_err());
        assert!(Name::parse("   \t ").is_err());
    }

    #[test]
    fn invisible_and_spoofing_names_are_rejected() {
        for bad in [
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}\u{FEFF}",
            " \u{2060} \u{00AD} ",
            "\u{3164}\u{3164}",
            "Alice\u{202E}nosnhoJ",
            "\u{2066}Bob\u{2069}",
        ] {
            assert!(Name::parse(bad).is_err(), "{bad:?}");
        }
        // Joiners inside visible text are how some scripts and emoji work.
        assert!(Name::parse("👩\u{200D}💻 Dev").is_ok());
    }

    #[test]
    fn unicode_names_are_accepted() {
        for n in [
            "Zoë Ångström",
            "李小龙",
            "Ωμέγα",
            "😀 Smiley",
            "Nguyễn Văn A",
        ] {
            assert!(Name::parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn control_characters_are_rejected() {
        assert!(Name::parse("Bob\u{0}Smith").is_err());
        assert!(Name::parse("Bob\u{7}").is_err());
        assert!(Name::parse("a\nb").is_err());
    }

    #[test]
    fn email_is_lowercased_and_trimmed() {
        assert_eq!(
            Email::parse(" Alice@Example.COM ").map(Email::into_inner),
            Ok("alice@example.com".into())
        );
    }

    #[test]
    fn good_emails() {
        for e in [
            "a@b.co",
            "first.last@sub.example.org",
            "x+tag@example.com",
            "o'neil@example.ie",
            "a-b@my-host.example",
        ] {
            assert!(Email::parse(e).is_ok(), "{e}");
        }
    }

    #[test]
    fn bad_emails() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b".repeat(250));
        for e in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            ".a@b.com",
            "a.@b.com",
            "a..b@c.com",
            "a@-b.com",
            "a@b-.com",
            "a@b..com",
            "a@b.c0m",
            "ü@b.com",
            "a@bü.com",
            "\"q\"@b.com",
            "a@[127.0.0.1]",
            &long_local,
            &long_total,
        ] {
            assert!(Email::parse(e).is_err(), "{e}");
        }
    }

    #[test]
    fn create_reports_every_bad_field() {
        let err = CreateUser {
            name: " ".into(),
            email: "nope".into(),
        }
        .validate()
        .expect_err("invalid");
        let details = err.details.expect("details");
        assert!(details.contains_key("name") && details.contains_key("email"));
    }

    #[test]
    fn create_from_json_rejects_unknown_and_wrong_types() {
        assert!(
            parse_json::<CreateUser>(br#"{"name":"A","email":"a@b.co","admin":true}"#).is_err()
        );
        assert!(parse_json::<CreateUser>(br#"{"name":5,"email":"a@b.co"}"#).is_err());
        assert!(parse_json::<CreateUser>(br#"{"name":"A"}"#).is_err());
        assert!(parse_json::<CreateUser>(br#"{"name":null,"email":"a@b.co"}"#).is_err());
    }

    #[test]
    fn empty_patch_is_rejected() {
        let p = parse_json::<PatchUser>(b"{}").expect("parses");
        assert_eq!(p.validate().map_err(|e| e.code), Err("validation_failed"));
        let p = parse_json::<PatchUser>(br#"{"name":null}"#).expect("parses");
        assert!(p.validate().is_err());
    }

    #[test]
    fn patch_validates_only_given_fields() {
        let p = parse_json::<PatchUser>(br#"{"email":"NEW@Example.com"}"#).expect("parses");
        let v = p.validate().expect("valid");
        assert_eq!(v.name, None);
        assert_eq!(
            v.email.map(Email::into_inner),
            Some("new@example.com".into())
        );
    }

    #[test]
    fn patch_with_bad_name_names_the_field() {
        let p = parse_json::<PatchUser>(br#"{"name":""}"#).expect("parses");
        let e = p.validate().expect_err("invalid");
        assert!(e.details.expect("details").contains_key("name"));
    }
}
