//! TLS settings every network sink takes (`tls.ca_file`, `tls.crt_file`, `tls.key_file`,
//! `tls.verify`), applied to the HTTP client (reqwest, rustls) or to a raw TLS stream (syslog).
//! System roots are used unless a CA file is given; turning verification off is logged.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde::Deserialize;
use tokio_rustls::rustls;

use super::error::SetupError;

fn d_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust (instead of the system's for raw TLS; in
    /// addition to them for HTTP).
    pub ca_file: Option<String>,
    /// Client certificate and key (PEM), for mutual TLS.
    pub crt_file: Option<String>,
    pub key_file: Option<String>,
    /// Verify the server's certificate and name.
    #[serde(default = "d_true")]
    pub verify: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca_file: None,
            crt_file: None,
            key_file: None,
            verify: true,
        }
    }
}

fn read(what: &'static str, path: &str) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|e| bad(what, path, e))
}

fn bad(what: &'static str, path: &str, detail: impl std::fmt::Display) -> SetupError {
    SetupError::TlsFile {
        what,
        path: path.into(),
        detail: detail.to_string(),
    }
}

impl TlsConfig {
    /// The keys go together and the files are there and hold what they should (so that
    /// `validate` and start-up say so, not the first connection).
    pub fn check(&self) -> Result<(), SetupError> {
        if self.crt_file.is_some() != self.key_file.is_some() {
            return Err(SetupError::TlsUnpaired);
        }
        for (what, path) in [("ca_file", &self.ca_file), ("crt_file", &self.crt_file)] {
            if let Some(p) = path {
                let pem = read(what, p)?;
                let n = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(what, p, e))?
                    .len();
                if n == 0 {
                    return Err(bad(what, p, "no PEM certificate in it"));
                }
            }
        }
        if let Some(p) = &self.key_file {
            PrivateKeyDer::from_pem_slice(&read("key_file", p)?)
                .map_err(|e| bad("key_file", p, e))?;
        }
        Ok(())
    }

    fn warn_unverified(&self, sink: &str) {
        if !self.verify {
            tracing::warn!(
                sink,
                "tls.verify = false: the server's certificate is not checked; anyone on the path can read and change what is sent"
            );
        }
    }

    /// Apply to an HTTP client builder.
    pub fn apply(
        &self,
        sink: &str,
        mut b: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, SetupError> {
        self.check()?;
        if let Some(ca) = &self.ca_file {
            let certs = reqwest::Certificate::from_pem_bundle(&read("ca_file", ca)?)
                .map_err(|e| bad("ca_file", ca, e))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let (Some(crt), Some(key)) = (&self.crt_file, &self.key_file) {
            let mut pem = read("crt_file", crt)?;
            pem.push(b'\n');
            pem.extend(read("key_file", key)?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| SetupError::TlsIdentity(e.to_string()))?;
            b = b.identity(id);
        }
        self.warn_unverified(sink);
        Ok(b.tls_danger_accept_invalid_certs(!self.verify))
    }

    /// A rustls client configuration for a raw TLS stream.
    pub fn rustls(&self, sink: &str) -> Result<Arc<rustls::ClientConfig>, SetupError> {
        self.check()?;
        let builder = rustls::ClientConfig::builder();
        let builder = if !self.verify {
            self.warn_unverified(sink);
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(
                    rustls::crypto::CryptoProvider::get_default()
                        .cloned()
                        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())),
                )))
        } else if let Some(ca) = &self.ca_file {
            let mut roots = rustls::RootCertStore::empty();
            let pem = read("ca_file", ca)?;
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| bad("ca_file", ca, e))?;
                roots.add(c).map_err(|e| bad("ca_file", ca, e))?;
            }
            if roots.is_empty() {
                return Err(bad("ca_file", ca, "no certificate in it"));
            }
            builder.with_root_certificates(roots)
        } else {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| SetupError::SystemRoots(e.to_string()))?
        };
        let cfg = match (&self.crt_file, &self.key_file) {
            (Some(crt), Some(key)) => {
                let pem = read("crt_file", crt)?;
                let chain = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad("crt_file", crt, e))?;
                let key = PrivateKeyDer::from_pem_slice(&read("key_file", key)?)
                    .map_err(|e| bad("key_file", key, e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| SetupError::TlsClientCert(e.to_string()))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Arc::new(cfg))
    }
}

/// `tls.verify = false`: accept any certificate (signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
