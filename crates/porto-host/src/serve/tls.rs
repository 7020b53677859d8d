//! TLS termination for a service's listeners (rustls, TLS 1.2 and 1.3).
//!
//! A service's certificate and key are read when the stack starts, where
//! a missing or unusable file is an error naming it, and again whenever
//! either file's bytes change: Kubernetes rotates a mounted Secret in
//! place, and cert-manager or an operator replaces files under a running
//! process. A reload is only the certificate later handshakes get; open
//! connections keep theirs and are never dropped for it. A file that
//! turns unusable keeps the last good certificate in service, said once.
//!
//! ALPN offers `h2` before `http/1.1`; a client that asks for neither
//! speaks HTTP/1.1.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::error::HostError;
use crate::policy::service::TlsFiles;

/// How often the files are read back to see if they changed: a rotated
/// certificate is in service within this.
pub(crate) const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// How long a client has to finish its handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One service's TLS: the acceptor its listeners hand connections to, and
/// the certificate that acceptor presents, swapped on reload.
pub(crate) struct Terminator {
    pub acceptor: TlsAcceptor,
    certificate: Arc<Current>,
    files: TlsFiles,
    service: Arc<str>,
}

impl Terminator {
    /// Reads `files`; an error names the file that is missing or unusable.
    pub(crate) fn load(service: &str, files: &TlsFiles) -> Result<Self, HostError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let read = Read::from(files).map_err(|why| HostError::Tls {
            service: service.to_string(),
            why,
        })?;
        let key = read
            .certified(files, &provider)
            .map_err(|why| HostError::Tls {
                service: service.to_string(),
                why,
            })?;
        let certificate = Arc::new(Current {
            key: RwLock::new(Arc::new(key)),
            fingerprint: RwLock::new(read.fingerprint),
            provider: provider.clone(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| HostError::Tls {
                service: service.to_string(),
                why: format!("TLS setup: {e}"),
            })?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
            files: files.clone(),
            service: Arc::from(service),
        })
    }

    /// Reads the files back every [`RELOAD_EVERY`] until `shutdown`, and
    /// serves the new certificate from the first handshake after a change.
    pub(crate) async fn reload_on_change(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut said: Option<String> = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep(RELOAD_EVERY) => {}
                _ = shutdown.changed() => return,
            }
            match self.reload() {
                Ok(false) => {}
                Ok(true) => {
                    said = None;
                    tracing::info!(service = %self.service, cert = %self.files.cert.display(), "TLS certificate reloaded");
                }
                // Mid-rotation the two files may briefly disagree; the
                // next read sees both. Said once per distinct problem.
                Err(why) if said.as_ref() != Some(&why) => {
                    tracing::warn!(service = %self.service, error = %why, "TLS certificate not reloaded; the previous one stays in service");
                    said = Some(why);
                }
                Err(_) => {}
            }
        }
    }

    /// Whether a new certificate went into service.
    fn reload(&self) -> Result<bool, String> {
        let read = Read::from(&self.files)?;
        let current = &self.certificate;
        if *current
            .fingerprint
            .read()
            .unwrap_or_else(|p| p.into_inner())
            == read.fingerprint
        {
            return Ok(false);
        }
        let key = read.certified(&self.files, &current.provider)?;
        *current.key.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        *current
            .fingerprint
            .write()
            .unwrap_or_else(|p| p.into_inner()) = read.fingerprint;
        Ok(true)
    }
}

/// The certificate in service.
struct Current {
    key: RwLock<Arc<CertifiedKey>>,
    /// Of the bytes `key` was made from: a reload that reads the same
    /// bytes parses nothing.
    fingerprint: RwLock<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Current").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// The two files' bytes as read once.
struct Read {
    cert: Vec<u8>,
    key: Vec<u8>,
    fingerprint: [u8; 32],
}

impl Read {
    fn from(files: &TlsFiles) -> Result<Self, String> {
        let cert = read(&files.cert, "certificate")?;
        let key = read(&files.key, "private key")?;
        let mut hash = Sha256::new();
        hash.update(&cert);
        hash.update([0]);
        hash.update(&key);
        Ok(Self {
            cert,
            key,
            fingerprint: hash.finalize().into(),
        })
    }

    fn certified(
        &self,
        files: &TlsFiles,
        provider: &CryptoProvider,
    ) -> Result<CertifiedKey, String> {
        let (cert_file, key_file) = (files.cert.display(), files.key.display());
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("certificate {cert_file}: not PEM certificates: {e}"))?;
        if chain.is_empty() {
            return Err(format!(
                "certificate {cert_file}: no CERTIFICATE in it (PEM expected)"
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key)
            .map_err(|e| format!("private key {key_file}: no PEM private key in it: {e}"))?;
        CertifiedKey::from_der(chain, key, provider)
            .map_err(|e| format!("certificate {cert_file} with key {key_file}: {e}"))
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}
