//! The metadata URL's `sslmode` and `sslrootcert` against a PostgreSQL of
//! our own that accepts TLS connections only (`hostssl` in `pg_hba.conf`,
//! a plain one rejected), with a certificate signed by a CA the test
//! makes, driven through the real `vessel` binary.

use std::path::Path;

use vessel_tests::Vessel;
use vessel_tests::servers::{Postgres, shared};

/// A CA, and a server certificate it signed for `localhost` and
/// 127.0.0.1; returns (CA PEM, certificate PEM, key PEM).
fn certificates() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "vessel test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// Writes the certificate into the cluster and allows TLS connections only.
fn tls_only(data: &Path, cert: &str, key: &str) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(data.join("server.crt"), cert).unwrap();
    std::fs::write(data.join("server.key"), key).unwrap();
    std::fs::set_permissions(
        data.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let hba = data.join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    let mut out =
        String::from("hostnossl all all 127.0.0.1/32 reject\nhostssl all all 127.0.0.1/32 trust\n");
    // Keep the local-socket lines (pg_isready and psql's set-up may use them).
    for line in text.lines().filter(|l| l.starts_with("local")) {
        out.push_str(line);
        out.push('\n');
    }
    std::fs::write(&hba, out).unwrap();
    vec![
        "ssl=on".into(),
        "ssl_cert_file=server.crt".into(),
        "ssl_key_file=server.key".into(),
    ]
}

#[test]
fn sslmode_and_sslrootcert_are_honoured_against_a_tls_only_server() {
    let (ca, cert, key) = certificates();
    let (other_ca, _, _) = certificates();
    let pg = Postgres::start_with(|data| tls_only(data, &cert, &key));
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, other_file) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&ca_file, &ca).unwrap();
    std::fs::write(&other_file, &other_ca).unwrap();
    let mut n = 0;
    // A fresh schema per attempt, on host `host`, with these parameters.
    let mut url = |host: &str, params: &str| {
        n += 1;
        let schema = format!("tls{n}");
        pg.sql(&format!("CREATE SCHEMA {schema}"));
        format!(
            "postgres://vessel@{host}:{}/postgres?options=-csearch_path%3D{schema}&{params}",
            pg.port
        )
    };
    let blobs = shared().s3.url(&format!("pgtls-{}", std::process::id()));
    let round_trip = |metadata: &str| {
        let v = Vessel::on_backend(metadata, &blobs);
        v.run(&["dict", "create", "kv"]).ok();
        v.run(&["dict", "put", "kv", "k", "\"over tls\""]).ok();
        assert_eq!(
            v.run(&["dict", "get", "kv", "k"]).ok().trim(),
            "\"over tls\""
        );
    };
    let refused = |metadata: &str, needles: &[&str]| {
        let v = Vessel::on_backend(metadata, &blobs);
        let out = v.run(&["dict", "list"]);
        assert_ne!(out.code, 0, "{metadata} connected: {out:?}");
        for n in needles {
            assert!(
                out.stderr.contains(n),
                "{metadata}: no {n:?} in {}",
                out.stderr
            );
        }
        assert!(!out.stderr.contains("secret"), "{}", out.stderr);
    };
    let root = |f: &Path| format!("sslrootcert={}", f.display());

    // Checked chain and name, by IP and by host name.
    round_trip(&url(
        "127.0.0.1",
        &format!("sslmode=verify-full&{}", root(&ca_file)),
    ));
    round_trip(&url(
        "localhost",
        &format!("sslmode=verify-full&{}", root(&ca_file)),
    ));
    // Encrypted, unchecked; and the default (prefer) takes TLS when offered.
    round_trip(&url("127.0.0.1", "sslmode=require"));
    round_trip(&url("127.0.0.1", "application_name=x"));
    // Plain is rejected by the server.
    refused(&url("127.0.0.1", "sslmode=disable"), &["no encryption"]);
    // A chain from another CA fails, in every mode that checks it.
    for mode in ["verify-full", "verify-ca", "require"] {
        refused(
            &url(
                "127.0.0.1",
                &format!("sslmode={mode}&{}", root(&other_file)),
            ),
            &["certificate"],
        );
    }
    // A name the certificate does not hold (reached at 127.0.0.1 through
    // `hostaddr`): verify-full refuses, verify-ca (the chain only) passes.
    let wrong_name = "not-in-the-cert.invalid";
    refused(
        &url(
            wrong_name,
            &format!("hostaddr=127.0.0.1&sslmode=verify-full&{}", root(&ca_file)),
        ),
        &["certificate", "not-in-the-cert.invalid"],
    );
    round_trip(&url(
        wrong_name,
        &format!("hostaddr=127.0.0.1&sslmode=verify-ca&{}", root(&ca_file)),
    ));
    // Bad parameters are named.
    refused(
        &url("127.0.0.1", "sslmode=bogus"),
        &["sslmode \"bogus\"", "verify-full"],
    );
    refused(
        &url(
            "127.0.0.1",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ),
        &["/nonexistent/ca.pem"],
    );
}
