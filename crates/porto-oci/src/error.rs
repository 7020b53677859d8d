//! The one error type of porto-oci: what went wrong, and with what file,
//! blob or registry.

use std::path::PathBuf;

pub type Result<T, E = OciError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Not a usable `name[:tag]` / `registry/path[:tag]`.
    #[error("{0}")]
    Reference(String),
    #[error("no image {reference} in {} (build it with `porto image build`)", store.display())]
    NotFound { reference: String, store: PathBuf },
    /// An index, manifest, blob or layer that is not what an image must be.
    #[error("{0}")]
    Malformed(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("tar archive")]
    Tar(#[from] std::io::Error),
    #[error("encoding JSON")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Spec(#[from] oci_spec::OciSpecError),
    #[error("{context}")]
    Registry {
        context: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
}

impl OciError {
    pub(crate) fn io(context: String) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { context, source }
    }

    pub(crate) fn json(context: String) -> impl FnOnce(serde_json::Error) -> Self {
        move |source| Self::Json { context, source }
    }

    pub(crate) fn registry(
        context: String,
    ) -> impl FnOnce(oci_client::errors::OciDistributionError) -> Self {
        move |source| Self::Registry { context, source }
    }

    pub(crate) fn malformed(what: &str) -> Self {
        Self::Malformed(what.to_string())
    }
}
