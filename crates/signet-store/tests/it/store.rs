//! The storage suite, run against both SQLite and PostgreSQL; and PostgreSQL over TLS, on a
//! cluster the test starts.

use std::path::PathBuf;

use serde_json::json;
use signet_pki::issue::IssuedCertificate;
use signet_pki::subject::Email;
use signet_pki::{RevocationReason, Serial};
use signet_ra::application::ApplicationId;
use signet_ra::audit::{AuditAction, AuditEvent, ChainBreak};
use signet_ra::issuance::{ABANDONED_AFTER, CaStore, IssuanceIntent, Revoked, StoreError, StoredStatus};
use signet_ra::notify::{MessageKind, OutboxMessage};
use signet_store::{ApiKey, Store};
use time::{Duration, OffsetDateTime};

use crate::common::backend_test;

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

pub(crate) fn event(action: AuditAction, subject: &str) -> AuditEvent {
    AuditEvent::new(now(), "test", action, subject, json!({}))
}

pub(crate) fn intent(serial: &Serial, key: &str) -> IssuanceIntent {
    IssuanceIntent {
        serial: serial.clone(),
        profile: "medium-identity".into(),
        subject_json: "{}".into(),
        spki_sha256: key.into(),
        requested_by: "test".into(),
        at: now(),
    }
}

async fn issue(store: &Store, key: &str) -> Serial {
    let serial = Serial::random();
    store.record_intent(&intent(&serial, key), event(AuditAction::IssuanceIntent, key), None).await.unwrap();
    let cert = IssuedCertificate {
        der: vec![0x30, 0x00],
        serial: serial.clone(),
        not_before: now(),
        not_after: now() + Duration::days(365),
    };
    store.complete_issuance(&cert, event(AuditAction::CertificateIssued, key), None).await.unwrap();
    serial
}

backend_test!(issue_revoke_and_list, |store| async move {
    let serial = issue(&store, "k1").await;
    assert_eq!(store.status(&serial).await.unwrap(), Some(StoredStatus::Good));
    assert_eq!(store.certificate(&serial).await.unwrap().unwrap().der, vec![0x30, 0x00]);
    let at = now() + Duration::hours(1);
    let r = store
        .revoke(&serial, RevocationReason::KeyCompromise, at, event(AuditAction::CertificateRevoked, "r"), &[])
        .await;
    assert_eq!(r.unwrap(), Revoked::Now);
    assert_eq!(
        store.status(&serial).await.unwrap(),
        Some(StoredStatus::Revoked { at, reason: RevocationReason::KeyCompromise })
    );
    let again =
        store.revoke(&serial, RevocationReason::Superseded, at, event(AuditAction::CertificateRevoked, "r"), &[]).await;
    assert_eq!(again.unwrap(), Revoked::Already);
    let listed = store.revoked_unexpired(now()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].serial, serial);
    assert_eq!(listed[0].reason, RevocationReason::KeyCompromise);
    // Expired certificates leave the CRL.
    assert!(store.revoked_unexpired(now() + Duration::days(400)).await.unwrap().is_empty());
    // intent, issued, revoked: the repeated revocation changed nothing and left no row.
    assert_eq!(store.verify_audit().await.unwrap(), Ok(3));
});

fn notice(key: &str) -> OutboxMessage {
    OutboxMessage {
        to: Email::new("jane.doe@acme.example").unwrap(),
        subject: "Your certificate was revoked".into(),
        body_text: "revoked".into(),
        kind: MessageKind::CertificateRevoked,
        dedup_key: key.into(),
    }
}

backend_test!(a_revocation_queues_its_notice_and_a_repeated_one_queues_none, |store| async move {
    let serial = issue(&store, "k1").await;
    let revoke = |key: &'static str| {
        let (store, serial) = (store.clone(), serial.clone());
        async move {
            let e = event(AuditAction::CertificateRevoked, "r");
            store.revoke(&serial, RevocationReason::KeyCompromise, now(), e, &[notice(key)]).await.unwrap()
        }
    };
    assert_eq!(revoke("first").await, Revoked::Now);
    assert_eq!(revoke("second").await, Revoked::Already);
    let queued = store.pending_outbox(now(), 10).await.unwrap();
    let keys: Vec<&str> = queued.iter().map(|q| q.message.dedup_key.as_str()).collect();
    assert_eq!(keys, ["first"]);
    assert_eq!(queued[0].message.kind, MessageKind::CertificateRevoked);
});

/// Issues a certificate requested by `requested_by`, valid from now to `not_after`.
async fn issue_for(store: &Store, requested_by: &str, key: &str, not_after: OffsetDateTime) -> Serial {
    let serial = Serial::random();
    let intent = IssuanceIntent { requested_by: requested_by.into(), ..intent(&serial, key) };
    store.record_intent(&intent, event(AuditAction::IssuanceIntent, key), None).await.unwrap();
    let cert = IssuedCertificate { der: vec![0x30, 0x00], serial: serial.clone(), not_before: now(), not_after };
    store.complete_issuance(&cert, event(AuditAction::CertificateIssued, key), None).await.unwrap();
    serial
}

backend_test!(expiring_certificates_of_subscriber_accounts_page_by_serial, |store| async move {
    let (a, b) = (ApplicationId::generate(), ApplicationId::generate());
    let soon = now() + Duration::days(30);
    let mut expected = vec![
        (a.clone(), issue_for(&store, &format!("applicant:{a}"), "a1", soon).await),
        (a.clone(), issue_for(&store, &format!("subscriber:{a}"), "a2", now() + Duration::days(61)).await),
        (b.clone(), issue_for(&store, &format!("applicant:{b}"), "b1", soon).await),
    ];
    // Not listed: later than the horizon, already expired, revoked, or of no account.
    issue_for(&store, &format!("applicant:{a}"), "late", now() + Duration::days(90)).await;
    issue_for(&store, &format!("applicant:{a}"), "gone", now() - Duration::days(1)).await;
    let revoked = issue_for(&store, &format!("applicant:{b}"), "revoked", soon).await;
    let e = event(AuditAction::CertificateRevoked, "r");
    store.revoke(&revoked, RevocationReason::KeyCompromise, now(), e, &[]).await.unwrap();
    issue_for(&store, "acme:7", "acme", soon).await;
    issue_for(&store, "operator:alice", "operator", soon).await;

    expected.sort_by_key(|(_, serial)| serial.to_hex());
    let horizon = now() + Duration::days(61);
    let first = store.expiring_account_certificates(now(), horizon, None, 2).await.unwrap();
    let rest = store.expiring_account_certificates(now(), horizon, Some(&first[1].1.serial), 2).await.unwrap();
    let listed: Vec<(ApplicationId, Serial)> =
        first.into_iter().chain(rest).map(|(account, c)| (account, c.serial)).collect();
    assert_eq!(listed, expected);
});

backend_test!(duplicate_keys_are_refused_until_the_intent_fails, |store| async move {
    issue(&store, "same-key").await;
    let second = Serial::random();
    let err = store.record_intent(&intent(&second, "same-key"), event(AuditAction::IssuanceIntent, "x"), None).await;
    assert!(matches!(err, Err(StoreError::Conflict("key"))), "{err:?}");
    assert_eq!(store.status(&second).await.unwrap(), None);

    let pending = Serial::random();
    store.record_intent(&intent(&pending, "k2"), event(AuditAction::IssuanceIntent, "x"), None).await.unwrap();
    assert_eq!(store.status(&pending).await.unwrap(), Some(StoredStatus::NotIssued));
    store.fail_issuance(&pending, event(AuditAction::IssuanceFailed, "x"), None).await.unwrap();
    store.record_intent(&intent(&Serial::random(), "k2"), event(AuditAction::IssuanceIntent, "x"), None).await.unwrap();
    assert_eq!(store.certificate_rows().await.unwrap(), 3);
    assert!(store.verify_audit().await.unwrap().is_ok());
});

// The key's unique index holds every row whose key is not released. The database itself
// refuses to release the key of an intent or of an issued certificate, which would let the
// key be certified again; failing the intent releases it.
backend_test!(only_a_failed_intent_releases_its_key, |store| async move {
    let issued = issue(&store, "issued-key").await;
    let pending = Serial::random();
    store.record_intent(&intent(&pending, "pending-key"), event(AuditAction::IssuanceIntent, "x"), None).await.unwrap();
    let released = |serial: &Serial| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM certificates WHERE serial = $1 AND key_released")
            .bind(serial.to_hex())
            .fetch_one(store.pool())
    };
    for serial in [&issued, &pending] {
        let release = sqlx::query("UPDATE certificates SET key_released = TRUE WHERE serial = $1")
            .bind(serial.to_hex())
            .execute(store.pool())
            .await;
        assert!(release.is_err(), "the key of {} released", state_of(&store, serial).await);
        assert_eq!(released(serial).await.unwrap(), 0);
    }
    store.fail_issuance(&pending, event(AuditAction::IssuanceFailed, "x"), None).await.unwrap();
    assert_eq!(released(&pending).await.unwrap(), 1);
    assert_eq!(released(&issued).await.unwrap(), 0);
});

async fn state_of(store: &Store, serial: &Serial) -> String {
    sqlx::query_scalar("SELECT state FROM certificates WHERE serial = $1")
        .bind(serial.to_hex())
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Records an intent at `at` and nothing after it, as a node that died mid-issuance leaves it.
async fn stuck(store: &Store, key: &str, at: OffsetDateTime) -> Serial {
    let serial = Serial::random();
    let i = IssuanceIntent { at, ..intent(&serial, key) };
    store.record_intent(&i, event(AuditAction::IssuanceIntent, key), None).await.unwrap();
    serial
}

backend_test!(abandoned_intents_are_failed_once_audited_and_free_their_key, |store| async move {
    let old = stuck(&store, "old-key", now()).await;
    let fresh = stuck(&store, "fresh-key", now() + Duration::minutes(5)).await;
    let done = issue(&store, "issued-key").await;
    let run_at = now() + Duration::minutes(12);
    let before = store.audit_records().await.unwrap().len();

    let resolved = store.abandon_intents(run_at - ABANDONED_AFTER, run_at, 100).await.unwrap();
    assert_eq!(resolved, std::slice::from_ref(&old), "only the intent older than the bound");
    assert_eq!(state_of(&store, &old).await, "failed");
    assert_eq!(state_of(&store, &fresh).await, "intent", "seven minutes old: maybe still signing");
    assert_eq!(store.status(&done).await.unwrap(), Some(StoredStatus::Good), "issued rows are not touched");
    assert_eq!(store.status(&old).await.unwrap(), Some(StoredStatus::NotIssued));

    let records = store.audit_records().await.unwrap();
    assert_eq!(records.len(), before + 1, "one audit row per resolved intent");
    let row = records.last().unwrap();
    assert_eq!(
        (row.action.as_str(), row.actor.as_str(), row.subject.as_str(), row.at),
        ("issuance-abandoned", "system", old.to_hex().as_str(), run_at.unix_timestamp())
    );
    let details: serde_json::Value = serde_json::from_str(&row.details).unwrap();
    assert_eq!(details["spki_sha256"], "old-key");
    assert_eq!(details["intent_at"], now().unix_timestamp());

    // The key is free again; the fresh intent still holds its own.
    stuck(&store, "old-key", run_at).await;
    let taken = intent(&Serial::random(), "fresh-key");
    let again = store.record_intent(&taken, event(AuditAction::IssuanceIntent, "x"), None).await;
    assert!(matches!(again, Err(StoreError::Conflict("key"))), "{again:?}");

    // A second run finds nothing and records nothing.
    let n = store.audit_records().await.unwrap().len();
    assert!(store.abandon_intents(run_at - ABANDONED_AFTER, run_at, 100).await.unwrap().is_empty());
    assert_eq!(store.audit_records().await.unwrap().len(), n);
    assert!(store.verify_audit().await.unwrap().is_ok());
});

backend_test!(multi_thread 4: two_nodes_resolving_at_once_resolve_each_intent_once, |store| async move {
    let mut serials = Vec::new();
    for i in 0..8 {
        serials.push(stuck(&store, &format!("k{i}"), now()).await);
    }
    let run_at = now() + Duration::hours(1);
    let nodes: Vec<_> = (0..2)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.abandon_intents(run_at - ABANDONED_AFTER, run_at, 100).await.unwrap() })
        })
        .collect();
    let mut resolved = Vec::new();
    for node in nodes {
        resolved.extend(node.await.unwrap());
    }
    resolved.sort();
    serials.sort();
    assert_eq!(resolved, serials, "every intent resolved, none twice");
    let audited = store.audit_records().await.unwrap().iter().filter(|r| r.action == "issuance-abandoned").count();
    assert_eq!(audited, serials.len());
    assert!(store.verify_audit().await.unwrap().is_ok());
});

backend_test!(unknown_serials_and_crl_numbers, |store| async move {
    let ghost = Serial::random();
    let r = store
        .revoke(
            &ghost,
            RevocationReason::Unspecified,
            now(),
            event(AuditAction::CertificateRevoked, "g"),
            &[notice("g")],
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)));
    assert_eq!(store.audit_records().await.unwrap().len(), 0, "a refused change leaves no audit row");
    assert!(store.pending_outbox(now(), 10).await.unwrap().is_empty(), "nor a notice");
    let a = store.next_crl_number(event(AuditAction::CrlPublished, "c")).await.unwrap();
    let b = store.next_crl_number(event(AuditAction::CrlPublished, "c")).await.unwrap();
    assert_eq!((a, b), (1, 2));
});

backend_test!(api_keys_by_hash_and_unique_names, |store| async move {
    let key = ApiKey { name: "ra1".into(), role: "ra-operator".into() };
    store.create_api_key(&key, "h1", &event(AuditAction::ApiKeyCreated, "ra1")).await.unwrap();
    assert_eq!(store.api_key_by_hash("h1").await.unwrap(), Some(key.clone()));
    assert_eq!(store.api_key_by_hash("h2").await.unwrap(), None);
    let dup = store.create_api_key(&key, "h3", &event(AuditAction::ApiKeyCreated, "ra1")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
});

backend_test!(tampering_with_the_audit_log_is_detected, |store| async move {
    for k in ["a", "b", "c"] {
        issue(&store, k).await;
    }
    assert_eq!(store.verify_audit().await.unwrap(), Ok(6));
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2").execute(store.pool()).await.unwrap();
    assert_eq!(store.verify_audit().await.unwrap(), Err(ChainBreak::Altered(2)));
    sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(store.pool()).await.unwrap();
    assert_eq!(store.verify_audit().await.unwrap(), Err(ChainBreak::Broken(3)));
});

// Rows appended inside a request's scope carry its id, inside the chain; rows outside carry
// none and hash as before the column existed.
backend_test!(audit_rows_carry_the_request_id_of_their_scope, |store| async move {
    issue(&store, "outside").await;
    let id = "0123456789abcdef0123456789abcdef".to_owned();
    signet_store::request::scope(id.clone(), issue(&store, "inside")).await;
    let rows = store.audit_records().await.unwrap();
    let ids: Vec<Option<&str>> = rows.iter().map(|r| r.request_id.as_deref()).collect();
    assert_eq!(ids, [None, None, Some(id.as_str()), Some(id.as_str())]);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(4));
    sqlx::query("UPDATE audit_log SET request_id = NULL WHERE seq = 4").execute(store.pool()).await.unwrap();
    assert_eq!(store.verify_audit().await.unwrap(), Err(ChainBreak::Altered(4)));
});

// The figures `/metrics` reports: unsent and retrying mail, the oldest unsent, and the
// subjects locked now per scope.
backend_test!(operating_figures_count_the_outbox_and_the_locks, |store| async move {
    use signet_ra::application::ApplicationStore;
    use signet_ra::lockout::{AttemptScope, AttemptStore};
    let empty = store.operating_figures(now()).await.unwrap();
    assert_eq!((empty.outbox_unsent, empty.outbox_oldest_unsent, empty.locked.len()), (0, None, 0));
    store.enqueue(&[notice("a"), notice("b")]).await.unwrap();
    let policy = AttemptScope::ActivationCode.default_policy();
    for _ in 0..5 {
        store.record_failure(AttemptScope::ActivationCode, "7K2M9Q4T8V1W", &policy, now()).await.unwrap();
    }
    let figures = store.operating_figures(now()).await.unwrap();
    assert_eq!((figures.outbox_unsent, figures.outbox_retrying), (2, 0));
    assert!(figures.outbox_oldest_unsent.is_some());
    assert_eq!(figures.locked, [("activation-code".to_owned(), 1)]);
    let later = store.operating_figures(now() + Duration::days(2)).await.unwrap();
    assert!(later.locked.is_empty(), "the lock has lapsed");
    let pool = store.pool_use();
    assert!(pool.open >= pool.idle && pool.max >= 4, "{pool:?}");
});

backend_test!(multi_thread 4: concurrent_writers_keep_the_chain_whole, |store| async move {
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move { issue(&s, &format!("key-{i}")).await }));
    }
    let mut serials = Vec::new();
    for t in tasks {
        serials.push(t.await.unwrap());
    }
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 24);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(48));
});

#[cfg(unix)]
/// A PostgreSQL cluster of its own on loopback that accepts TLS connections only (`hostssl` in
/// pg_hba.conf), with a server certificate for localhost and 127.0.0.1 from a throwaway CA.
/// Dropping it stops the server, also when an assertion failed.
struct TlsCluster {
    /// The folder of initdb, pg_ctl and pg_isready.
    bin: PathBuf,
    /// PostgreSQL refuses to run as root: then every command runs as the `postgres` user.
    as_postgres: bool,
    port: u16,
    /// The CA that issued the server certificate, and one that did not.
    ca_pem: PathBuf,
    wrong_ca_pem: PathBuf,
    dir: tempfile::TempDir,
}

#[cfg(unix)]
impl TlsCluster {
    /// The PostgreSQL programs: initdb on the PATH, else in Debian's versioned folders.
    fn find_bin() -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .collect();
        debian.sort_by(|a, b| b.cmp(a));
        let initdb = std::env::split_paths(&path).chain(debian).map(|d| d.join("initdb")).find(|p| p.is_file())?;
        // A symlink (/usr/local/bin/initdb) points to the folder that also has pg_isready.
        Some(std::fs::canonicalize(initdb).ok()?.parent()?.to_owned())
    }

    fn command(&self, program: &str) -> std::process::Command {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            std::process::Command::new(program)
        };
        command.current_dir(self.dir.path());
        command
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `command` to success, or panics with its output.
    fn run(mut command: std::process::Command) {
        let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
        assert!(
            out.status.success(),
            "{command:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates and starts the cluster; `None` if PostgreSQL is not installed.
    fn start() -> Option<Self> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let bin = Self::find_bin()?;
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = std::fs::metadata(dir.path()).unwrap().uid() == 0;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster = Self {
            bin,
            as_postgres,
            port,
            ca_pem: dir.path().join("ca.pem"),
            wrong_ca_pem: dir.path().join("wrong-ca.pem"),
            dir,
        };

        let ca = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.distinguished_name.push(rcgen::DnType::CommonName, name);
            let pem = params.self_signed(&key).unwrap().pem();
            (rcgen::Issuer::new(params, key), pem)
        };
        let (issuer, ca_pem) = ca("Signet test PostgreSQL CA");
        std::fs::write(&cluster.ca_pem, ca_pem).unwrap();
        std::fs::write(&cluster.wrong_ca_pem, ca("Some other CA").1).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let (cert, key) = (cluster.dir.path().join("server.crt"), cluster.dir.path().join("server.key"));
        std::fs::write(&cert, params.signed_by(&server_key, &issuer).unwrap().pem()).unwrap();
        std::fs::write(&key, server_key.serialize_pem()).unwrap();
        // PostgreSQL refuses a private key others can read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        if as_postgres {
            let mut chown = std::process::Command::new("chown");
            chown.args(["-R", "postgres:"]).arg(cluster.dir.path());
            Self::run(chown);
        }

        let mut initdb = cluster.command("initdb");
        initdb.args(["--auth=trust", "--username=signet", "--encoding=UTF8", "--no-sync", "-D"]).arg(cluster.data());
        Self::run(initdb);
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\nfsync = off\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            cert.display(),
            key.display()
        );
        let mut postgresql_conf =
            std::fs::OpenOptions::new().append(true).open(cluster.data().join("postgresql.conf")).unwrap();
        std::io::Write::write_all(&mut postgresql_conf, conf.as_bytes()).unwrap();
        std::fs::write(
            cluster.data().join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .unwrap();

        let mut start = cluster.command("pg_ctl");
        start.args(["--no-wait", "-l"]).arg(cluster.dir.path().join("log")).arg("-D").arg(cluster.data()).arg("start");
        Self::run(start);
        let ready = || {
            let mut ready = cluster.command("pg_isready");
            ready.args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", "1"]);
            ready.status().unwrap().success()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !ready() {
            if std::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(cluster.dir.path().join("log")).unwrap_or_default();
                panic!("PostgreSQL did not start:\n{log}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(cluster)
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://signet@{host}:{}/postgres?{query}", self.port)
    }
}

#[cfg(unix)]
impl Drop for TlsCluster {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.args(["-m", "immediate", "-D"]).arg(self.data()).arg("stop");
        if let Err(e) = stop.output() {
            eprintln!("could not stop the test PostgreSQL cluster: {e}");
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn postgres_over_tls() {
    let Some(cluster) = TlsCluster::start() else {
        eprintln!("skipped: no initdb on the PATH or in /usr/lib/postgresql/*/bin, so no PostgreSQL cluster to start");
        return;
    };
    let tls_in_use = async |store: &Store| -> bool {
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .unwrap()
    };

    // Encrypted, the certificate unchecked.
    let store = Store::connect(&cluster.url("127.0.0.1", "sslmode=require")).await.unwrap();
    assert!(tls_in_use(&store).await);
    store.close().await;

    // Encrypted, the certificate checked against the CA and the host name.
    let ca = cluster.ca_pem.display();
    let store =
        Store::connect(&cluster.url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}"))).await.unwrap();
    assert!(tls_in_use(&store).await);
    store.close().await;

    // Another CA's certificate does not pass.
    let wrong = cluster.wrong_ca_pem.display();
    let err = Store::connect(&cluster.url("localhost", &format!("sslmode=verify-full&sslrootcert={wrong}")))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid peer certificate: UnknownIssuer"), "{err}");

    // The server takes TLS connections only.
    let err = Store::connect(&cluster.url("127.0.0.1", "sslmode=disable")).await.unwrap_err().to_string();
    assert!(err.contains("pg_hba.conf") && err.contains("no encryption"), "{err}");
}

// A session's kept page (Post/Redirect/Get) opens only for its own session, is dropped with
// `None` and when the token rotates, and a session that is not stored has none to keep.
backend_test!(a_kept_page_belongs_to_its_session_and_goes_with_its_token, |store| async move {
    use signet_store::SessionRecord;
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let record = SessionRecord {
        csrf: "form-token".into(),
        principal: String::new(),
        data: "{}".into(),
        expires_at: now + Duration::hours(1),
        flash: None,
    };
    store.create_session("a", &record, now).await.unwrap();
    store.create_session("b", &record, now).await.unwrap();
    assert!(matches!(store.set_session_flash("nobody", Some("page")).await, Err(StoreError::NotFound)));

    store.set_session_flash("a", Some("<p>typed</p>")).await.unwrap();
    assert_eq!(store.session("a", now).await.unwrap().unwrap().flash.as_deref(), Some("<p>typed</p>"));
    // Copied onto another session's row, the sealed page does not open.
    sqlx::query(
        "UPDATE web_sessions SET flash = (SELECT flash FROM web_sessions WHERE id_hash = 'a') WHERE id_hash = 'b'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    assert_eq!(store.session("b", now).await.unwrap().unwrap().flash, None);

    // Saving the session keeps the page; rotating its token drops it.
    store.update_session("a", None, &record).await.unwrap();
    assert!(store.session("a", now).await.unwrap().unwrap().flash.is_some());
    store.set_session_flash("a", None).await.unwrap();
    assert_eq!(store.session("a", now).await.unwrap().unwrap().flash, None);
    store.set_session_flash("a", Some("page")).await.unwrap();
    store.update_session("a", Some("a2"), &record).await.unwrap();
    let raw: Option<String> = sqlx::query_scalar("SELECT flash FROM web_sessions WHERE id_hash = 'a2'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(raw, None);
});
