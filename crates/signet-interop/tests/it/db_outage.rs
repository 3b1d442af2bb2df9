//! The database goes away under load and comes back: requests during the outage fail cleanly
//! (problem+json, no hang, no half-written record) and the same running server serves again
//! once the database is back, without a restart.
//!
//! The outage is made on the test's own database only — connections refused
//! (`ALLOW_CONNECTIONS false`) and every open session killed, which is what clients of a
//! restarting PostgreSQL see — so other suites sharing the PostgreSQL server are not disturbed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use signet_pki::Serial;

fn psql(sql: &str) {
    let (ok, out) =
        run("psql", &["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql]);
    assert!(ok, "psql: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_fails_requests_cleanly_and_the_server_recovers() {
    let ca = Arc::new(Ca::start("postgres").await);
    let db = ca.settings.database_url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let csr = ca.csr("load", "ec:prime256v1");

    // A client issuing without pause throughout, recording every answer.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (ca, stop, csr) = (ca.clone(), stop.clone(), csr.clone());
        tokio::task::spawn_blocking(move || {
            let mut answers = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                // One key may be certified once; a fresh CSR per request would measure openssl.
                let subject = person("Load", &format!("load{i}@acme.example"));
                let csr = if i == 0 { csr.clone() } else { ca.csr(&format!("load{i}"), "ec:prime256v1") };
                let issued = ca.issue(&format!("load{i}"), "medium-identity", subject, &csr);
                answers.push((issued.status, issued.body));
                i += 1;
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;

    psql(&format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false"));
    psql(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"));
    // During the outage a request fails fast and readably.
    let during_csr = ca.csr("during", "ec:prime256v1");
    let started = Instant::now();
    let during = ca.issue("during", "medium-identity", person("During", "during@acme.example"), &during_csr);
    assert_eq!(during.status, 500, "{}", during.body);
    assert_eq!(during.body["type"], "urn:signet:problem:internal");
    assert!(!during.body.to_string().contains("terminat"), "database errors stay in the log: {}", during.body);
    assert!(started.elapsed() < Duration::from_secs(35), "no request hangs on the dead database");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    psql(&format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS true"));

    // The same server serves again: the pool replaces dead connections on its own.
    let mut recovered = false;
    for _ in 0..50 {
        let issued = ca.issue("after", "medium-identity", person("After", "after@acme.example"), &during_csr);
        if issued.status == 201 {
            recovered = true;
            break;
        }
        assert_eq!(issued.status, 500, "only clean failures while reconnecting: {}", issued.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "issuance works again without restarting the server");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let answers = load.await.unwrap();

    let ok: Vec<&serde_json::Value> = answers.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
    let failed = answers.iter().filter(|(s, _)| *s == 500).count();
    assert!(answers.iter().all(|(s, _)| *s == 201 || *s == 500), "every answer is a certificate or a clean error");
    assert!(!ok.is_empty() && failed > 0, "the load saw both service and outage ({} ok, {failed} failed)", ok.len());
    // Every certificate a client received is stored, byte for byte; nothing half-written.
    let store = ca.running.state.store();
    for body in &ok {
        let serial = Serial::from_hex(body["serial"].as_str().unwrap()).unwrap();
        let stored = store.certificate(&serial).await.unwrap().expect("a delivered certificate is stored");
        assert_eq!(signet_pki::to_pem("CERTIFICATE", &stored.der), body["certificate"].as_str().unwrap());
    }
    let records = store.audit_records().await.unwrap();
    signet_ra::audit::verify_chain(&records).expect("the audit chain is unbroken");
    eprintln!("outage under load: {} issued, {failed} refused cleanly", ok.len());
}
