//! HTTPS: `vessel serve --tls-cert/--tls-key` with a certificate the test
//! makes, and what a non-loopback address needs.

use std::time::Duration;

use vessel_tests::Vessel;

use super::start;

/// One HTTPS request to `addr`, trusting only `root` (DER), for server
/// name `name`: the raw response.
fn https_get(addr: &str, root: &[u8], name: &str, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(root.to_vec()))
        .map_err(|e| e.to_string())?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name =
        rustls::pki_types::ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), server_name)
        .map_err(|e| e.to_string())?;
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // A server that closes without close_notify still answered.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `--tls-cert/--tls-key`: the API answers over HTTPS with a certificate
/// the test made, a client that does not trust it is refused, plain HTTP
/// gets nothing, bad files are usage errors naming them, and a non-loopback
/// address needs TLS or an explicit --insecure-http.
#[test]
fn serve_speaks_https_and_remote_needs_it() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let server = start(&v, &["--tls-cert", &c, "--tls-key", &k]);
    let answer = https_get(&server.addr, made.cert.der(), "localhost", "/v1/health").unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"ok\":true"), "{answer}");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let refused = https_get(&server.addr, other.cert.der(), "localhost", "/v1/health");
    assert!(refused.is_err(), "an untrusted certificate was accepted");
    // Plain HTTP gets no HTTP answer, only the handshake's failure.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(
            !String::from_utf8_lossy(&got).contains("\"ok\""),
            "plain HTTP reached the API: {}",
            String::from_utf8_lossy(&got)
        );
    }
    drop(server);

    v.run(&["serve", "--tls-cert", &c]).fails(2, &["--tls-key"]);
    let missing = dir.path().join("missing.pem").display().to_string();
    v.run(&["serve", "--tls-cert", &missing, "--tls-key", &k])
        .fails(2, &["--tls-cert", "missing.pem"]);
    v.run(&["serve", "--tls-cert", &c, "--tls-key", &c])
        .fails(2, &["--tls-key", "cert.pem"]);
    v.run(&["serve", "--listen", "10.255.255.1:0", "--allow-remote"])
        .fails(2, &["--tls-cert", "--insecure-http", "in clear"]);
}
