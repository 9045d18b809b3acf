//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert` read from the
//! metadata URL, and the rustls connector that carries them out.
//!
//! tokio-postgres knows `sslmode=disable|prefer|require` only, and no
//! `sslrootcert`, and leaves certificate checks to its connector. So the
//! two parameters are taken out of the URL here (in its URL and its
//! key/value forms), the rest goes to tokio-postgres, and the verifier is
//! chosen as libpq chooses:
//!
//! | sslmode | TLS | certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | if the server offers it | not checked |
//! | `require` | always | not checked, unless `sslrootcert` is given: then as `verify-ca` |
//! | `verify-ca` | always | chain checked against the roots |
//! | `verify-full` | always | chain and host name checked |
//!
//! The roots are `sslrootcert` (a PEM file) or, without it, the system's
//! (`rustls-native-certs`). Only the `ring` provider is used.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values that vessel honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS settings of a metadata URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    pub mode: Mode,
    pub root_cert: Option<PathBuf>,
}

impl PgTls {
    /// What tokio-postgres is told: whether TLS is tried, and required.
    pub fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }
}

fn parse_mode(v: &str) -> Result<Mode, String> {
    Ok(match v {
        "disable" => Mode::Disable,
        // libpq's `allow` (plain first, TLS if refused) is closest to
        // `prefer` here.
        "allow" | "prefer" => Mode::Prefer,
        "require" => Mode::Require,
        "verify-ca" => Mode::VerifyCa,
        "verify-full" => Mode::VerifyFull,
        other => {
            return Err(format!(
                "sslmode {other:?}: expected disable, allow (taken as prefer), prefer, require, \
                 verify-ca or verify-full"
            ));
        }
    })
}

/// Takes `sslmode` and `sslrootcert` out of `url` (a `postgres://` URL or
/// libpq key/value pairs); returns the rest, for tokio-postgres, and the
/// TLS settings.
pub fn split_url(url: &str) -> Result<(String, PgTls), String> {
    let (rest, tls, explicit) = split_parts(url)?;
    Ok((rest, system_roots(tls, explicit)?))
}

/// libpq 16's `sslrootcert=system`: the system's roots, and `verify-full`
/// unless a mode is given, which must then be `verify-full` (checking a
/// public CA's chain without the name would accept any site's certificate).
fn system_roots(mut tls: PgTls, explicit: bool) -> Result<PgTls, String> {
    if tls.root_cert.as_deref() != Some(std::path::Path::new("system")) {
        return Ok(tls);
    }
    tls.root_cert = None;
    if !explicit {
        tls.mode = Mode::VerifyFull;
    } else if tls.mode != Mode::VerifyFull {
        return Err("sslrootcert=system needs sslmode=verify-full (or no sslmode)".into());
    }
    Ok(tls)
}

/// The rest of `url`, its TLS settings, and whether `sslmode` was given.
fn split_parts(url: &str) -> Result<(String, PgTls, bool), String> {
    let mut explicit = false;
    let mut tls = PgTls {
        mode: Mode::Prefer,
        root_cert: None,
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), tls, explicit));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => {
                    tls.mode = parse_mode(&super::percent_decode(v, false)?)?;
                    explicit = true;
                }
                "sslrootcert" => {
                    tls.root_cert = Some(PathBuf::from(super::percent_decode(v, false)?))
                }
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, tls, explicit));
    }
    // Key/value pairs: `k=v`, `k = v` or `k='quoted \' value'`.
    let mut kept = Vec::new();
    let mut chars = url.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // The word is not echoed: it may be part of a password.
            return Err(
                "a word in the connection string has no `=` (quote a value with spaces: \
                 key='a b')"
                    .into(),
            );
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut raw = String::new();
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            raw.push('\'');
            loop {
                match chars.next() {
                    Some('\\') => {
                        let c = chars.next().ok_or("an unfinished escape")?;
                        raw.push('\\');
                        raw.push(c);
                        value.push(c);
                    }
                    Some('\'') => {
                        raw.push('\'');
                        break;
                    }
                    Some(c) => {
                        raw.push(c);
                        value.push(c);
                    }
                    None => {
                        return Err(
                            "a quoted value in the connection string has no closing quote".into(),
                        );
                    }
                }
            }
        } else {
            // As in libpq: a backslash takes the next character as it is
            // (`password=se\ cret`).
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                raw.push(c);
                if c == '\\' {
                    let next = chars.next().ok_or("a connection string ends in `\\`")?;
                    raw.push(next);
                    value.push(next);
                } else {
                    value.push(c);
                }
            }
        }
        match key.as_str() {
            "sslmode" => {
                tls.mode = parse_mode(&value)?;
                explicit = true;
            }
            "sslrootcert" => tls.root_cert = Some(PathBuf::from(value)),
            _ => kept.push(format!("{key}={raw}")),
        }
    }
    Ok((kept.join(" "), tls, explicit))
}

/// The connector for `tls` (also used with `disable`, where it is never
/// asked to connect).
pub fn connector(tls: &PgTls) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let check_chain = match tls.mode {
        Mode::VerifyCa | Mode::VerifyFull => true,
        Mode::Require => tls.root_cert.is_some(),
        Mode::Disable | Mode::Prefer => false,
    };
    let verifier: Arc<dyn ServerCertVerifier> = if check_chain {
        let roots = roots(tls)?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("cannot use the root certificates: {e}"))?;
        if tls.mode == Mode::VerifyFull {
            webpki
        } else {
            Arc::new(AnyName(webpki))
        }
    } else {
        Arc::new(Unchecked(provider.clone()))
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn roots(tls: &PgTls) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    match &tls.root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "sslrootcert {}: no PEM certificate in it",
                    path.display()
                ));
            }
            for c in certs {
                store
                    .add(c)
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "sslmode checks the server's certificate, but no sslrootcert was given and \
                     the system has no root certificates"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

/// `verify-ca`: the chain is checked, the name is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require`: encryption without a certificate check, as in
/// libpq. The handshake's signatures are still checked, so the session is
/// with whoever holds the presented certificate's key.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_lose_their_tls_parameters_and_keep_the_rest() {
        let (rest, tls) = split_url(
            "postgres://u:p@h:5432/db?options=-csearch_path%3Dx&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5432/db?options=-csearch_path%3Dx");
        assert_eq!(tls.mode, Mode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/tmp/ca.pem")));
        let (rest, tls) = split_url("postgres://h/db?sslmode=require").unwrap();
        assert_eq!(
            (rest.as_str(), tls.mode),
            ("postgres://h/db", Mode::Require)
        );
        let (rest, tls) = split_url("postgres://h/db").unwrap();
        assert_eq!((rest.as_str(), tls.mode), ("postgres://h/db", Mode::Prefer));
        for (m, want) in [
            ("disable", Mode::Disable),
            ("prefer", Mode::Prefer),
            ("verify-ca", Mode::VerifyCa),
        ] {
            assert_eq!(
                split_url(&format!("postgres://h?sslmode={m}"))
                    .unwrap()
                    .1
                    .mode,
                want
            );
        }
        // libpq 16's system roots: verify-full by default, and only then.
        let (_, tls) = split_url("postgres://h?sslrootcert=system").unwrap();
        assert_eq!((tls.mode, tls.root_cert), (Mode::VerifyFull, None));
        let (_, tls) = split_url("host=h sslrootcert=system sslmode=verify-full").unwrap();
        assert_eq!((tls.mode, tls.root_cert), (Mode::VerifyFull, None));
        let e = split_url("postgres://h?sslmode=verify-ca&sslrootcert=system").unwrap_err();
        assert!(e.contains("verify-full"), "{e}");
        assert_eq!(
            split_url("postgres://h?sslmode=allow").unwrap().1.mode,
            Mode::Prefer
        );
        let e = split_url("postgres://h?sslmode=bogus").unwrap_err();
        assert!(e.contains("\"bogus\"") && e.contains("verify-full"), "{e}");
    }

    #[test]
    fn key_value_strings_lose_their_tls_parameters_and_keep_the_rest() {
        let (rest, tls) = split_url(
            "host=h port=5432 sslmode = verify-ca sslrootcert='/a dir/ca.pem' password='it\\'s'",
        )
        .unwrap();
        assert_eq!(rest, "host=h port=5432 password='it\\'s'");
        assert_eq!(tls.mode, Mode::VerifyCa);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/a dir/ca.pem")));
        assert!(split_url("host=h sslmode='open").is_err());
        assert!(split_url("host").is_err());
        // Escaped spaces outside quotes, as libpq takes them; a refusal
        // never echoes a fragment (it may be a password's).
        let (rest, tls) = split_url("host=db password=se\\ cret sslrootcert=/my\\ ca.pem").unwrap();
        assert_eq!(rest, "host=db password=se\\ cret");
        assert_eq!(tls.root_cert, Some(PathBuf::from("/my ca.pem")));
        let e = split_url("host=db password=se cret").unwrap_err();
        assert!(!e.contains("cret") && !e.contains("se"), "{e}");
    }

    #[test]
    fn a_missing_root_file_is_named() {
        let tls = PgTls {
            mode: Mode::VerifyFull,
            root_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
        };
        let e = connector(&tls).err().unwrap();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
