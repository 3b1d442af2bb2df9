//! The `signet` binary end to end: `ca init` (file keys and a SoftHSM2 token), `serve`,
//! `admin api-key create`, `cert issue`/`revoke`, `crl`, `audit verify`, HTTPS — with OpenSSL,
//! curl, softhsm2-util and sqlite3 as the independent parties.

use crate::common::*;

#[test]
fn file_key_ca_issue_revoke_crl_and_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let pass = [("SIGNET_CA_PASSPHRASE", "correct horse battery staple")];

    let out =
        must(SIGNET, &["ca", "init", "--data-dir", d, "--key-type", "rsa-3072", "--vendor", "Acme CA Services"], &pass);
    assert!(out.contains("created root and issuing CA (rsa-3072)"), "{out}");
    let key_file = std::fs::read_to_string(data.join("ca/issuing.key.json")).unwrap();
    assert!(key_file.contains("argon2id") && !key_file.contains("PRIVATE KEY"), "keys are encrypted at rest");
    // The key recovery key comes with the CA, encrypted the same way; its public key is beside it.
    let krk = std::fs::read_to_string(data.join("ca/key-recovery.key.json")).unwrap();
    assert!(krk.contains("argon2id") && !krk.contains("PRIVATE KEY"), "{krk}");
    let spki = data.join("ca/key-recovery.spki.der");
    let text =
        must("openssl", &["pkey", "-pubin", "-inform", "DER", "-in", spki.to_str().unwrap(), "-text", "-noout"], &[]);
    assert!(text.contains("3072 bit"), "{text}");
    let ca_toml = std::fs::read_to_string(data.join("ca/ca.toml")).unwrap();
    assert!(ca_toml.contains("[key_recovery]") && ca_toml.contains("kind = \"file\""), "{ca_toml}");
    let (ok, _, err) = run(SIGNET, &["ca", "init", "--data-dir", d], &pass);
    assert!(!ok && err.contains("already exists"), "{err}");

    let request = csr(tmp.path(), "jane", "rsa:2048");
    let leaf = tmp.path().join("jane.pem");
    let args = [
        "cert",
        "issue",
        "--data-dir",
        d,
        "--profile",
        "medium-identity",
        "--csr",
        request.to_str().unwrap(),
        "--org",
        "Acme",
        "--cn",
        "Jane Q. Doe",
        "--email",
        "jane@acme.example",
        "--years",
        "3",
        "--out",
        leaf.to_str().unwrap(),
    ];
    let (ok, _, err) = run(SIGNET, &args, &[("SIGNET_CA_PASSPHRASE", "wrong")]);
    assert!(!ok && err.contains("wrong passphrase"), "{err}");
    let (ok, _, err) = run(SIGNET, &args, &pass);
    assert!(ok, "{err}");
    let serial = err.trim().rsplit(' ').next().unwrap().to_owned();
    let text = must("openssl", &["x509", "-noout", "-text", "-in", leaf.to_str().unwrap()], &[]);
    assert!(text.contains("OU = Acme CA Services, OU = Acme, CN = Jane Q. Doe"), "{text}");

    let crl1 = tmp.path().join("crl1.der");
    must(SIGNET, &["crl", "--data-dir", d, "--out", crl1.to_str().unwrap()], &pass);
    let (ok, out) = verify(&data, &leaf, MEDIUM, &crl1);
    assert!(ok, "{out}");

    let out = must(SIGNET, &["cert", "revoke", "--data-dir", d, &serial, "--reason", "affiliation-changed"], &pass);
    assert!(out.contains("revoked (Now)"), "{out}");
    let crl2 = tmp.path().join("crl2.der");
    must(SIGNET, &["crl", "--data-dir", d, "--out", crl2.to_str().unwrap()], &pass);
    let (ok, out) = verify(&data, &leaf, MEDIUM, &crl2);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let crl_text = must("openssl", &["crl", "-inform", "DER", "-noout", "-text", "-in", crl2.to_str().unwrap()], &[]);
    assert!(
        crl_text.contains("Affiliation Changed") && crl_text.contains("X509v3 CRL Number: \n                2"),
        "{crl_text}"
    );

    let out = must(SIGNET, &["audit", "verify", "--data-dir", d], &[]);
    assert!(out.contains("audit log intact"), "{out}");
    let db = data.join("signet.db");
    must("sqlite3", &[db.to_str().unwrap(), "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"], &[]);
    let (ok, out, _) = run(SIGNET, &["audit", "verify", "--data-dir", d], &[]);
    assert!(!ok && out.contains("audit row 2 was altered"), "{out}");
}

#[test]
fn pkcs11_ca_serves_verifiable_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = signet_testkit::softhsm_conf(tmp.path());
    let env = [("SOFTHSM2_CONF", conf.to_str().unwrap()), ("SIGNET_TEST_PIN", "4321")];
    must(
        "softhsm2-util",
        &["--init-token", "--free", "--label", "signet-ca", "--pin", "4321", "--so-pin", "8765"],
        &env,
    );

    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let out = must(
        SIGNET,
        &[
            "ca",
            "init",
            "--data-dir",
            d,
            "--key-type",
            "p-256",
            "--pkcs11-module",
            SOFTHSM,
            "--token-label",
            "signet-ca",
            "--pin-env",
            "SIGNET_TEST_PIN",
        ],
        &env,
    );
    assert!(out.contains("created root and issuing CA (p-256)"), "{out}");
    assert!(!data.join("ca/issuing.key.json").exists(), "no key file when the key is on the token");
    let objects = must(
        "pkcs11-tool",
        &["--module", SOFTHSM, "--token-label", "signet-ca", "--login", "--pin", "4321", "-O"],
        &env,
    );
    assert!(objects.contains("signet-issuing") && objects.contains("signet-root"), "{objects}");
    assert!(objects.contains("never extractable"), "CA keys must be non-extractable:\n{objects}");
    // The key recovery key is on the token too: decrypt only, never extractable.
    let listed = signet_testkit::pkcs11_objects(&objects);
    let krk = listed
        .iter()
        .find(|o| o.starts_with("Private Key Object") && o.contains("signet-key-recovery"))
        .unwrap_or_else(|| panic!("{objects}"));
    let usage = krk.lines().find_map(|l| l.trim().strip_prefix("Usage:")).unwrap_or_default().trim();
    assert!(usage == "decrypt" && krk.contains("never extractable"), "{krk}");
    let ca_toml = std::fs::read_to_string(data.join("ca/ca.toml")).unwrap();
    assert!(ca_toml.contains("kind = \"pkcs11\"") && ca_toml.contains("signet-key-recovery"), "{ca_toml}");
    let (ok, _, err) = run(
        SIGNET,
        &["admin", "api-key", "create", "--data-dir", d, "--name", "ra"],
        &[env[0], ("SIGNET_TEST_PIN", "0000")],
    );
    assert!(!ok && err.to_lowercase().contains("pin"), "a wrong PIN is reported: {err}");
    let token = must(SIGNET, &["admin", "api-key", "create", "--data-dir", d, "--name", "ra"], &env).trim().to_owned();

    let server = Server::start(&data, &env);
    let params = tmp.path().join("p256.param");
    must("openssl", &["ecparam", "-name", "prime256v1", "-out", params.to_str().unwrap()], &[]);
    let request = csr(tmp.path(), "tok", &format!("ec:{}", params.display()));
    let answer = tmp.path().join("answer.json");
    let code = post(
        &format!("{}/api/v1/certificates", server.base),
        &token,
        &issue_json("medium-token-identity", &request),
        &answer,
    );
    assert_eq!(code, "201", "{}", std::fs::read_to_string(&answer).unwrap());
    let leaf = tmp.path().join("tok.pem");
    certificate_from(&answer, &leaf);
    let crl = tmp.path().join("served.crl");
    must("curl", &["-sf", "-o", crl.to_str().unwrap(), &format!("{}/crl/issuing.crl", server.base)], &[]);
    let (ok, out) = verify(&data, &leaf, MEDIUM_TOKEN, &crl);
    assert!(ok, "{out}");
    let text = must("openssl", &["x509", "-noout", "-text", "-in", leaf.to_str().unwrap()], &[]);
    assert!(text.contains("ecdsa-with-SHA256") && text.contains(&server.base), "{text}");
}

#[test]
fn serve_creates_a_dev_ca_once_and_enforces_the_key_blocklist() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();

    // A key the operator knows to be compromised: its SPKI hash goes on the blocklist.
    let bad = csr(tmp.path(), "leaked", "rsa:2048");
    let spki = tmp.path().join("leaked.spki");
    let pubkey = must("openssl", &["req", "-in", bad.to_str().unwrap(), "-pubkey", "-noout"], &[]);
    std::fs::write(tmp.path().join("leaked.pub"), pubkey).unwrap();
    must(
        "openssl",
        &[
            "pkey",
            "-pubin",
            "-in",
            tmp.path().join("leaked.pub").to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            spki.to_str().unwrap(),
        ],
        &[],
    );
    let digest = must("openssl", &["dgst", "-sha256", "-r", spki.to_str().unwrap()], &[]);
    let blocklist = tmp.path().join("blocklist.txt");
    std::fs::write(&blocklist, format!("# leaked in incident 42\n{}\n", digest.split_whitespace().next().unwrap()))
        .unwrap();
    let config = tmp.path().join("signet.toml");
    std::fs::write(&config, format!("data_dir = \"{d}\"\nkey_blocklist = \"{}\"\n", blocklist.display())).unwrap();
    let env = [("SIGNET_CONFIG", config.to_str().unwrap()), ("RUST_LOG", "debug")];

    let issuing_before = {
        let server = Server::start(&data, &env);
        let health = must("curl", &["-sf", &format!("{}/healthz", server.base)], &[]);
        assert_eq!(health, "ok");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join("ca/passphrase")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the dev passphrase is private to its owner");
        }
        let fetched = tmp.path().join("issuing.crt");
        must("curl", &["-sf", "-o", fetched.to_str().unwrap(), &format!("{}/ca/issuing.crt", server.base)], &[]);
        let text =
            must("openssl", &["x509", "-inform", "DER", "-noout", "-subject", "-in", fetched.to_str().unwrap()], &[]);
        assert!(text.contains("Signet Dev ECA 1"), "{text}");

        let token = must(SIGNET, &["admin", "api-key", "create", "--name", "ra"], &env).trim().to_owned();
        let answer = tmp.path().join("answer.json");
        let code = post(
            &format!("{}/api/v1/certificates", server.base),
            &token,
            &issue_json("medium-identity", &bad),
            &answer,
        );
        let body = std::fs::read_to_string(&answer).unwrap();
        assert_eq!(code, "400", "{body}");
        assert!(body.contains("known to be compromised"), "{body}");

        // At debug level the server still never logs a secret.
        let good = csr(tmp.path(), "good", "rsa:2048");
        let code = post(
            &format!("{}/api/v1/certificates", server.base),
            &token,
            &issue_json("medium-identity", &good),
            &answer,
        );
        assert_eq!(code, "201");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let log = server.log.lock().unwrap().clone();
        let passphrase = std::fs::read_to_string(data.join("ca/passphrase")).unwrap();
        let key_der = std::fs::read_to_string(tmp.path().join("good.key")).unwrap();
        let key_line = key_der.lines().nth(1).unwrap();
        assert!(log.contains("certificate issued"), "the log is captured: {log}");
        for (what, secret) in
            [("API token", token.as_str()), ("CA passphrase", passphrase.trim()), ("subscriber key", key_line)]
        {
            assert!(!log.contains(secret), "the {what} appears in the server log");
        }
        std::fs::read(&fetched).unwrap()
    };
    let server = Server::start(&data, &env);
    let again = tmp.path().join("again.crt");
    must("curl", &["-sf", "-o", again.to_str().unwrap(), &format!("{}/ca/issuing.crt", server.base)], &[]);
    assert_eq!(std::fs::read(again).unwrap(), issuing_before, "a restart keeps the CA");
}

/// `signet token pin change|unblock` and `signet token status` on a SoftHSM2 token, checked
/// with `pkcs11-tool`: the new PIN logs in and the old one does not; after wrong tries the
/// unlock code sets a new PIN; status lists the certificates `pkcs11-tool` lists, with their
/// ECA type, expiry and OCSP status from the running server.
#[test]
fn token_pin_care_and_status() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = signet_testkit::softhsm_conf(tmp.path());
    let conf = conf.to_str().unwrap();
    let token_env = |extra: &[(&'static str, &'static str)]| {
        let mut env = vec![("SOFTHSM2_CONF", conf)];
        env.extend_from_slice(extra);
        env
    };
    must(
        "softhsm2-util",
        &["--init-token", "--free", "--label", "ECA TEST", "--pin", "246810", "--so-pin", "13572468"],
        &token_env(&[]),
    );
    let logs_in = |pin: &str| {
        run(
            "pkcs11-tool",
            &["--module", SOFTHSM, "--token-label", "ECA TEST", "--login", "--pin", pin, "-O"],
            &token_env(&[]),
        )
        .0
    };
    let module = ["--module", SOFTHSM];

    // Readiness names each token by slot and serial, and logs nothing alarming on the way.
    let (ok, out, err) = run(SIGNET, &[&["token", "readiness"][..], &module].concat(), &token_env(&[]));
    assert!(ok && out.contains("2 tokens are inserted") && out.contains("(\"ECA TEST\")"), "{out}");
    assert!(out.contains("say which token with --slot") && !err.contains("ERROR"), "{out}\n{err}");

    let args = [&["token", "pin", "change"][..], &module].concat();
    let (ok, _, err) = run(SIGNET, &args, &token_env(&[("SIGNET_PIN", "000000"), ("SIGNET_NEW_PIN", "111222")]));
    assert!(!ok && err.contains("wrong PIN"), "{err}");
    let out = must(SIGNET, &args, &token_env(&[("SIGNET_PIN", "246810"), ("SIGNET_NEW_PIN", "111222")]));
    assert!(out.contains("is changed"), "{out}");
    assert!(logs_in("111222") && !logs_in("246810"));

    for _ in 0..3 {
        assert!(!logs_in("999999"));
    }
    let args = [&["token", "pin", "unblock"][..], &module].concat();
    let (ok, _, err) =
        run(SIGNET, &args, &token_env(&[("SIGNET_UNLOCK_CODE", "00000000"), ("SIGNET_NEW_PIN", "333444")]));
    assert!(!ok && err.contains("wrong unlock code"), "{err}");
    must(SIGNET, &args, &token_env(&[("SIGNET_UNLOCK_CODE", "13572468"), ("SIGNET_NEW_PIN", "333444")]));
    assert!(logs_in("333444") && !logs_in("111222"));

    // A Medium Token certificate and its issuing CA on the token, as retrieval leaves them.
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let pass = [("SIGNET_CA_PASSPHRASE", "correct horse battery staple")];
    must(SIGNET, &["ca", "init", "--data-dir", d, "--key-type", "p-256"], &pass);
    let api = must(SIGNET, &["admin", "api-key", "create", "--data-dir", d, "--name", "ra"], &pass).trim().to_owned();
    let server = Server::start(&data, &pass);
    let request = csr(tmp.path(), "tok", "rsa:2048");
    let answer = tmp.path().join("answer.json");
    let code = post(
        &format!("{}/api/v1/certificates", server.base),
        &api,
        &issue_json("medium-token-identity", &request),
        &answer,
    );
    assert_eq!(code, "201", "{}", std::fs::read_to_string(&answer).unwrap());
    let (leaf_pem, leaf_der) = (tmp.path().join("tok.pem"), tmp.path().join("tok.der"));
    certificate_from(&answer, &leaf_pem);
    must(
        "openssl",
        &["x509", "-in", leaf_pem.to_str().unwrap(), "-outform", "DER", "-out", leaf_der.to_str().unwrap()],
        &[],
    );
    let write = |file: &str, label: &str, id: Option<&str>| {
        let mut args = vec!["--module", SOFTHSM, "--token-label", "ECA TEST", "--login", "--pin", "333444"];
        args.extend(["--write-object", file, "--type", "cert", "--label", label]);
        if let Some(id) = id {
            args.extend(["--id", id]);
        }
        must("pkcs11-tool", &args, &token_env(&[]));
    };
    write(leaf_der.to_str().unwrap(), "ECA identity X", Some("0a0b"));
    write(data.join("ca/issuing.crt").to_str().unwrap(), "Signet Issuing CA", None);

    let status = [&["token", "status"][..], &module, &["--server", &server.base]].concat();
    let out = must(SIGNET, &status, &token_env(&[]));
    let listed = must(
        "pkcs11-tool",
        &["--module", SOFTHSM, "--token-label", "ECA TEST", "-O", "--type", "cert"],
        &token_env(&[]),
    );
    let labels: Vec<&str> = listed.lines().filter_map(|l| l.trim().strip_prefix("label:")).map(str::trim).collect();
    assert_eq!(labels.len(), 2, "{listed}");
    assert!(out.contains("\"ECA identity X\" (ID 0a0b)"), "{out}");
    assert!(out.contains("Medium Token Assurance (policy 2.16.840.1.101.3.2.1.12.5)"), "{out}");
    assert!(out.contains("CN=Jane Q. Doe") && out.contains("days left"), "{out}");
    assert!(!out.contains("transport PINs"), "a token set up without Signet's stock: {out}");
    assert!(out.contains("status:  good"), "{out}");
    assert!(out.contains("CA certificates:"), "{out}");

    let serial = std::fs::read_to_string(&answer).unwrap();
    let serial = serial.split("\"serial\":\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let code = post(
        &format!("{}/api/v1/certificates/{serial}/revoke", server.base),
        &api,
        r#"{"reason":"keyCompromise"}"#,
        &answer,
    );
    assert_eq!(code, "200", "{}", std::fs::read_to_string(&answer).unwrap());
    let out = must(SIGNET, &status, &token_env(&[]));
    assert!(out.contains("status:  REVOKED"), "{out}");
}

/// `signet serve` under a umask that would leave everything world-readable: the data folder
/// is still 0700 and the SQLite files (database, WAL, shared memory) 0600; `/readyz` says
/// ready; and a 10 MB body, chunked or with its length declared, is refused with 413 by the
/// JSON API and the OCSP responder alike.
#[cfg(unix)]
#[test]
fn serve_keeps_its_files_private_reports_ready_and_refuses_large_bodies() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut child = std::process::Command::new("sh")
        .args(["-c", "umask 000 && exec \"$0\" serve --data-dir \"$1\" --listen 127.0.0.1:0", SIGNET])
        .arg(&data)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("serve exited before listening").unwrap();
        if let Some(rest) = line.strip_prefix("signet listening on ") {
            break format!("http://{}", rest.split_whitespace().next().unwrap());
        }
    };
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(child);

    let mode = |p: &std::path::Path| {
        std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
    };
    assert_eq!(mode(&data), 0o700, "data folder");
    for file in ["signet.db", "signet.db-wal", "signet.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&data.join("ca/sealing.key")), 0o600, "sealing key");

    let ready = must("curl", &["-s", "-w", " %{http_code}", &format!("{base}/readyz")], &[]);
    assert_eq!(ready, "ready 200");

    let big = tmp.path().join("big.json");
    std::fs::write(&big, format!("{{\"reference\":\"{}\"}}", "x".repeat(10 * 1024 * 1024))).unwrap();
    let body_path = format!("@{}", big.display());
    let answer = tmp.path().join("answer");
    for (path, content_type) in [("/api/v1/retrieval", "application/json"), ("/ocsp", "application/ocsp-request")] {
        for chunked in [true, false] {
            let url = format!("{base}{path}");
            let ct = format!("content-type: {content_type}");
            let mut args = vec!["-s", "-o", answer.to_str().unwrap(), "-w", "%{http_code}", "-H", &ct];
            if chunked {
                args.extend(["-H", "Transfer-Encoding: chunked"]);
            }
            args.extend(["--data-binary", &body_path, &url]);
            // curl may stop sending when the server answers early; the status is what counts.
            let (_, code, err) = run("curl", &args, &[]);
            assert_eq!(code, "413", "{path} chunked={chunked}: {err}");
            if path.starts_with("/api/") {
                let text = std::fs::read_to_string(&answer).unwrap();
                assert!(
                    text.contains("\"status\":413") && text.contains("too-large"),
                    "{path} chunked={chunked}: {text}"
                );
            }
        }
    }
}

/// A database URL that does not work stops `serve` with a clear message before it writes
/// anything: no dev CA is minted into the data folder for a server that never ran.
#[test]
fn serve_with_an_unreachable_database_leaves_no_ca_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let started = std::time::Instant::now();
    let (ok, _, err) = run(
        SIGNET,
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://postgres@127.0.0.1:1/nowhere",
        ],
        &[],
    );
    assert!(!ok, "serve must fail");
    assert!(err.contains("cannot connect to the database") && err.contains("refused"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the cause is told at once, not after a pool timeout"
    );
    assert!(!data.join("ca").exists(), "no CA was written");
}

/// An operator checks a configuration before deploying it: a bad agency catalog, price list or
/// deadline policy is refused naming the file, the line and the reason; a good one prints the
/// settings the server would run with, with the database password masked.
#[test]
fn config_check_names_the_bad_file_and_line_and_masks_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let prices = dir.join("prices.toml");
    std::fs::write(
        &prices,
        "[[price]]\ntype = \"medium\"\nyears = 1\nusd = \"99.00\"\n\n[[price]]\ntype = \"medium-token\"\nyears = 1\nusd = \"149\"\n\n\
         [[price]]\ntype = \"medium-hardware\"\nyears = 1\nusd = \"199.50\"\n",
    )
    .unwrap();
    let agencies = dir.join("agencies.toml");
    std::fs::write(
        &agencies,
        "[[program]]\nid = \"integrate\"\nname = \"Integrate\"\nagencies = [\"integrate-il4\"]\n\n\
         [[agency]]\nid = \"integrate-il4\"\nname = \"Integrate IL4\"\naccepts = [\"medium-token\", \"medium-hardware\"]\n",
    )
    .unwrap();
    let config = dir.join("signet.toml");
    let write_config = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "database_url = \"postgres://ra:s3cret-db-pass@db.example:5432/signet\"\n\n[ra]\nname = \"Acme RA\"\n\
                 agencies = \"{}\"\nprices = \"{}\"\n\n[deadlines]\nopen_days = 60\nreminder_days = [14, 3]\n{extra}",
                agencies.display(),
                prices.display()
            ),
        )
        .unwrap()
    };
    write_config("");
    let c = config.to_str().unwrap();
    let (ok, out, err) = run(SIGNET, &["config", "check", "--config", c], &[]);
    assert!(ok, "{err}");
    assert!(err.contains("configuration is valid"), "{err}");
    assert!(!out.contains("s3cret-db-pass"), "the database password is masked:\n{out}");
    assert!(out.contains("database_url = \"postgres://ra:********@db.example:5432/signet\""), "{out}");
    assert!(out.contains("name = \"Acme RA\""), "{out}");
    assert!(out.contains("# price: medium-hardware, 1 year = $199.50"), "{out}");
    assert!(out.contains("# agencies: 1 (1 partner programs: Integrate)"), "{out}");
    assert!(out.contains("open_days = 60\nretrieval_days = 30\nreminder_days = [14, 3]"), "{out}");

    // A price for a validity the profile does not allow, on line 8 of the price list.
    std::fs::write(
        &prices,
        std::fs::read_to_string(&prices).unwrap().replacen("years = 1\nusd = \"149\"", "years = 5\nusd = \"149\"", 1),
    )
    .unwrap();
    let (ok, out, err) = run(SIGNET, &["config", "check", "--config", c], &[]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(
        err.contains(&format!("{}: line 8: medium-token certificates are not issued for 5 years", prices.display())),
        "{err}"
    );

    // An agency that accepts a type no subscriber profile has, on line 9 of the catalog.
    std::fs::write(&prices, std::fs::read_to_string(&prices).unwrap().replacen("years = 5", "years = 1", 1)).unwrap();
    std::fs::write(
        &agencies,
        std::fs::read_to_string(&agencies).unwrap().replacen("\"medium-hardware\"]", "\"gold\"]", 1),
    )
    .unwrap();
    let (ok, _, err) = run(SIGNET, &["config", "check", "--config", c], &[]);
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!("{}: line 9: agency \"integrate-il4\" accepts \"gold\"", agencies.display())),
        "{err}"
    );

    // A reminder outside the retrieval window, and a misspelled setting in the main file.
    std::fs::write(
        &agencies,
        std::fs::read_to_string(&agencies).unwrap().replacen("\"gold\"]", "\"medium-hardware\"]", 1),
    )
    .unwrap();
    write_config("retrieval_days = 10\n");
    let (ok, _, err) = run(SIGNET, &["config", "check", "--config", c], &[]);
    assert!(!ok, "{err}");
    assert!(err.contains("deadlines: reminder_days must each be fewer days than both windows (10)"), "{err}");
    write_config("remind_days = [1]\n");
    let (ok, _, err) = run(SIGNET, &["config", "check", "--config", c], &[]);
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!("{}", config.display())) && err.contains(": line 11: unknown field `remind_days`"),
        "{err}"
    );
}

/// `serve` with `[tls]` asking for a self-issued certificate, judged by independent tools: curl
/// trusts it through Signet's root and sees HSTS and a Secure session cookie; `openssl s_client`
/// negotiates TLS 1.3 and verifies the chain, and TLS 1.1 is refused; the plain port redirects a
/// page but serves the CRL and OCSP at the http:// base URL the certificates name; a client that
/// opens TCP and never handshakes is dropped after the header timeout. The same certificate and
/// key, given as `[tls]` files to another server, are served as they are.
#[test]
fn serve_over_https_with_a_self_issued_certificate() {
    use std::io::Read;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let plain_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("signet.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\nself_issued = [\"localhost\"]\nhttp_listen = \"127.0.0.1:{plain_port}\"\n\
             [limits]\nheader_timeout_seconds = 2\n"
        ),
    )
    .unwrap();
    let server = Server::start(&data, &[("SIGNET_CONFIG", config.to_str().unwrap())]);
    assert_eq!(server.base, format!("http://127.0.0.1:{plain_port}"), "certificates name the plain port");
    let port = server.url.strip_prefix("https://localhost:").expect("the public URL is https").to_owned();
    let root = data.join("ca/root.pem");
    der_to_pem("x509", &data.join("ca/root.crt"), &root);
    let root = root.to_str().unwrap();

    let headers = must(
        "curl",
        &["-sS", "--cacert", root, "-D", "-", "-o", "/dev/null", &format!("{}/console/sign-in", server.url)],
        &[],
    )
    .to_ascii_lowercase();
    assert!(headers.starts_with("http/1.1 200"), "{headers}");
    assert!(headers.contains("strict-transport-security: max-age=31536000"), "{headers}");
    let cookie = headers.lines().find(|l| l.starts_with("set-cookie: signet_session=")).expect("a session cookie");
    assert!(cookie.contains("; secure") && cookie.contains("; httponly"), "{cookie}");

    let connect = format!("127.0.0.1:{port}");
    let s_client = |extra: &[&str]| {
        let mut args = vec!["s_client", "-connect", &connect, "-servername", "localhost", "-CAfile", root];
        args.extend(extra);
        let (ok, out, err) = run("openssl", &args, &[]);
        (ok, format!("{out}{err}"))
    };
    let (ok, out) = s_client(&["-verify_hostname", "localhost", "-verify_return_error"]);
    assert!(ok, "{out}");
    assert!(out.contains("New, TLSv1.3") && out.contains("Verify return code: 0 (ok)"), "{out}");
    let (ok, out) = s_client(&["-tls1_1"]);
    assert!(!ok, "TLS 1.1 must be refused: {out}");

    // The plain port: pages move to HTTPS for good, relying parties' files stay.
    let redirect = must(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            &format!("{}/console/sign-in?x=1", server.base),
        ],
        &[],
    );
    assert_eq!(redirect, format!("308 {}/console/sign-in?x=1", server.url));
    let crl = dir.join("crl.der");
    must("curl", &["-sf", "-o", crl.to_str().unwrap(), &format!("{}/crl/issuing.crl", server.base)], &[]);
    must("openssl", &["crl", "-inform", "DER", "-in", crl.to_str().unwrap(), "-noout"], &[]);
    let leaf = dir.join("leaf.pem");
    let served = data.join("tls/server.pem");
    must("openssl", &["x509", "-in", served.to_str().unwrap(), "-out", leaf.to_str().unwrap()], &[]);
    let cdp = must("openssl", &["x509", "-in", leaf.to_str().unwrap(), "-noout", "-ext", "crlDistributionPoints"], &[]);
    assert!(cdp.contains(&format!("{}/crl/issuing.crl", server.base)), "{cdp}");
    let issuing = data.join("ca/issuing.pem");
    der_to_pem("x509", &data.join("ca/issuing.crt"), &issuing);
    let ocsp = ocsp_status(&issuing, &leaf, &server.base, std::path::Path::new(root));
    assert!(ocsp.contains("leaf.pem: good"), "{ocsp}");

    // Connected, silent: dropped after the two-second header timeout, before the read gives up.
    let started = std::time::Instant::now();
    let mut silent = std::net::TcpStream::connect(&connect).unwrap();
    silent.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    assert!(silent.read_to_end(&mut got).is_ok(), "the server closed the connection");
    let waited = started.elapsed();
    drop(silent);

    // The same certificate and key as files, served by another server with a CA of its own.
    let files = dir.join("files.toml");
    let other_plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (cert_file, key_file) = (data.join("tls/server.pem"), data.join("tls/server.key"));
    std::fs::write(
        &files,
        format!("[tls]\ncertificate = {cert_file:?}\nkey = {key_file:?}\nhttp_listen = \"127.0.0.1:{other_plain}\"\n"),
    )
    .unwrap();
    let other = Server::start(&dir.join("other"), &[("SIGNET_CONFIG", files.to_str().unwrap())]);
    assert!(other.url.starts_with("https://localhost:"), "the host is the certificate's DNS name: {}", other.url);
    let ready = must("curl", &["-sS", "--cacert", root, &format!("{}/readyz", other.url)], &[]);
    assert_eq!(ready, "ready");
    assert!(
        waited >= std::time::Duration::from_millis(1500) && waited < std::time::Duration::from_secs(8),
        "{waited:?}"
    );
}

/// What an operator watches: `/metrics` passes `promtool check metrics` and counts the
/// issuance, the OCSP answer and the CRL served without naming anyone; `--log-format json`
/// writes one JSON object per line, and the request id the answer's `X-Request-Id` names is on
/// the request's log lines and on the audit rows it caused, inside the hash chain; the
/// OpenAPI document is valid (`openapi-spec-validator`) and schemathesis, run against the live
/// server with an API key, finds no server error and no answer the document does not describe.
#[test]
fn serve_reports_metrics_json_logs_with_request_ids_and_a_true_openapi_document() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    // Schemathesis posts many made-up secrets and looks up many addresses; the per-client limits
    // would answer most with 429.
    let config = tmp.path().join("signet.toml");
    std::fs::write(&config, format!("data_dir = \"{d}\"\n[limits]\nsecret_attempts_per_minute = 100000\nrepository_requests_per_minute = 100000\n"))
        .unwrap();
    let env = [("SIGNET_CONFIG", config.to_str().unwrap())];
    let server = Server::start_with(&data, &["--log-format", "json"], &env);
    let token = must(SIGNET, &["admin", "api-key", "create", "--name", "ra"], &env).trim().to_owned();

    // One issuance, its request id from the answer's header.
    let request = csr(tmp.path(), "jane", "rsa:2048");
    let (answer, headers) = (tmp.path().join("answer.json"), tmp.path().join("headers.txt"));
    let auth = format!("Authorization: Bearer {token}");
    let issue = issue_json("medium-identity", &request);
    let url = format!("{}/api/v1/certificates", server.base);
    let code = must(
        "curl",
        &[
            "-s",
            "-o",
            answer.to_str().unwrap(),
            "-D",
            headers.to_str().unwrap(),
            "-w",
            "%{http_code}",
            "-H",
            &auth,
            "-H",
            "content-type: application/json",
            "--data-binary",
            &issue,
            &url,
        ],
        &[],
    );
    assert_eq!(code, "201", "{}", std::fs::read_to_string(&answer).unwrap());
    let headers = std::fs::read_to_string(&headers).unwrap();
    let request_id = headers
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-request-id:").map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no X-Request-Id: {headers}"));
    assert!(request_id.len() == 32 && request_id.bytes().all(|b| b.is_ascii_hexdigit()), "{request_id}");
    let issued: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&answer).unwrap()).unwrap();
    let serial = issued["serial"].as_str().unwrap().to_owned();

    // A client's own id is not taken (the server is not behind a trusted proxy here).
    let echoed = must(
        "curl",
        &[
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "X-Request-Id: forged-by-client-1",
            &format!("{}/healthz", server.base),
        ],
        &[],
    );
    assert!(
        echoed.to_ascii_lowercase().contains("x-request-id: ") && !echoed.contains("forged-by-client-1"),
        "{echoed}"
    );

    // An OCSP answer (pre-signed at issuance: a cache hit) and the CRL.
    let leaf = tmp.path().join("jane.pem");
    certificate_from(&answer, &leaf);
    let ca = data.join("ca");
    der_to_pem("x509", &ca.join("issuing.crt"), &ca.join("issuing.pem"));
    let ocsp = must(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            ca.join("issuing.pem").to_str().unwrap(),
            "-cert",
            leaf.to_str().unwrap(),
            "-url",
            &format!("{}/ocsp", server.base),
            "-no_nonce",
            "-noverify",
        ],
        &[],
    );
    assert!(ocsp.contains(": good"), "{ocsp}");
    must("curl", &["-sf", "-o", "/dev/null", &format!("{}/crl/issuing.crl", server.base)], &[]);

    let metrics = tmp.path().join("metrics.txt");
    must("curl", &["-sf", "-o", metrics.to_str().unwrap(), &format!("{}/metrics", server.base)], &[]);
    let text = std::fs::read_to_string(&metrics).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&metrics).unwrap())
        .output()
        .expect("promtool must be installed (scripts/test.sh installs it)");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "signet_certificates_issued_total{profile=\"medium-identity\"} 1\n",
        "signet_issuance_duration_seconds_count{profile=\"medium-identity\"} 1\n",
        "signet_ocsp_responses_total{status=\"good\",cache=\"hit\"} 1\n",
        "signet_crl_age_seconds ",
        "signet_outbox_backlog ",
        "signet_lockouts_active{scope=\"activation-code\"} 0\n",
        "signet_job_leader{job=\"outbox\"} 1\n",
        "signet_db_pool_max_connections 4\n",
        "signet_database_figures_up 1\n",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    for personal in ["Jane", "jane", "acme", &serial] {
        assert!(!text.contains(personal), "{personal} in the metrics:\n{text}");
    }

    // The log: JSON lines, the issuance's line under the request's id.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = server.log.lock().unwrap().clone();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty(), "{log}");
    let issued_line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "certificate issued")
        .unwrap_or_else(|| panic!("no issuance line:\n{log}"));
    let request_span = &issued_line["spans"][0];
    assert_eq!(request_span["name"], "request", "{issued_line}");
    assert_eq!(request_span["request_id"], request_id.as_str(), "{issued_line}");
    assert_eq!(request_span["path"], "/api/v1/certificates", "{issued_line}");
    assert_eq!(issued_line["level"], "INFO");

    // The audit rows of that request carry its id, inside the chain.
    let db = data.join("signet.db");
    let tagged = must(
        "sqlite3",
        &[
            db.to_str().unwrap(),
            "SELECT action FROM audit_log WHERE request_id = ? ORDER BY seq"
                .replace('?', &format!("'{request_id}'"))
                .as_str(),
        ],
        &[],
    );
    assert_eq!(tagged, "issuance-intent\ncertificate-issued\n", "{tagged}");
    let untagged = must(
        "sqlite3",
        &[
            db.to_str().unwrap(),
            "SELECT COUNT(*) FROM audit_log WHERE action = 'api-key-created' AND request_id IS NULL",
        ],
        &[],
    );
    assert_eq!(untagged.trim(), "1", "the command line's rows carry no request id");
    let out = must(SIGNET, &["audit", "verify"], &env);
    assert!(out.contains("audit log intact"), "{out}");

    // The API's description: a valid OpenAPI document, and true of the live server.
    let spec = tmp.path().join("openapi.json");
    must("curl", &["-sf", "-o", spec.to_str().unwrap(), &format!("{}/api/v1/openapi.json", server.base)], &[]);
    let out = must("openapi-spec-validator", &[spec.to_str().unwrap()], &[]);
    assert!(out.trim().ends_with(": OK"), "{out}");
    let out = std::process::Command::new("schemathesis")
        .current_dir(tmp.path())
        .args([
            "run",
            spec.to_str().unwrap(),
            "--base-url",
            &server.base,
            "-H",
            &auth,
            "--checks",
            "all",
            "--hypothesis-max-examples",
            "20",
            // Valid requests and invalid ones (which must be refused with a 4xx the document names).
            "--data-generation-method",
            "all",
            // The same examples every run (and no example database left behind).
            "--hypothesis-derandomize",
            "--experimental=openapi-3.1",
            "--no-color",
        ])
        .output()
        .expect("schemathesis must be installed (scripts/test.sh installs it)");
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis found problems:\n{report}");
    assert!(report.contains("Collected API operations: 10"), "{report}");
    assert!(report.contains("10 passed in") && !report.contains("failed") && !report.contains("errored"), "{report}");

    // Schemathesis cannot make a CSR, so its issuance answers are all refusals: the answers of
    // a real issuance, revocation and read are checked against the document's schemas here
    // (with the JSON Schema library openapi-spec-validator brings).
    let revoked = tmp.path().join("revoked.json");
    let url = format!("{}/api/v1/certificates/{serial}", server.base);
    let code = post(&format!("{url}/revoke"), &token, r#"{"reason":"keyCompromise"}"#, &revoked);
    assert_eq!(code, "200", "{}", std::fs::read_to_string(&revoked).unwrap());
    let fetched = tmp.path().join("fetched.json");
    assert_eq!(try_call(&url, &token, None, &fetched).as_deref(), Some("200"));
    assert!(std::fs::read_to_string(&fetched).unwrap().contains("\"revocation_reason\":\"keyCompromise\""));
    // A published encryption certificate, and the repository's answer for its address.
    let encryption_csr = csr(tmp.path(), "jane-encryption", "rsa:2048");
    let encryption = tmp.path().join("encryption.json");
    let url = format!("{}/api/v1/certificates", server.base);
    let code = post(&url, &token, &issue_json("medium-encryption", &encryption_csr), &encryption);
    assert_eq!(code, "201", "{}", std::fs::read_to_string(&encryption).unwrap());
    let published = tmp.path().join("repository.json");
    let lookup = format!("{}/repository?email=jane%40acme.example&format=json", server.base);
    must("curl", &["-sf", "-o", published.to_str().unwrap(), &lookup], &[]);
    let encryption: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&encryption).unwrap()).unwrap();
    let found = std::fs::read_to_string(&published).unwrap();
    assert!(found.contains(&format!("\"serial\":{}", encryption["serial"])), "{found}");
    let check = "import json, sys, jsonschema\n\
                 spec = json.load(open(sys.argv[1]))\n\
                 for name, path in zip(sys.argv[2::2], sys.argv[3::2]):\n\
                 \x20   schema = dict(spec['components']['schemas'][name], components=spec['components'])\n\
                 \x20   jsonschema.Draft202012Validator(schema).validate(json.load(open(path)))\n\
                 \x20   print(name, 'conforms')\n";
    let (answer, revoked, fetched) = (answer.to_str().unwrap(), revoked.to_str().unwrap(), fetched.to_str().unwrap());
    let published = published.to_str().unwrap();
    let args = [
        "-c",
        check,
        spec.to_str().unwrap(),
        "Certificate",
        answer,
        "Revocation",
        revoked,
        "Certificate",
        fetched,
        "RepositoryAnswer",
        published,
    ];
    let out = must("python3", &args, &[]);
    assert_eq!(out, "Certificate conforms\nRevocation conforms\nCertificate conforms\nRepositoryAnswer conforms\n");

    // Tampering with a request id breaks the chain like any other column.
    must(
        "sqlite3",
        &[
            db.to_str().unwrap(),
            &format!(
                "UPDATE audit_log SET request_id = 'ffffffffffffffffffffffffffffffff' WHERE request_id = '{request_id}' AND action = 'certificate-issued'"
            ),
        ],
        &[],
    );
    let (ok, out, _) = run(SIGNET, &["audit", "verify"], &env);
    assert!(!ok && out.contains("was altered"), "{out}");
}
