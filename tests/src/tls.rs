//! A throwaway certificate authority for one test: a CA, a server certificate for `127.0.0.1` and
//! `localhost`, and a client certificate, written as PEM files to a temporary folder. TLS tests then
//! run real handshakes (broker, collector) without any key material kept in the repository.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tempfile::TempDir;

/// The PEM files of one test CA; removed with it.
#[derive(Debug)]
pub struct TestCa {
    dir: TempDir,
    /// The CA certificate clients and servers trust.
    pub ca_cert: PathBuf,
    /// The server's certificate (SAN `IP:127.0.0.1`, `DNS:localhost`) and its key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate for mutual TLS (common name `sliq-test-client`) and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestCa {
    /// A fresh CA; two calls give two CAs that do not trust each other (for "unknown CA" tests).
    pub fn new() -> anyhow::Result<TestCa> {
        let dir = tempfile::tempdir()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "sliq test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let mut server = CertificateParams::new(vec!["localhost".to_owned()])?;
        server
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate()?;
        let server_cert = server.signed_by(&server_key, &ca)?;

        let mut client = CertificateParams::new(Vec::<String>::new())?;
        client
            .distinguished_name
            .push(DnType::CommonName, "sliq-test-client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate()?;
        let client_cert = client.signed_by(&client_key, &ca)?;

        let write = |name: &str, pem: &str| -> anyhow::Result<PathBuf> {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        Ok(TestCa {
            ca_cert: write("ca.pem", &ca.pem())?,
            server_cert: write("server.pem", &server_cert.pem())?,
            server_key: write("server.key", &server_key.serialize_pem())?,
            client_cert: write("client.pem", &client_cert.pem())?,
            client_key: write("client.key", &client_key.serialize_pem())?,
            dir,
        })
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What a server that requires client certificates of this CA serves with.
    pub fn server_tls(&self) -> anyhow::Result<ServerTls> {
        Ok(ServerTls {
            cert_pem: pem(&self.server_cert)?,
            key_pem: pem(&self.server_key)?,
            client_ca_pem: pem(&self.ca_cert)?,
        })
    }

    /// The client key encrypted with `password` (PKCS#8, AES-256-CBC), written by OpenSSL's own
    /// command-line tool, as an operator would make one; returns its path.
    pub fn encrypted_client_key(&self, password: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join("client-encrypted.key");
        let out = std::process::Command::new("openssl")
            .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in"])
            .arg(&self.client_key)
            .arg("-out")
            .arg(&path)
            .args(["-passout", "env:SLIQ_TEST_KEY_PASSWORD"])
            .env("SLIQ_TEST_KEY_PASSWORD", password)
            .output()
            .context("running openssl (install the openssl package)")?;
        anyhow::ensure!(
            out.status.success(),
            "openssl pkcs8: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        anyhow::ensure!(
            pem(&path)?.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "openssl wrote no encrypted key"
        );
        Ok(path)
    }
}

/// What a TLS server of the rig serves with: its certificate chain and key, and the CA its
/// clients' certificates must chain to (a client without one is refused: mTLS). PEM text.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: String,
}

/// A rustls server configuration requiring client certificates signed by `tls.client_ca_pem`.
pub fn mtls_server_config(tls: &ServerTls) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(tls.client_ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()?;
    let chain =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())?;
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?)
}

/// Reads a PEM file written by [`TestCa`] (for servers that take the text, not a path).
pub fn pem(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real mutual-TLS handshake on loopback, done by an independent implementation (Python's
    /// `ssl` module over OpenSSL): the server presents its certificate and requires a client one.
    const HANDSHAKE: &str = r#"
import socket, ssl, sys, threading
server_ca, server_cert, server_key, client_ca, client_cert, client_key = sys.argv[1:7]
srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
srv.load_cert_chain(server_cert, server_key)
srv.verify_mode = ssl.CERT_REQUIRED
srv.load_verify_locations(server_ca)
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
def serve():
    conn, _ = listener.accept()
    try:
        with srv.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)
    except (ssl.SSLError, OSError):
        pass
threading.Thread(target=serve, daemon=True).start()
cli = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
cli.load_verify_locations(client_ca)
cli.load_cert_chain(client_cert, client_key)
try:
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with cli.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"x")
            print("ok")
except ssl.SSLCertVerificationError:
    print("certificate verify failed")
"#;

    fn handshake(server_side: &TestCa, client_side: &TestCa) -> anyhow::Result<String> {
        let out = std::process::Command::new("python3")
            .args(["-c", HANDSHAKE])
            .args([
                &server_side.ca_cert,
                &server_side.server_cert,
                &server_side.server_key,
            ])
            .args([
                &client_side.ca_cert,
                &client_side.client_cert,
                &client_side.client_key,
            ])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    #[test]
    fn certificates_verify_against_their_ca_and_not_another() -> anyhow::Result<()> {
        let ca = TestCa::new()?;
        let other = TestCa::new()?;
        assert_eq!(handshake(&ca, &ca)?, "ok");
        assert_eq!(handshake(&ca, &other)?, "certificate verify failed");
        Ok(())
    }
}
