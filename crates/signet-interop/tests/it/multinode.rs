//! Several `signet serve` nodes on one PostgreSQL database serve one CA: concurrent
//! issuance never repeats a serial or a key, and a revocation made on one node shows in
//! OCSP and the CRL of the other on the very next request.

use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_one_postgres_share_serials_and_revocations() {
    let ca = std::sync::Arc::new(Ca::start("postgres").await);
    let node_b = ca.another_node().await;
    let bases = [ca.running.base_url.clone(), node_b.base_url.clone()];

    let mut tasks = Vec::new();
    for i in 0..16 {
        let ca = ca.clone();
        let base = bases[i % 2].clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let name = format!("user{i}");
            let csr = ca.csr(&name, "ec:prime256v1");
            let issued =
                ca.issue_at(&base, &name, "medium-identity", person("User", &format!("{name}@acme.example")), &csr);
            assert_eq!(issued.status, 201, "{}", issued.body);
            (issued.body["serial"].as_str().unwrap().to_owned(), issued.leaf)
        }));
    }
    let mut issued = Vec::new();
    for t in tasks {
        issued.push(t.await.unwrap());
    }
    let mut serials: Vec<&String> = issued.iter().map(|(s, _)| s).collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 16, "no serial is issued twice");
    assert_eq!(ca.running.state.store().certificate_rows().await.unwrap(), 16);

    let (serial, leaf) = &issued[0];
    // Node B answers "good" from its cache of pre-signed responses.
    assert!(ca.ocsp_at(&bases[1], leaf, &["-no_nonce"]).contains(": good"));
    let (status, _) = ca.post_to(
        &bases[0],
        &format!("/api/v1/certificates/{serial}/revoke"),
        &json!({ "reason": "superseded" }),
        Some(&ca.token),
    );
    assert_eq!(status, 200);
    let revoked_at = std::time::Instant::now();
    // Node A dropped its cached answers when it revoked; node B re-reads the stored status
    // within the stated bound (signet_authority::OCSP_STATUS_TTL, 1 s).
    assert!(ca.ocsp_at(&bases[0], leaf, &["-no_nonce"]).contains(": revoked"), "node A sees it at once");
    let on_b = loop {
        let out = ca.ocsp_at(&bases[1], leaf, &["-no_nonce"]);
        if out.contains(": revoked") || revoked_at.elapsed() > std::time::Duration::from_secs(5) {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let lag = revoked_at.elapsed();
    assert!(on_b.contains(": revoked") && on_b.contains("superseded"), "node B sees node A's revocation: {on_b}");
    let bound = signet_authority::OCSP_STATUS_TTL + std::time::Duration::from_millis(900);
    assert!(lag <= bound, "node B saw it after {lag:?}, beyond {bound:?}");

    let crl = ca.path("b.crl");
    let (ok, out) = run("curl", &["-sf", "-o", crl.to_str().unwrap(), &format!("{}/crl/issuing.crl", bases[1])]);
    assert!(ok, "{out}");
    let (_, text) = run("openssl", &["crl", "-inform", "DER", "-noout", "-text", "-in", crl.to_str().unwrap()]);
    assert!(text.to_lowercase().contains(serial.as_str()), "node B's CRL lists it: {text}");
    assert!(ca.running.state.store().verify_audit().await.unwrap().is_ok(), "one unbroken audit chain across nodes");
}
