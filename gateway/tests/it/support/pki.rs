//! A certificate authority made by the test, and a gateway serving TLS
//! (HTTP/2 and HTTP/1.1 by ALPN) with a leaf it issued.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use super::{start, Gateway, Setup, Tls};

pub struct Pki {
    pub ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Pki {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// Writes a fresh leaf for localhost and 127.0.0.1 into `dir`; returns
    /// its DER.
    pub fn issue(&self, dir: &Path) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        std::fs::write(dir.join("tls.crt"), cert.pem() + &self.ca.pem()).unwrap();
        std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }

    /// Like [`Pki::issue`]; returns the base64 SHA-256 of the leaf's public
    /// key (SubjectPublicKeyInfo), what Chromium's
    /// `--ignore-certificate-errors-spki-list` trusts.
    pub fn issue_spki(&self, dir: &Path) -> String {
        use base64::Engine as _;
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        std::fs::write(dir.join("tls.crt"), cert.pem() + &self.ca.pem()).unwrap();
        std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
        let spki = ring::digest::digest(
            &ring::digest::SHA256,
            &rcgen::PublicKeyData::subject_public_key_info(&key),
        );
        base64::engine::general_purpose::STANDARD.encode(spki.as_ref())
    }

    pub fn client(&self, http1_only: bool) -> reqwest::Client {
        minigate::crypto::install_crypto_provider();
        let root = reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).unwrap();
        let b = reqwest::Client::builder()
            .tls_certs_only([root])
            .resolve("localhost", "127.0.0.1:0".parse().unwrap());
        let b = if http1_only { b.http1_only() } else { b };
        b.build().unwrap()
    }
}

pub async fn tls_gateway(pki: &Pki, dir: &Path) -> Gateway {
    tls_gateway_to(pki, dir, None).await
}

pub async fn tls_gateway_to(
    pki: &Pki,
    dir: &Path,
    upstream: Option<std::net::SocketAddr>,
) -> Gateway {
    tls_gateway_with(pki, dir, upstream, Setup::default()).await
}

pub async fn tls_gateway_with(
    pki: &Pki,
    dir: &Path,
    upstream: Option<std::net::SocketAddr>,
    setup: Setup,
) -> Gateway {
    if !dir.join("tls.crt").exists() {
        pki.issue(dir);
    }
    let tls = Tls::default()
        .cert(&dir.join("tls.crt"))
        .key(&dir.join("tls.key"));
    start(Setup {
        upstream_addr: upstream,
        ..setup.tls(tls)
    })
    .await
}

/// A TLS connection to the gateway (no ALPN: HTTP/1.1), trusting the
/// test's CA.
pub async fn tls_connect(
    pki: &Pki,
    port: u16,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tls_connect_alpn(pki, port, &[]).await
}

/// The same, offering `alpn`.
pub async fn tls_connect_alpn(
    pki: &Pki,
    port: u16,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}
