//! Every certificate, CRL and OCSP response the CA produces, checked by OpenSSL and pkilint
//! against a server running on a real port.

use serde_json::json;

use crate::common::*;

/// Each profile × key type: issued through the RA API, then verified by OpenSSL with the
/// profile's policy required explicitly and the CRL checked, rejected under another
/// type's policy, and linted by pkilint alone and as a chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_profile_verifies_with_openssl_and_pkilint() {
    let ca = Ca::start("sqlite").await;
    let cases = [
        ("medium-identity", MEDIUM, "rsa:2048"),
        ("medium-encryption", MEDIUM, "rsa:3072"),
        ("medium-token-identity", MEDIUM_TOKEN, "ec:prime256v1"),
        ("medium-token-encryption", MEDIUM_TOKEN, "rsa:2048"),
        ("medium-hardware-identity", MEDIUM_HARDWARE, "ec:secp384r1"),
        ("medium-hardware-encryption", MEDIUM_HARDWARE, "ec:prime256v1"),
        ("device-tls", DEVICE, "ec:prime256v1"),
    ];
    for (i, (profile, policy, key)) in cases.iter().enumerate() {
        let csr = ca.csr(profile, key);
        let subject = if profile.starts_with("device") {
            device("host1.acme.example")
        } else {
            person("Jane Q. Doe", &format!("jane{i}@acme.example"))
        };
        let issued = ca.issue(profile, profile, subject, &csr);
        assert_eq!(issued.status, 201, "{profile}: {}", issued.body);

        let (ok, out) = ca.verify(&issued.leaf, policy);
        assert!(ok && out.contains(": OK"), "{profile} under {policy}: {out}");
        let other = if *policy == MEDIUM_HARDWARE { MEDIUM_TOKEN } else { MEDIUM_HARDWARE };
        let (ok, out) = ca.verify(&issued.leaf, other);
        assert!(!ok && out.contains("no explicit policy"), "{profile} must not pass under {other}: {out}");

        pkilint("lint_pkix_cert", &[], &[&issued.leaf]);
        pkilint("lint_pkix_signer_signee_cert_chain", &[], &[&ca.path("issuing.pem"), &issued.leaf]);

        let (_, text) = run("openssl", &["x509", "-noout", "-text", "-in", issued.leaf.to_str().unwrap()]);
        assert!(text.contains("OU = ECA, OU = Signet Dev, OU = Acme Widgets"), "{text}");
        assert!(text.contains(&format!("Policy: {policy}")), "{text}");
        assert!(text.contains("CA Issuers - URI:") && text.contains("OCSP - URI:"), "{text}");
        let (_, asn1) = run("openssl", &["asn1parse", "-in", issued.leaf.to_str().unwrap()]);
        let lines: Vec<&str> = asn1.lines().collect();
        let countries: Vec<&str> = lines.windows(2).filter(|w| w[0].ends_with(":countryName")).map(|w| w[1]).collect();
        assert_eq!(countries.len(), 2, "issuer and subject C:\n{asn1}");
        for c in countries {
            assert!(c.contains("PRINTABLESTRING") && c.ends_with(":US"), "C must be a PrintableString: {c}");
        }
        if profile.ends_with("encryption") {
            let usage = if key.starts_with("ec:") { "Key Agreement" } else { "Key Encipherment" };
            assert!(text.contains(usage) && !text.contains("Digital Signature"), "{text}");
        }
    }
    pkilint("lint_pkix_cert", &[], &[&ca.path("root.pem")]);
    pkilint("lint_pkix_cert", &[], &[&ca.path("issuing.pem")]);
    pkilint("lint_pkix_signer_signee_cert_chain", &[], &[&ca.path("root.pem"), &ca.path("issuing.pem")]);
}

/// Revocation shows at once in OCSP (POST with nonce, GET without) and in the next CRL;
/// unknown serials are "unknown"; responses and CRLs pass pkilint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_ocsp_and_crl() {
    let ca = Ca::start("sqlite").await;
    let csr = ca.csr("alice", "rsa:2048");
    let alice = ca.issue("alice", "medium-token-identity", person("Alice", "alice@acme.example"), &csr);
    assert_eq!(alice.status, 201);
    let serial = alice.body["serial"].as_str().unwrap().to_owned();

    let out = ca.ocsp(&alice.leaf, &[]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
    assert!(!out.contains("WARNING: no nonce"), "nonce must be echoed: {out}");

    // GET (RFC 6960 A.1), no nonce: the pre-signed, cached path.
    let req = ca.path("req.der");
    let (ok, out) = run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            ca.path("issuing.pem").to_str().unwrap(),
            "-cert",
            alice.leaf.to_str().unwrap(),
            "-no_nonce",
            "-reqout",
            req.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    let b64 = {
        let (ok, out) = run("openssl", &["base64", "-A", "-in", req.to_str().unwrap()]);
        assert!(ok);
        out.trim().replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
    };
    let resp = ca.path("resp.der");
    let get = |label: &str| {
        let (ok, out) =
            run("curl", &["-sf", "-D", "-", "-o", resp.to_str().unwrap(), &ca.url(&format!("/ocsp/{b64}"))]);
        assert!(ok && out.contains("application/ocsp-response"), "{label}: {out}");
        let (_, text) = run(
            "openssl",
            &[
                "ocsp",
                "-respin",
                resp.to_str().unwrap(),
                "-reqin",
                req.to_str().unwrap(),
                "-issuer",
                ca.path("issuing.pem").to_str().unwrap(),
                "-CAfile",
                ca.path("root.pem").to_str().unwrap(),
                "-cert",
                alice.leaf.to_str().unwrap(),
            ],
        );
        text
    };
    let before = get("good");
    assert!(before.contains("Response verify OK") && before.contains(": good"), "{before}");
    pkilint("lint_ocsp_response", &["--document-format", "DER"], &[&resp]);
    let first = std::fs::read(&resp).unwrap();
    assert_eq!(get("cached"), before);
    assert_eq!(std::fs::read(&resp).unwrap(), first, "a second GET is served from the pre-signed cache");

    // Half-way through its 24 h validity the cached answer is re-signed in the background.
    ca.clock.advance(time::Duration::hours(13));
    assert!(ca.running.state.authority.refresh_ocsp().await.unwrap() >= 1);
    let refreshed = get("refreshed");
    let this_update = |text: &str| text.lines().find(|l| l.contains("This Update")).map(str::to_owned);
    assert!(refreshed.contains("good") && refreshed.contains("Response verify OK"), "{refreshed}");
    assert_ne!(this_update(&refreshed), this_update(&before), "the refreshed answer is newly signed: {refreshed}");
    ca.clock.advance(time::Duration::hours(-13));

    let (status, body) = ca.post(
        &format!("/api/v1/certificates/{serial}/revoke"),
        &json!({ "reason": "keyCompromise" }),
        Some(&ca.token),
    );
    assert_eq!((status, body["already_revoked"].as_bool()), (200, Some(false)), "{body}");

    let after = get("revoked");
    assert!(after.contains(": revoked") && after.contains("Reason: keyCompromise"), "cache must not hide it: {after}");
    pkilint("lint_ocsp_response", &["--document-format", "DER"], &[&resp]);
    let out = ca.ocsp(&alice.leaf, &[]);
    assert!(out.contains(": revoked") && out.contains("Response verify OK"), "{out}");

    let (ok, out) = ca.verify(&alice.leaf, MEDIUM_TOKEN);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let crl = ca.fetch_crl();
    let (_, text) = run("openssl", &["crl", "-noout", "-text", "-in", crl.to_str().unwrap()]);
    assert!(text.to_lowercase().contains(&serial), "{text}");
    assert!(text.contains("Key Compromise") && text.contains("X509v3 CRL Number"), "{text}");
    pkilint("lint_crl", &["-t", "CRL", "-p", "PKIX"], &[&ca.path("crl.der")]);

    // Several certificates in one request get one signed answer.
    let csr = ca.csr("carol", "rsa:2048");
    let carol = ca.issue("carol", "medium-identity", person("Carol", "carol@acme.example"), &csr);
    let out = ca.ocsp(&alice.leaf, &["-cert", carol.leaf.to_str().unwrap()]);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("alice.pem: revoked") && out.contains("carol.pem: good"), "{out}");

    // A second revocation changes nothing and says so.
    let (status, body) =
        ca.post(&format!("/api/v1/certificates/{serial}/revoke"), &json!({ "reason": "superseded" }), Some(&ca.token));
    assert_eq!((status, body["already_revoked"].as_bool()), (200, Some(true)), "{body}");

    let (_, out) = run(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            ca.path("issuing.pem").to_str().unwrap(),
            "-serial",
            "0x7e57ab1e",
            "-url",
            &ca.url("/ocsp"),
            "-CAfile",
            ca.path("root.pem").to_str().unwrap(),
        ],
    );
    assert!(out.contains("0x7e57ab1e: unknown") && out.contains("Response verify OK"), "{out}");

    // The audit chain holds every change: issue (intent + issued), revoke, CRL publications.
    let rows = ca.running.state.store().audit_records().await.unwrap();
    assert!(rows.iter().any(|r| r.action == "certificate-revoked" && r.subject == serial));
    assert!(ca.running.state.store().verify_audit().await.unwrap().is_ok());
}

/// The whole API path on PostgreSQL: issue, OCSP good, revoke, OCSP revoked, CRL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuance_and_revocation_on_postgres() {
    let ca = Ca::start("postgres").await;
    let csr = ca.csr("bob", "ec:prime256v1");
    let bob = ca.issue("bob", "medium-hardware-identity", person("Bob", "bob@acme.example"), &csr);
    assert_eq!(bob.status, 201, "{}", bob.body);
    let (ok, out) = ca.verify(&bob.leaf, MEDIUM_HARDWARE);
    assert!(ok, "{out}");
    assert!(ca.ocsp(&bob.leaf, &[]).contains(": good"));
    let serial = bob.body["serial"].as_str().unwrap();
    let (status, _) = ca.post(
        &format!("/api/v1/certificates/{serial}/revoke"),
        &json!({ "reason": "cessationOfOperation" }),
        Some(&ca.token),
    );
    assert_eq!(status, 200);
    let out = ca.ocsp(&bob.leaf, &[]);
    assert!(out.contains(": revoked") && out.contains("cessationOfOperation"), "{out}");
    let (ok, out) = ca.verify(&bob.leaf, MEDIUM_HARDWARE);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
}

/// Bad input gets a clear problem+json error and leaves no certificate row behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_stores_nothing() {
    let ca = Ca::start("sqlite").await;
    let store = ca.running.state.store();
    let good_csr = ca.csr("good", "rsa:2048");
    let issue = |profile: &str, subject: serde_json::Value, csr: String, token: Option<&str>| {
        let body = json!({ "profile": profile, "validity_years": 1, "subject": subject, "csr": csr });
        ca.post("/api/v1/certificates", &body, token)
    };
    let token = Some(ca.token.as_str());
    let alice = || person("Alice", "alice@acme.example");
    let pem = std::fs::read_to_string(&good_csr).unwrap();

    let (s, b) = issue(
        "medium-identity",
        alice(),
        "-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----\n".into(),
        token,
    );
    assert_eq!((s, b["type"].as_str()), (400, Some("urn:signet:problem:bad-csr")), "{b}");
    assert!(b["detail"].as_str().unwrap().contains("not a PEM or DER PKCS#10"), "{b}");

    // Flip a bit in the signature: proof of possession fails.
    let der_path = ca.path("tampered.der");
    let (ok, _) = run(
        "openssl",
        &["req", "-in", good_csr.to_str().unwrap(), "-outform", "DER", "-out", der_path.to_str().unwrap()],
    );
    assert!(ok);
    let mut der = std::fs::read(&der_path).unwrap();
    let last = der.len() - 1;
    der[last] ^= 1;
    std::fs::write(&der_path, &der).unwrap();
    let (_, tampered) = run("openssl", &["base64", "-in", der_path.to_str().unwrap()]);
    let tampered = format!("-----BEGIN CERTIFICATE REQUEST-----\n{tampered}-----END CERTIFICATE REQUEST-----\n");
    let (s, b) = issue("medium-identity", alice(), tampered, token);
    assert_eq!(s, 400, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("proof of possession"), "{b}");

    let small = ca.csr("small", "rsa:1024");
    let (s, b) = issue("medium-identity", alice(), std::fs::read_to_string(small).unwrap(), token);
    assert_eq!(s, 400);
    assert!(b["detail"].as_str().unwrap().contains("RSA key of 1024 bits"), "{b}");

    let k1 = ca.csr("k1", "ec:secp256k1");
    let (s, b) = issue("medium-identity", alice(), std::fs::read_to_string(k1).unwrap(), token);
    assert_eq!(s, 400);
    assert!(b["detail"].as_str().unwrap().contains("elliptic curve"), "{b}");

    let (s, b) = issue("medium-platinum-identity", alice(), pem.clone(), token);
    assert_eq!((s, b["type"].as_str()), (400, Some("urn:signet:problem:unknown-profile")), "{b}");

    let (s, b) = issue("medium-identity", person("Alice", "not-an-email"), pem.clone(), token);
    assert_eq!((s, b["type"].as_str()), (400, Some("urn:signet:problem:bad-json")), "{b}");
    assert!(b["detail"].as_str().unwrap().contains("not a valid email address"), "{b}");

    let (s, b) = issue("device-tls", alice(), pem.clone(), token);
    assert_eq!((s, b["type"].as_str()), (400, Some("urn:signet:problem:bad-order")), "{b}");

    let body = json!({ "profile": "medium-identity", "validity_years": 5, "subject": alice(), "csr": pem });
    let (s, b) = ca.post("/api/v1/certificates", &body, token);
    assert_eq!((s, b["type"].as_str()), (400, Some("urn:signet:problem:bad-order")), "{b}");

    let (s, _) = issue("medium-identity", alice(), pem.clone(), None);
    assert_eq!(s, 401);
    let (s, _) = issue("medium-identity", alice(), pem.clone(), Some("sgt_wrong"));
    assert_eq!(s, 401);

    assert_eq!(store.certificate_rows().await.unwrap(), 0, "refused requests store nothing");
    assert_eq!(store.audit_records().await.unwrap().len(), 1, "only the API key creation is audited");

    let (s, b) = issue("medium-identity", alice(), pem.clone(), token);
    assert_eq!(s, 201, "{b}");
    let (s, b) = issue("medium-token-identity", alice(), pem, token);
    assert_eq!((s, b["type"].as_str()), (409, Some("urn:signet:problem:duplicate-key")), "{b}");
    assert_eq!(store.certificate_rows().await.unwrap(), 1);

    let (s, b) = ca.post("/api/v1/certificates/zz/revoke", &json!({ "reason": "keyCompromise" }), token);
    assert_eq!((s, b["type"].as_str()), (400, Some("urn:signet:problem:bad-serial")), "{b}");
    let (s, _) = ca.post("/api/v1/certificates/0abc/revoke", &json!({ "reason": "keyCompromise" }), token);
    assert_eq!(s, 404);
    let (s, b) = ca.post("/api/v1/certificates/0abc/revoke", &json!({ "reason": "because" }), token);
    assert_eq!(s, 400, "{b}");

    // A garbage OCSP request gets an OCSP malformedRequest, not an HTTP error page.
    let junk = ca.path("junk.der");
    std::fs::write(&junk, b"not ocsp").unwrap();
    let out_path = ca.path("junk-resp.der");
    let (ok, _) = run(
        "curl",
        &[
            "-sf",
            "-H",
            "content-type: application/ocsp-request",
            "--data-binary",
            &format!("@{}", junk.display()),
            "-o",
            out_path.to_str().unwrap(),
            &ca.url("/ocsp"),
        ],
    );
    assert!(ok);
    let (_, text) = run("openssl", &["ocsp", "-respin", out_path.to_str().unwrap(), "-resp_text", "-noverify"]);
    assert!(text.contains("malformedrequest"), "{text}");
}
