//! Crash safety: `signet serve` is killed with SIGKILL while a client issues certificates,
//! several times over. Afterwards every certificate a client received is in the database,
//! byte for byte, no record is half-written, and the audit chain is whole.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

fn field<'a>(json: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = json.find(&key)? + key.len();
    Some(&json[start..start + json[start..].find('"')?])
}

#[test]
fn sigkill_mid_issuance_loses_nothing_a_client_received() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap().to_owned();
    let params = tmp.path().join("p256.param");
    must("openssl", &["ecparam", "-name", "prime256v1", "-out", params.to_str().unwrap()], &[]);
    let csrs: Arc<Vec<String>> = Arc::new(
        (0..48)
            .map(|i| {
                issue_json("medium-identity", &csr(tmp.path(), &format!("k{i}"), &format!("ec:{}", params.display())))
            })
            .collect(),
    );
    drop(Server::start(&data, &[])); // creates the dev CA
    let token = must(SIGNET, &["admin", "api-key", "create", "--data-dir", &d, "--name", "ra"], &[]).trim().to_owned();

    let next = Arc::new(AtomicUsize::new(0));
    let interrupted = Arc::new(AtomicUsize::new(0));
    let mut received: Vec<(String, String)> = Vec::new();
    for round in 0..4u64 {
        let server = Server::start(&data, &[]);
        let (base, token, csrs, next, dir, interrupted) = (
            server.base.clone(),
            token.clone(),
            csrs.clone(),
            next.clone(),
            tmp.path().to_owned(),
            interrupted.clone(),
        );
        let client = std::thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= csrs.len() {
                    break;
                }
                let out = dir.join(format!("answer{i}.json"));
                let code = try_call(&format!("{base}/api/v1/certificates"), &token, Some(&csrs[i]), &out);
                let Some(code) = code else {
                    // The server died under this request: the client received nothing.
                    interrupted.fetch_add(1, Ordering::SeqCst);
                    break;
                };
                assert_eq!(code, "201", "{}", std::fs::read_to_string(&out).unwrap_or_default());
                let body = std::fs::read_to_string(&out).unwrap();
                got.push((field(&body, "serial").unwrap().to_owned(), field(&body, "certificate").unwrap().to_owned()));
            }
            got
        });
        std::thread::sleep(std::time::Duration::from_millis(250 + 100 * round));
        drop(server); // SIGKILL, mid-request
        received.extend(client.join().unwrap());
    }
    assert!(!received.is_empty(), "some issuance completed between the kills");
    assert!(interrupted.load(Ordering::SeqCst) >= 1, "at least one kill landed mid-request");
    eprintln!(
        "{} certificates delivered, {} requests cut off by SIGKILL",
        received.len(),
        interrupted.load(Ordering::SeqCst)
    );

    let server = Server::start(&data, &[]);
    for (serial, certificate) in &received {
        let out = tmp.path().join("lookup.json");
        let code = try_call(&format!("{}/api/v1/certificates/{serial}", server.base), &token, None, &out);
        let body = std::fs::read_to_string(&out).unwrap();
        assert_eq!(code.as_deref(), Some("200"), "certificate {serial} was delivered but is not stored: {body}");
        assert_eq!(field(&body, "certificate"), Some(certificate.as_str()), "stored bytes differ for {serial}");
    }
    drop(server);
    let db = data.join("signet.db");
    let db = db.to_str().unwrap();
    let half =
        must("sqlite3", &[db, "SELECT COUNT(*) FROM certificates WHERE (state = 'issued') <> (der IS NOT NULL)"], &[]);
    assert_eq!(half.trim(), "0", "no half-written certificate rows");
    let issued = must("sqlite3", &[db, "SELECT COUNT(*) FROM certificates WHERE state = 'issued'"], &[]);
    assert!(issued.trim().parse::<usize>().unwrap() >= received.len());
    let out = must(SIGNET, &["audit", "verify", "--data-dir", &d], &[]);
    assert!(out.contains("audit log intact"), "{out}");
}
