//! Crash safety: `signet serve` is killed with SIGKILL while a client issues certificates,
//! several times over. Afterwards every certificate a client received is in the database,
//! byte for byte, no record is half-written, and the audit chain is whole; the intents job
//! then marks failed what the kills left half-done, and every request cut off can be sent again.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use signet_authority::ServerConfig;
use signet_authority::jobs::{Job, JobRunner, Outcome};
use signet_authority::mail::Mailer;
use signet_pki::Serial;
use signet_pki::csr::VerifiedCsr;
use signet_ra::audit::{AuditAction, AuditEvent};
use signet_ra::issuance::{ABANDONED_AFTER, CaStore, IssuanceIntent};
use signet_ra::{Clock, FakeClock};
use time::{Duration, OffsetDateTime};

use crate::common::*;

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
    // 48 requests for the client, and one more for the intent written below as a kill leaves it.
    let paths: Vec<_> =
        (0..49).map(|i| csr(tmp.path(), &format!("k{i}"), &format!("ec:{}", params.display()))).collect();
    let csrs: Arc<Vec<String>> = Arc::new(paths[..48].iter().map(|p| issue_json("medium-identity", p)).collect());
    drop(Server::start(&data, &[])); // creates the dev CA
    let token = must(SIGNET, &["admin", "api-key", "create", "--data-dir", &d, "--name", "ra"], &[]).trim().to_owned();

    let next = Arc::new(AtomicUsize::new(0));
    let interrupted = Arc::new(Mutex::new(Vec::new()));
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
                    interrupted.lock().unwrap().push(i);
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
    let interrupted = interrupted.lock().unwrap().clone();
    assert!(!received.is_empty(), "some issuance completed between the kills");
    assert!(!interrupted.is_empty(), "at least one kill landed mid-request");
    eprintln!("{} certificates delivered, {} requests cut off by SIGKILL", received.len(), interrupted.len());

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

    // A kill between an intent and its certificate left the key reserved, so the same request
    // would be refused as a duplicate although no client got a certificate. Whether a kill fell
    // in that window is chance; one more intent is written as such a kill leaves it (reserved,
    // never signed), so the intents job is exercised on every run beside what the kills left.
    let count = |sql: &str| must("sqlite3", &[db, sql], &[]).trim().parse::<usize>().unwrap();
    let left = count("SELECT COUNT(*) FROM certificates WHERE state = 'intent'");
    eprintln!("{left} intents left behind by the kills");
    let planted = &paths[48];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime.block_on(async {
        let settings = ServerConfig { data_dir: Some(data.clone()), ..Default::default() }.into_settings().unwrap();
        let clock = Arc::new(FakeClock::at(now()));
        let state = signet_server::build_state(&settings, "http://127.0.0.1", clock.clone()).await.unwrap();
        let intent = IssuanceIntent {
            serial: Serial::random(),
            profile: "medium-identity".into(),
            subject_json: "{}".into(),
            spki_sha256: key_of(planted),
            requested_by: "ra".into(),
            at: clock.now(),
        };
        let event = AuditEvent::new(intent.at, "ra", AuditAction::IssuanceIntent, intent.serial.to_hex(), json!({}));
        state.store().record_intent(&intent, event, None).await.unwrap();
        // The job on a clock moved past the bound, and past the lease the killed servers took
        // and never handed back, instead of waiting for both.
        clock.advance(ABANDONED_AFTER + Duration::hours(1));
        let store = state.store().clone();
        let outcome = JobRunner::new(state.core(), Mailer::new(&settings.mail).unwrap()).run_once(Job::Intents).await;
        // Closed before the sqlite3 tool and the next server open the file.
        store.close().await;
        outcome.unwrap()
    });
    drop(runtime);
    assert_eq!(outcome, Outcome::Intents { resolved: left + 1 });
    assert_eq!(count("SELECT COUNT(*) FROM certificates WHERE state = 'intent'"), 0, "nothing stuck");
    assert_eq!(count("SELECT COUNT(*) FROM audit_log WHERE action = 'issuance-abandoned'"), left + 1);

    // Every request cut off can be sent again — unless its certificate was stored and only the
    // answer was lost, which leaves the key certified.
    let retries: Vec<(&Path, bool)> = interrupted
        .iter()
        .map(|&i| {
            let stored = count(&format!(
                "SELECT COUNT(*) FROM certificates WHERE spki_sha256 = '{}' AND state = 'issued'",
                key_of(&paths[i])
            ));
            (paths[i].as_path(), stored == 1)
        })
        .chain([(planted.as_path(), false)])
        .collect();
    let server = Server::start(&data, &[]);
    for (csr, stored) in retries {
        let out = tmp.path().join("retry.json");
        let code =
            post(&format!("{}/api/v1/certificates", server.base), &token, &issue_json("medium-identity", csr), &out);
        let body = std::fs::read_to_string(&out).unwrap();
        let expected = if stored { "409" } else { "201" };
        assert_eq!(code, expected, "{} sent again: {body}", csr.display());
    }
    drop(server);
    let out = must(SIGNET, &["audit", "verify", "--data-dir", &d], &[]);
    assert!(out.contains("audit log intact"), "{out}");
}

/// The time now; the servers the test starts run on the system clock.
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The hex SHA-256 of the key in a CSR file: what the certificates table reserves.
fn key_of(csr: &Path) -> String {
    hex::encode(VerifiedCsr::parse(&std::fs::read(csr).unwrap()).unwrap().spki_sha256())
}
