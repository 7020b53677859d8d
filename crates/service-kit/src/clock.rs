//! Wall-clock timestamps in RFC 3339, UTC, millisecond precision.

use std::time::SystemTime;

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn looks_like_rfc3339_utc() {
        let t = super::now_rfc3339();
        assert!(humantime::parse_rfc3339(&t).is_ok(), "{t}");
        assert!(t.ends_with('Z'));
    }
}
