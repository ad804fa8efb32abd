//! TLS for `https://`/`wss://` gateways (Cloudflare serves only those): rustls
//! with the `ring` crypto provider and the Mozilla roots of `webpki-roots`
//! compiled in, so no system certificate store is read. One configuration
//! serves both the WebSocket upgrade and the HTTP calls; `http://`/`ws://`
//! base URLs never touch it.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::fmt;
use std::sync::{Arc, OnceLock};
use tokio_tungstenite::Connector;

/// Why a TLS configuration could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The PEM input is malformed.
    #[error("cannot read the PEM certificates: {0}")]
    Pem(String),
    /// The PEM input holds no `CERTIFICATE` block.
    #[error("no CERTIFICATE block in the PEM input")]
    NoCertificates,
    /// A certificate is not usable as a trust anchor.
    #[error("unusable root certificate: {0}")]
    Certificate(String),
}

/// The TLS client configuration of a watch or a producer; cheap to clone.
///
/// `Default` (= [`TlsConfig::webpki_roots`]) trusts the Mozilla roots, which is
/// what a Cloudflare deployment needs. [`TlsConfig::with_extra_roots_pem`] adds
/// a private CA (or a self-signed certificate) on top of them, and
/// [`TlsConfig::from_rustls`] takes a complete rustls configuration.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<ClientConfig>,
}

impl TlsConfig {
    /// The Mozilla roots (webpki-roots) and the `ring` provider; built once per process.
    #[must_use]
    pub fn webpki_roots() -> Self {
        static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
        let config = DEFAULT.get_or_init(|| Arc::new(build(mozilla_roots())));
        Self {
            config: Arc::clone(config),
        }
    }

    /// The Mozilla roots plus `certs` (DER), e.g. a private CA's certificate.
    pub fn with_extra_roots(
        certs: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, TlsError> {
        let mut roots = mozilla_roots();
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| TlsError::Certificate(e.to_string()))?;
        }
        Ok(Self {
            config: Arc::new(build(roots)),
        })
    }

    /// The Mozilla roots plus every `CERTIFICATE` block of `pem` (e.g. the
    /// contents of a `--ca-cert` file); other blocks (keys) are skipped.
    pub fn with_extra_roots_pem(pem: &[u8]) -> Result<Self, TlsError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem(e.to_string()))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificates);
        }
        Self::with_extra_roots(certs)
    }

    /// A complete rustls configuration (it must name its crypto provider, e.g.
    /// `ClientConfig::builder_with_provider`). Leave its ALPN list empty: the
    /// WebSocket upgrade and the HTTP calls both speak HTTP/1.1.
    #[must_use]
    pub fn from_rustls(config: Arc<ClientConfig>) -> Self {
        Self { config }
    }

    /// The rustls configuration in use.
    #[must_use]
    pub fn rustls(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// A reqwest builder using this configuration for `https://`.
    pub(crate) fn http(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().tls_backend_preconfigured(ClientConfig::clone(&self.config))
    }

    /// The connector for `wss://` (a `ws://` URL stays plain TCP whatever the connector).
    pub(crate) fn ws(&self) -> Connector {
        Connector::Rustls(Arc::clone(&self.config))
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self::webpki_roots()
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

fn mozilla_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn build(roots: RootCertStore) -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_input_is_checked() {
        assert_eq!(
            TlsConfig::with_extra_roots_pem(b"not pem").unwrap_err(),
            TlsError::NoCertificates
        );
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            TlsConfig::with_extra_roots_pem(broken),
            Err(TlsError::Pem(_))
        ));
        let default = TlsConfig::default();
        assert!(Arc::ptr_eq(
            default.rustls(),
            TlsConfig::webpki_roots().rustls()
        ));
        assert!(default.rustls().alpn_protocols.is_empty());
    }
}
