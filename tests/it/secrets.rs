//! Credentials given to the CLI never reach its output: bad, unreachable
//! and refused backends, in URL and libpq forms, at every verbosity.

use vessel_tests::Vessel;

#[test]
fn credentials_never_reach_the_terminal() {
    let v = Vessel::new();
    let s3 = "s3://b?endpoint=http://127.0.0.1:9&access_key_id=AKID&secret_access_key=s3cr3tkey";
    let cases: [[&str; 4]; 4] = [
        // Unreachable PostgreSQL (nothing listens on port 9).
        [
            "--metadata",
            "postgres://u:hunter2@127.0.0.1:9/db",
            "--blobs",
            s3,
        ],
        [
            "--metadata",
            "postgres://127.0.0.1:9/db?user=u&password=hunter2",
            "--blobs",
            s3,
        ],
        // Refused at parse time: libpq's key/value form, a bad blobs URL.
        [
            "--metadata",
            "host=127.0.0.1 port=9 password=hunter2",
            "--blobs",
            s3,
        ],
        [
            "--metadata",
            "postgres://u:hunter2@127.0.0.1:9/db",
            "--blobs",
            "s4://b?secret_access_key=s3cr3tkey",
        ],
    ];
    for case in cases {
        for verbosity in [&[][..], &["-vvv"][..]] {
            let mut args: Vec<&str> = verbosity.to_vec();
            args.extend(case);
            args.extend(["volume", "list"]);
            let out = v.run(&args);
            assert_ne!(out.code, 0, "{args:?} succeeded");
            let text = format!("{}{}", out.stdout, out.stderr);
            assert!(!text.is_empty(), "{args:?}: no message");
            for secret in ["hunter2", "s3cr3tkey"] {
                assert!(!text.contains(secret), "{args:?} printed {secret}: {text}");
            }
        }
    }
}
