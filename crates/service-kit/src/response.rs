//! Responses as handlers build them: status, headers, buffered body.

use bytes::Bytes;
use serde::Serialize;

use crate::error::ApiError;

#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl ApiResponse {
    /// A JSON response. Serialising our own response types cannot fail; if
    /// it ever did, the client gets a 500 rather than a trap.
    pub fn json<T: Serialize>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.into(),
            },
            Err(e) => ApiError::internal(format!("response serialisation failed: {e}")).into(),
        }
    }

    pub fn ok<T: Serialize>(value: &T) -> Self {
        Self::json(200, value)
    }

    pub fn created<T: Serialize>(location: String, value: &T) -> Self {
        Self::json(201, value).with_header("location", location)
    }

    pub fn no_content() -> Self {
        Self {
            status: 204,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl From<ApiError> for ApiResponse {
    fn from(err: ApiError) -> Self {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        headers.extend(
            err.headers
                .iter()
                .map(|(n, v)| ((*n).to_string(), v.clone())),
        );
        Self {
            status: err.status,
            headers,
            body: err.to_json().into(),
        }
    }
}
