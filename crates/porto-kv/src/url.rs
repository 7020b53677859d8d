//! Backend URLs: the driver's own URL plus porto's `namespace` parameter.
//!
//! `redis://host:6379/?namespace=shop` and
//! `postgres://app@db/microservices?namespace=shop` keep several
//! applications (or test runs) apart on one server. The parameter is
//! removed before the URL reaches the driver, which would reject it.

/// The URL without `namespace`, and the namespace (default `default`).
pub fn split_namespace(url: &str) -> Result<(String, String), String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => return Ok((url.to_string(), "default".to_string())),
    };
    let mut namespace = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("namespace", value)) => namespace = Some(value.to_string()),
            _ => rest.push(pair),
        }
    }
    let namespace = namespace.unwrap_or_else(|| "default".to_string());
    let valid = !namespace.is_empty()
        && namespace.len() <= 40
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(format!("namespace {namespace:?}: use 1 to 40 of [a-z0-9_]"));
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, namespace))
}

#[cfg(test)]
mod tests {
    use super::split_namespace;

    #[test]
    fn namespace_is_taken_out() {
        assert_eq!(
            split_namespace("redis://h:6379"),
            Ok(("redis://h:6379".into(), "default".into()))
        );
        assert_eq!(
            split_namespace("redis://h/?namespace=shop"),
            Ok(("redis://h/".into(), "shop".into()))
        );
        assert_eq!(
            split_namespace("postgres://a@h/db?sslmode=disable&namespace=t_1"),
            Ok(("postgres://a@h/db?sslmode=disable".into(), "t_1".into()))
        );
    }

    #[test]
    fn odd_namespaces_are_refused() {
        for bad in [
            "redis://h/?namespace=",
            "redis://h/?namespace=A",
            "redis://h/?namespace=a;drop",
        ] {
            assert!(split_namespace(bad).is_err(), "{bad}");
        }
    }
}
