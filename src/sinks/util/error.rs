//! Why a sink cannot be set up from its settings: TLS files, secrets, the HTTP client, a path
//! template. Each names the key and file; `validate` and start-up report it and the sink does
//! not start (the rest of the pipeline is refused with it).

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("tls.crt_file and tls.key_file go together")]
    TlsUnpaired,
    /// A TLS file that cannot be read or does not hold what it should.
    #[error("tls.{what} {path:?}: {detail}")]
    TlsFile {
        what: &'static str,
        path: String,
        detail: String,
    },
    #[error("tls.crt_file/key_file: {0}")]
    TlsIdentity(String),
    #[error("tls client certificate: {0}")]
    TlsClientCert(String),
    #[error("system certificate roots: {0}")]
    SystemRoots(String),
    #[error("building the HTTP client: {0}")]
    HttpClient(String),
    #[error("give `{what}` or `{what}_file`, not both")]
    SecretTwice { what: String },
    #[error("{what}_file {path:?}: {source}")]
    SecretFile {
        what: String,
        path: String,
        source: std::io::Error,
    },
    #[error("{what}_file {path:?} is empty")]
    SecretEmpty { what: String, path: String },
    #[error("{what} or {what}_file is required")]
    SecretMissing { what: &'static str },
    /// A path template that does not parse (the reason quotes it).
    #[error("{reason}")]
    Template { template: String, reason: String },
}
