//! How an exporter reaches its collector: TLS from PEM files, headers, compression and timeout,
//! and the words for what went wrong. The PEM files are read and checked when the exporter is
//! made, so a wrong path or a file of the wrong kind stops `sliq run` (and `sliq validate`) at
//! once, naming the key or variable that gave it; only what needs the collector (is its
//! certificate signed by that CA, does it accept ours) is left to the first export.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::export::ExportError;

/// Everything about the connection, resolved (by the caller) from the spec and the environment.
#[derive(Debug)]
pub struct Transport {
    pub timeout: Duration,
    pub headers: Headers,
    pub gzip: bool,
    /// For an `https://` collector; `None` for plaintext.
    pub tls: Option<TlsFiles>,
}

/// A file and the key or variable that named it (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemFile {
    pub path: PathBuf,
    pub origin: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA that signed the collector's certificate; `None`: the system's roots.
    pub ca: Option<PemFile>,
    /// This client's certificate chain and private key (mTLS).
    pub client: Option<(PemFile, PemFile)>,
}

/// Headers (gRPC metadata) sent with every request. Values are marked sensitive, so the `http`
/// crate prints them as `Sensitive` in any `Debug` form.
#[derive(Debug, Clone, Default)]
pub struct Headers(HeaderMap);

impl Headers {
    /// Adds a header; a name or value HTTP cannot carry is refused naming the header and where it
    /// came from, never its value.
    pub fn insert(
        &mut self,
        name: &str,
        value: &str,
        origin: &'static str,
    ) -> Result<(), ExportError> {
        let bad = |what: &'static str| ExportError::BadHeader {
            name: name.to_owned(),
            origin,
            what,
        };
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| bad("its name is not a valid HTTP header name"))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            bad("its value holds characters HTTP headers cannot carry (line breaks, non-ASCII)")
        })?;
        value.set_sensitive(true);
        self.0.append(header, value);
        Ok(())
    }

    pub(crate) fn map(&self) -> &HeaderMap {
        &self.0
    }
}

/// PEM bytes checked to be what they claim, ready for tonic's and reqwest's TLS builders.
pub(crate) struct TlsMaterial {
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// The certificate chain followed by the key (reqwest's `Identity::from_pem` form), and the
    /// two apart for tonic.
    pub(crate) client: Option<ClientPem>,
    pub(crate) files: TlsFiles,
}

pub(crate) struct ClientPem {
    pub(crate) cert: Vec<u8>,
    pub(crate) key: Vec<u8>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key bytes never go into a message: only the files are shown.
        f.debug_struct("TlsMaterial")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Reads and checks the files: certificates parse as X.509, the key parses, and the key
    /// belongs to the client certificate.
    pub(crate) fn load(files: &TlsFiles) -> Result<Self, ExportError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ExportError::Tls(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        let ca_pem = match &files.ca {
            Some(ca) => {
                let (pem, certs) = read_certificates(ca)?;
                for (i, cert) in certs.into_iter().enumerate() {
                    roots.add(cert).map_err(|e| {
                        tls_file(
                            ca,
                            format!(
                                "certificate {} is not a usable CA certificate ({})",
                                i + 1,
                                rustls_words(&e)
                            ),
                        )
                    })?;
                }
                Some(pem)
            }
            None => None,
        };
        let builder = builder.with_root_certificates(roots);
        let client = match &files.client {
            Some((cert_file, key_file)) => {
                let (cert, chain) = read_certificates(cert_file)?;
                let key = read(key_file)?;
                let private = PrivateKeyDer::from_pem_slice(&key).map_err(|_| {
                    tls_file(
                        key_file,
                        "holds no PEM private key (-----BEGIN PRIVATE KEY-----, or an RSA or EC \
                         key)"
                            .into(),
                    )
                })?;
                builder.with_client_auth_cert(chain, private).map_err(|e| {
                    ExportError::TlsFile {
                        origin: key_file.origin,
                        path: key_file.path.clone(),
                        problem: format!(
                            "does not go with the certificate in {} {} ({}); give the key that \
                             belongs to that certificate",
                            cert_file.origin,
                            cert_file.path.display(),
                            rustls_words(&e)
                        ),
                    }
                })?;
                Some(ClientPem { cert, key })
            }
            None => None,
        };
        Ok(TlsMaterial {
            ca_pem,
            client,
            files: files.clone(),
        })
    }
}

fn tls_file(file: &PemFile, problem: String) -> ExportError {
    ExportError::TlsFile {
        origin: file.origin,
        path: file.path.clone(),
        problem,
    }
}

fn read(file: &PemFile) -> Result<Vec<u8>, ExportError> {
    std::fs::read(&file.path).map_err(|e| {
        tls_file(
            file,
            format!("cannot be read ({e}); check the path and its permissions"),
        )
    })
}

fn read_certificates(
    file: &PemFile,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), ExportError> {
    let pem = read(file)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_file(file, format!("is not valid PEM ({e})")))?;
    if certs.is_empty() {
        return Err(tls_file(
            file,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok((pem, certs))
}

/// What a TLS failure means for the person who configured it, when the error chain holds one.
pub(crate) fn diagnose_tls(
    error: &(dyn StdError + 'static),
    files: Option<&TlsFiles>,
) -> Option<String> {
    let tls = chain(error)
        .find_map(|e| {
            e.downcast_ref::<rustls::Error>().or_else(|| {
                e.downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            })
        })
        .cloned()
        .or_else(|| rustls_error_in_words(error))?;
    let ca = match files.and_then(|f| f.ca.as_ref()) {
        Some(ca) => format!("check {} ({})", ca.origin, ca.path.display()),
        None => "check export.otlp.tls.ca_file (not set: the system's roots were used)".into(),
    };
    let client = match files.and_then(|f| f.client.as_ref()) {
        Some((cert, key)) => format!(
            "check {} ({}) and {} ({})",
            cert.origin,
            cert.path.display(),
            key.origin,
            key.path.display()
        ),
        None => "check export.otlp.tls.cert_file and key_file (not set: no client certificate \
                 was offered)"
            .into(),
    };
    Some(match &tls {
        rustls::Error::InvalidCertificate(e) => format!(
            "certificate verify failed: the collector's certificate {}; {ca}",
            certificate_words(e)
        ),
        rustls::Error::AlertReceived(alert) => {
            use rustls::AlertDescription as A;
            match alert {
                A::CertificateRequired => format!(
                    "the collector requires a client certificate and none was accepted; {client}"
                ),
                A::BadCertificate
                | A::UnknownCA
                | A::CertificateUnknown
                | A::UnsupportedCertificate
                | A::CertificateExpired
                | A::CertificateRevoked
                | A::AccessDenied
                | A::DecryptError => {
                    format!("the collector refused this client's certificate; {client}")
                }
                _ => "the collector ended the TLS handshake; check that it serves TLS on this \
                      port and accepts this client"
                    .into(),
            }
        }
        other => format!("TLS failed: {}", rustls_words(other)),
    })
}

/// The rustls error in an error chain that kept only rustls's words (h2 keeps just the text of an
/// I/O error on a connection it drives, and reqwest's connector boxes it away): "received fatal
/// alert: <name>" (a TLS 1.3 collector refuses a client certificate with an alert after the
/// handshake) or "invalid peer certificate: <name>". rustls writes both names with `Debug`, so
/// they are compared in that form.
fn rustls_error_in_words(error: &(dyn StdError + 'static)) -> Option<rustls::Error> {
    use rustls::AlertDescription as A;
    use rustls::CertificateError as C;
    let words = chain_words(error);
    let name_after = |marker: &str| {
        words
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_alphanumeric()).next())
            .map(str::to_owned)
    };
    if let Some(name) = name_after("received fatal alert: ") {
        return [
            A::CertificateRequired,
            A::BadCertificate,
            A::UnknownCA,
            A::CertificateUnknown,
            A::UnsupportedCertificate,
            A::CertificateExpired,
            A::CertificateRevoked,
            A::AccessDenied,
            A::DecryptError,
            A::HandshakeFailure,
        ]
        .into_iter()
        .find(|alert| format!("{alert:?}") == name)
        .map(rustls::Error::AlertReceived);
    }
    let name = name_after("invalid peer certificate: ")?;
    let certificate = [
        C::UnknownIssuer,
        C::BadSignature,
        C::NotValidForName,
        C::Expired,
        C::NotValidYet,
        C::Revoked,
        C::BadEncoding,
    ]
    .into_iter()
    .find(|e| format!("{e:?}") == name)
    .unwrap_or(C::ApplicationVerificationFailure);
    Some(rustls::Error::InvalidCertificate(certificate))
}

fn chain<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&e| e.source())
}

/// Every message of an error chain, once each, joined by `: `.
pub(crate) fn chain_words(error: &(dyn StdError + 'static)) -> String {
    let mut out: Vec<String> = Vec::new();
    for e in chain(error) {
        let text = e.to_string();
        if !text.is_empty() && !out.iter().any(|seen| seen.contains(&text)) {
            out.push(text);
        }
    }
    out.join(": ")
}

fn certificate_words(e: &rustls::CertificateError) -> &'static str {
    use rustls::CertificateError as C;
    match e {
        // A CA of the same name that did not sign it shows as a bad signature.
        C::UnknownIssuer | C::BadSignature => "is not signed by a trusted CA",
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "is not issued for this host name or IP address"
        }
        C::Expired | C::ExpiredContext { .. } => "has expired",
        C::NotValidYet | C::NotValidYetContext { .. } => "is not valid yet",
        C::Revoked => "is revoked",
        C::BadEncoding => "cannot be decoded",
        _ => "was refused",
    }
}

/// rustls's own wording, which is readable except for the certificate cases mapped above.
fn rustls_words(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => certificate_words(c).to_owned(),
        rustls::Error::InconsistentKeys(_) => "the key does not match the certificate".into(),
        other => other.to_string(),
    }
}
