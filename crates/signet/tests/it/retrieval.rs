//! `signet token retrieve` end to end: a real server (`signet_server::spawn`, SQLite) with an
//! application driven to "certificates ready" through the domain and the store, the `signet`
//! binary retrieving onto a fresh SoftHSM2 token, and OpenSC's `pkcs11-tool` and OpenSSL as the
//! independent parties that look at what landed on the token.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use signet_authority::ServerConfig;
use signet_pki::profile::Catalog;
use signet_pki::subject::CommonName;
use signet_ra::application::{
    Application, ApplicationForm, ApplicationId, ApplicationStore, Command, IssuedSecret, NewPassword, OperatorId,
    PasswordHash, Transition,
};
use signet_ra::notify::{MessageKind, Notifier};
use signet_ra::token_stock::{StockState, TokenSerial, TokenStockStore, shipment_message};
use signet_ra::vetting::DeadlinePolicy;
use signet_ra::witness::{WitnessStore, WitnessedGeneration};
use signet_ra::{Clock, FakeClock};
use signet_server::Running;
use time::{Duration, OffsetDateTime};

use crate::common::{SIGNET, SOFTHSM, must, run};

const PASSWORD: &str = "Tr0ub4dor&3-horse";
pub(crate) const PIN: &str = "864213";

/// A server on a fake clock, a SoftHSM2 token directory, and a scratch folder.
pub(crate) struct World {
    pub(crate) server: Running,
    clock: Arc<FakeClock>,
    dir: tempfile::TempDir,
    softhsm_conf: PathBuf,
}

impl World {
    pub(crate) async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A world whose server trusts the attestation roots in `attestation_roots` (PEM).
    async fn start_with(attestation_roots: Option<PathBuf>) -> Self {
        log_buffer();
        let dir = tempfile::tempdir().unwrap();
        let settings = ServerConfig {
            data_dir: Some(dir.path().join("data")),
            listen: Some("127.0.0.1:0".into()),
            attestation_roots,
            ..Default::default()
        }
        .into_settings()
        .unwrap();
        // Real time, so the certificates are valid for OpenSSL now; the application's history is
        // written in the past instead.
        let clock = Arc::new(FakeClock::at(OffsetDateTime::now_utc()));
        let server = signet_server::spawn(&settings, clock.clone()).await.unwrap();
        let softhsm_conf = signet_testkit::softhsm_conf(&dir.path().join("softhsm"));
        Self { server, clock, dir, softhsm_conf }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn notifier(&self) -> Notifier {
        Notifier::new(&self.server.base_url, &Catalog::default_eca(), DeadlinePolicy::default())
    }

    /// Saves a transition as the server would, returning the activation code if its outbox
    /// message carries one (read from the message body, as the applicant would).
    async fn save(&self, t: &Transition) -> Option<String> {
        let outbox = self.notifier().outbox_for(t);
        self.server.state.store().save_transition(t, &outbox).await.unwrap();
        outbox.iter().filter(|m| m.kind == MessageKind::ActivationCode).find_map(|m| {
            let line = m.body_text.lines().find_map(|l| l.strip_prefix("Activation code: "))?;
            Some(line.trim().to_owned())
        })
    }

    /// An application at "certificates ready"; for the hardware key types, shipped on a token
    /// provisioned from the stock into this world's SoftHSM2 slot (labelled `ECA <reference>`),
    /// as an RA ships it, so nothing but that token proves the key.
    pub(crate) async fn ready_application(&self, cert_type: &str, days_ago: i64) -> (ApplicationId, String) {
        if ["medium-token", "medium-hardware"].contains(&cert_type) {
            let app = ApplicationId::generate();
            let serial = self.provision(&format!("ECA {app}")).await;
            self.walk(app, cert_type, days_ago, Some(&serial)).await
        } else {
            self.unwitnessed_application(cert_type, days_ago).await
        }
    }

    /// Submits `cert_type` notarized `days_ago` and walks it through vetting, approval and
    /// shipping (no token from the stock) to "certificates ready"; returns its reference and the
    /// emailed code.
    async fn unwitnessed_application(&self, cert_type: &str, days_ago: i64) -> (ApplicationId, String) {
        self.walk(ApplicationId::generate(), cert_type, days_ago, None).await
    }

    /// `signet admin token provision` onto this world's blank SoftHSM2 slot, as the RA does
    /// before shipping; returns the serial it reports.
    async fn provision(&self, label: &str) -> TokenSerial {
        let data = self.path("data");
        let args = ["admin", "token", "provision", "--data-dir", file(&data), "--module", SOFTHSM, "--label", label];
        let (ok, out, err) = self.signet(&args, &[]).await;
        assert!(ok, "{out}{err}");
        let serial =
            out.strip_prefix("Token ").and_then(|r| r.split_whitespace().next()).unwrap_or_else(|| panic!("{out}"));
        TokenSerial::new(serial).unwrap()
    }

    /// Submits application `id` for `cert_type` notarized `days_ago` and walks it to
    /// "certificates ready", shipping it on the stock token `token` if given (bound in the same
    /// transaction, as the console does).
    async fn walk(
        &self,
        id: ApplicationId,
        cert_type: &str,
        days_ago: i64,
        token: Option<&TokenSerial>,
    ) -> (ApplicationId, String) {
        // Submitted at 14:00 whatever the time of day now: the fixture's officer call is at 15:00
        // on the day the forms arrive and is recorded two hours after them, so never before it.
        let afternoon = time::Time::from_hms(14, 0, 0).unwrap();
        let mut at = (self.clock.now() - Duration::days(days_ago)).replace_time(afternoon);
        let form: ApplicationForm = signet_ra::fixtures::sample_form(cert_type);
        let password = NewPassword::new(PASSWORD, &form.applicant.email).unwrap();
        let submitted = Application::submit(id, form, at);
        let Some(IssuedSecret::EmailVerification(verification)) = submitted.secret.clone() else {
            panic!("no email token")
        };
        let store = self.server.state.store();
        store
            .create(&submitted, &PasswordHash::new(&password).unwrap(), &self.notifier().outbox_for(&submitted))
            .await
            .unwrap();
        let mut app = submitted.application;
        let mut code = None;
        for (actor, command, wait) in signet_ra::fixtures::vetting_plan(verification, at.date(), cert_type) {
            at += wait;
            let ships = matches!(command, Command::ShipToken(_));
            let t = app.apply(&actor, command, at, &DeadlinePolicy::default()).unwrap();
            match token {
                Some(serial) if ships => {
                    let stock = store.stock_token(serial).await.unwrap().unwrap();
                    let shipped = stock.ship(t.application.id().clone()).unwrap();
                    let outbox = self.notifier().outbox_for(&t);
                    store.save_transition_with_token(&t, &outbox, &shipped, "in-stock").await.unwrap();
                }
                _ => code = self.save(&t).await.or(code),
            }
            app = t.application;
        }
        assert_eq!(app.state().state_name(), "certificates-ready");
        (app.id().clone(), code.expect("the certificates-ready email carries the activation code"))
    }

    /// Runs `signet token …` against this world's token directory.
    async fn signet(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        // The world's token directory unless the caller names another.
        let mut all = vec![("SOFTHSM2_CONF".to_owned(), self.softhsm_conf.to_str().unwrap().to_owned())];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let env = all;
        // The server answers on this runtime while the CLI runs.
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            run(SIGNET, &args, &env)
        })
        .await
        .unwrap()
    }

    /// A page of the portal, as a browser keeping its cookies in `jar`: a GET, or a form POST
    /// of `fields` if there are any. Returns the HTTP status and the page.
    async fn portal(&self, jar: &Path, path: &str, fields: &[(&str, &str)]) -> (String, String) {
        let jar = file(jar).to_owned();
        let body = self.path("page.html");
        let mut args = vec!["-s", "-b", &jar, "-c", &jar, "-o", file(&body), "-w", "%{http_code}"];
        let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for f in &fields {
            args.extend(["--data-urlencode", f]);
        }
        let url = format!("{}{path}", self.server.base_url);
        args.push(&url);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        // The server answers on this runtime while curl runs.
        let (ok, status, err) = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run("curl", &args, &[])
        })
        .await
        .unwrap();
        assert!(ok, "curl {path}: {err}");
        (status, std::fs::read_to_string(&body).unwrap_or_default())
    }

    /// `signet token retrieve` for `app` with the code, the password and `extra` settings.
    pub(crate) async fn retrieve(
        &self,
        app: &ApplicationId,
        code: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (bool, String, String) {
        let mut args = vec![
            "token",
            "retrieve",
            "--server",
            &self.server.base_url,
            "--module",
            SOFTHSM,
            "--application",
            app.as_str(),
        ];
        args.extend_from_slice(extra);
        let mut all = vec![("SIGNET_ACTIVATION_CODE", code), ("SIGNET_PASSWORD", PASSWORD)];
        all.extend_from_slice(env);
        self.signet(&args, &all).await
    }

    /// `signet token renew` for `app`'s identity certificate on its token, chosen by slot
    /// (SoftHSM2 always shows a blank slot beside it).
    async fn renew(&self, app: &ApplicationId) -> (bool, String, String) {
        let slot = self.slot_of(&format!("ECA {app}")).await;
        let args = [
            "token",
            "renew",
            "--server",
            &self.server.base_url,
            "--module",
            SOFTHSM,
            "--application",
            app.as_str(),
            "--slot",
            &slot,
        ];
        self.signet(&args, &[("SIGNET_PIN", PIN)]).await
    }

    /// The slot of the token labelled `label`, as `signet token readiness` lists it.
    async fn slot_of(&self, label: &str) -> String {
        let (ok, out, err) = self.signet(&["token", "readiness", "--module", SOFTHSM], &[]).await;
        assert!(ok, "{out}{err}");
        let lines: Vec<&str> = out.lines().collect();
        let at = lines.iter().position(|l| l.contains(&format!("token {label:?}"))).unwrap_or_else(|| panic!("{out}"));
        lines[at - 1].strip_prefix("slot ").unwrap().split(':').next().unwrap().to_owned()
    }

    /// `pkcs11-tool` logged in to the token labelled `label`.
    pub(crate) fn pkcs11_tool(&self, label: &str, args: &[&str]) -> String {
        let mut all = vec!["--module", SOFTHSM, "--token-label", label, "--login", "--pin", PIN];
        all.extend_from_slice(args);
        must("pkcs11-tool", &all, &[("SOFTHSM2_CONF", self.softhsm_conf.to_str().unwrap())])
    }

    /// The token's public objects, as `pkcs11-tool -O` prints them without logging in.
    fn public_objects(&self, label: &str) -> String {
        let args = ["--module", SOFTHSM, "--token-label", label, "-O"];
        must("pkcs11-tool", &args, &[("SOFTHSM2_CONF", self.softhsm_conf.to_str().unwrap())])
    }

    /// The token's objects, as `pkcs11-tool -O` prints them (one string per object).
    pub(crate) fn objects(&self, label: &str) -> Vec<String> {
        signet_testkit::pkcs11_objects(&self.pkcs11_tool(label, &["-O"]))
    }
}

impl World {
    /// The certificate `pkcs11-tool --read-object` finds on the token labelled `token_label` by
    /// `by` (`--id …` or `--label …`), as `<name>.pem` in the scratch folder.
    fn read_certificate(&self, token_label: &str, by: &[&str], name: &str) -> PathBuf {
        let der = self.path(&format!("{name}.der"));
        let pem = self.path(&format!("{name}.pem"));
        let mut args = vec!["--module", SOFTHSM, "--token-label", token_label, "--read-object", "--type", "cert"];
        args.extend_from_slice(by);
        args.extend(["-o", file(&der)]);
        must("pkcs11-tool", &args, &[("SOFTHSM2_CONF", self.softhsm_conf.to_str().unwrap())]);
        must("openssl", &["x509", "-inform", "DER", "-in", file(&der), "-out", file(&pem)], &[]);
        pem
    }

    /// `openssl verify -policy <policy> -explicit_policy` accepts `leaf` at the server's clock,
    /// up to `root.pem` through `issuing.pem` (as read from the token).
    fn verifies(&self, leaf: &Path, policy: &str) {
        let at = self.clock.now().unix_timestamp().to_string();
        let (root, issuing) = (self.path("root.pem"), self.path("issuing.pem"));
        let args = [
            "verify",
            "-attime",
            &at,
            "-CAfile",
            file(&root),
            "-untrusted",
            file(&issuing),
            "-policy",
            policy,
            "-explicit_policy",
            file(leaf),
        ];
        let verified = must("openssl", &args, &[]);
        assert!(verified.contains(": OK"), "{verified}");
    }

    /// The escrowed encryption key is on the token under its label, unwrapped there: sensitive,
    /// not extractable, for decryption only. Its certificate shares its CKA_ID and verifies,
    /// and the token decrypts what OpenSSL encrypts to that certificate.
    fn check_encryption_key(&self, token_label: &str, app: &ApplicationId, policy: &str) {
        let objects = self.objects(token_label);
        let label = format!("ECA encryption {app}");
        let key = objects
            .iter()
            .find(|o| o.starts_with("Private Key Object") && field(o, "label") == label)
            .unwrap_or_else(|| panic!("{objects:#?}"));
        let access = field(key, "Access");
        assert!(access.starts_with("sensitive") && !access.contains(" extractable"), "{key}");
        let usage = field(key, "Usage");
        assert!(usage.contains("decrypt") && !usage.contains("sign"), "{key}");
        let id = field(key, "ID");
        let certs: Vec<&String> =
            objects.iter().filter(|o| o.starts_with("Certificate Object") && field(o, "ID") == id).collect();
        assert_eq!((certs.len(), field(certs[0], "label")), (1, label.as_str()), "{objects:#?}");
        let pem = self.read_certificate(token_label, &["--id", id], "encryption");
        self.verifies(&pem, policy);
        let text = must("openssl", &["x509", "-noout", "-text", "-in", file(&pem)], &[]);
        assert!(text.contains("Key Encipherment") && !text.contains("Digital Signature"), "{text}");

        let (message, sealed, opened) = (self.path("secret.txt"), self.path("secret.oaep"), self.path("secret.out"));
        std::fs::write(&message, b"for the subscriber's eyes only").unwrap();
        let public = self.path("encryption.pub.pem");
        must("openssl", &["x509", "-in", file(&pem), "-pubkey", "-noout", "-out", file(&public)], &[]);
        let encrypt = ["pkeyutl", "-encrypt", "-pubin", "-inkey", file(&public), "-in", file(&message)];
        let oaep = ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1", "-out", file(&sealed)];
        must("openssl", &[&encrypt[..], &oaep[..]].concat(), &[]);
        let decrypt =
            ["--decrypt", "--id", id, "-m", "RSA-PKCS-OAEP", "--hash-algorithm", "SHA-1", "--mgf", "MGF1-SHA1"];
        self.pkcs11_tool(token_label, &[&decrypt[..], &["-i", file(&sealed), "-o", file(&opened)]].concat());
        assert_eq!(std::fs::read(&opened).unwrap(), b"for the subscriber's eyes only");
    }

    /// The token's key `id` signs; OpenSSL verifies with the public key of `certificate` (PEM).
    fn signs_with(&self, token_label: &str, id: &str, key_type: &str, certificate: &Path) {
        let data = self.path("data.txt");
        std::fs::write(&data, b"signed on the token").unwrap();
        let sig = self.path("data.sig");
        let digest = self.path("data.sha256");
        let sign = if key_type == "p-256" {
            // SoftHSM2 has no CKM_ECDSA_SHA256: the token signs a SHA-256 digest made by OpenSSL.
            must("openssl", &["dgst", "-sha256", "-binary", "-out", file(&digest), file(&data)], &[]);
            vec!["--sign", "--id", id, "-m", "ECDSA", "--signature-format", "openssl", "-i", file(&digest)]
        } else {
            vec!["--sign", "--id", id, "-m", "SHA256-RSA-PKCS", "-i", file(&data)]
        };
        self.pkcs11_tool(token_label, &[&sign[..], &["-o", file(&sig)]].concat());
        let public = self.path("leaf.pub.pem");
        must("openssl", &["x509", "-in", file(certificate), "-pubkey", "-noout", "-out", file(&public)], &[]);
        let out =
            must("openssl", &["dgst", "-sha256", "-verify", file(&public), "-signature", file(&sig), file(&data)], &[]);
        assert_eq!(out.trim(), "Verified OK");
    }
}

pub(crate) fn field<'a>(object: &'a str, name: &str) -> &'a str {
    object.lines().find_map(|l| l.trim().strip_prefix(name)).map_or("", |v| v.trim_start_matches(':').trim())
}

pub(crate) fn file(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The form token of a page.
fn csrf(page: &str) -> String {
    let rest = page.split("name=\"_csrf\" value=\"").nth(1).unwrap_or_else(|| panic!("no form token: {page}"));
    rest.split('"').next().unwrap().to_owned()
}

/// Retrieves `cert_type` with a `key_type` key onto a blank token and checks it all with
/// OpenSC and OpenSSL; returns the world, the application and its code for further steps.
async fn retrieve_and_check(cert_type: &str, key_type: &str, policy: &str) -> (World, ApplicationId, String) {
    let w = World::start().await;
    let (app, code) = w.ready_application(cert_type, 10).await;
    let (ok, out, err) = w.retrieve(&app, &code, &["--key-type", key_type], &[("SIGNET_NEW_PIN", PIN)]).await;
    assert!(ok, "{out}\n{err}");

    // The unlock code is shown once, with its warning, and works as the SO PIN.
    let lines: Vec<&str> = out.lines().collect();
    let at = lines.iter().position(|l| l.contains("unlock code")).unwrap_or_else(|| panic!("{out}"));
    let unlock = lines[at + 2].trim();
    assert!(unlock.len() == 16 && unlock.bytes().all(|b| b.is_ascii_digit()), "{out}");
    assert_eq!((out.clone() + &err).matches(unlock).count(), 1, "shown exactly once");
    assert!(out.contains("WARNING: write the unlock code down now"), "{out}");
    let token_label = format!("ECA {app}");
    // OpenSC resets the user PIN (to the same one) with it.
    must(
        "pkcs11-tool",
        &[
            "--module",
            SOFTHSM,
            "--token-label",
            &token_label,
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            unlock,
            "--init-pin",
            "--new-pin",
            PIN,
        ],
        &[("SOFTHSM2_CONF", w.softhsm_conf.to_str().unwrap())],
    );

    // The key pair was generated on the token, and cannot leave it.
    let objects = w.objects(&token_label);
    let key_label = format!("ECA identity {app}");
    let encryption_label = format!("ECA encryption {app}");
    let mut labels: Vec<&str> =
        objects.iter().filter(|o| o.starts_with("Private Key Object")).map(|o| field(o, "label")).collect();
    labels.sort_unstable();
    let mut expected = vec![encryption_label.as_str(), key_label.as_str()];
    if ["medium-token", "medium-hardware"].contains(&cert_type) {
        expected.push("signet shipment key");
    }
    assert_eq!(labels, expected, "{objects:#?}");
    let private: Vec<&String> =
        objects.iter().filter(|o| o.starts_with("Private Key Object") && field(o, "label") == key_label).collect();
    assert_eq!(field(private[0], "Access"), "sensitive, always sensitive, never extractable, local", "{objects:#?}");
    assert_eq!(field(private[0], "Usage"), "sign", "{objects:#?}");
    let id = field(private[0], "ID");
    assert_eq!(id.len(), 32, "a 16-byte CKA_ID");
    let certs: Vec<&String> = objects.iter().filter(|o| o.starts_with("Certificate Object")).collect();
    let mine: Vec<&&String> = certs.iter().filter(|o| field(o, "ID") == id).collect();
    assert_eq!(mine.len(), 1, "the certificate shares the key's CKA_ID: {objects:#?}");
    assert_eq!(field(mine[0], "label"), key_label);
    let mut ca_labels: Vec<&str> =
        certs.iter().map(|o| field(o, "label")).filter(|l| *l != key_label && *l != encryption_label).collect();
    ca_labels.sort_unstable();
    assert_eq!(ca_labels, ["Signet Dev ECA 1", "Signet Dev Root CA"], "the chain is on the token too");

    // Read everything back from the token and let OpenSSL judge it.
    let leaf = w.read_certificate(&token_label, &["--id", id], "leaf");
    w.read_certificate(&token_label, &["--label", "Signet Dev ECA 1"], "issuing");
    w.read_certificate(&token_label, &["--label", "Signet Dev Root CA"], "root");
    w.verifies(&leaf, policy);
    let subject = must("openssl", &["x509", "-noout", "-subject", "-in", file(&leaf)], &[]);
    assert!(subject.contains("O = U.S. Government") && subject.contains("CN = Jane Q. Doe"), "{subject}");

    w.signs_with(&token_label, id, key_type, &leaf);
    w.check_encryption_key(&token_label, &app, policy);
    (w, app, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieves_onto_a_blank_token_and_the_code_works_once() {
    let (w, app, code) = retrieve_and_check("medium-token", "rsa-2048", crate::common::MEDIUM_TOKEN).await;
    let token_label = format!("ECA {app}");

    // The retrieval is in the audit chain with the serial it delivered, and the chain holds.
    let store = w.server.state.store();
    let records = store.audit_records().await.unwrap();
    let retrieved = records.iter().find(|r| r.action == "application-retrieved").unwrap();
    assert!(retrieved.details.contains("\"serial\"") && retrieved.actor == "applicant", "{retrieved:?}");
    assert!(store.verify_audit().await.unwrap().is_ok());

    // SoftHSM2 now also shows a new blank slot, so the token is chosen by slot number.
    let slot = w.slot_of(&token_label).await;
    let (ok, _, err) = w.retrieve(&app, &code, &["--slot", &slot], &[("SIGNET_PIN", "000000")]).await;
    assert!(!ok && err.contains(&format!("wrong PIN for token {token_label:?}")), "{err}");
    // Without --slot the one token already set up is chosen; it has its certificates.
    for args in [&[][..], &["--slot", &slot][..]] {
        let (ok, _, err) = w.retrieve(&app, &code, args, &[("SIGNET_PIN", PIN)]).await;
        assert!(!ok && err.contains("already holds the identity key and certificate"), "{err}");
    }
    // On another token, the server refuses the spent code, and that token keeps no key.
    let other = signet_testkit::softhsm_conf(&w.path("other-token"));
    let other_env = [("SOFTHSM2_CONF", other.to_str().unwrap()), ("SIGNET_NEW_PIN", PIN)];
    let (ok, _, err) = w.retrieve(&app, &code, &[], &other_env).await;
    assert!(!ok && err.contains("already retrieved; an activation code works once"), "{err}");
    let keys = must(
        "pkcs11-tool",
        &["--module", SOFTHSM, "--token-label", &token_label, "--login", "--pin", PIN, "-O"],
        &other_env[..1],
    );
    assert!(!keys.contains("Private Key Object"), "the refused attempt's key pair was removed: {keys}");
    let keys = w.objects(&token_label).iter().filter(|o| o.starts_with("Private Key Object")).count();
    assert_eq!(keys, 3, "the first token is untouched: its identity, encryption and shipment keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_onto_the_token_in_the_last_ninety_days() {
    let (w, app, _) = retrieve_and_check("medium-token", "p-256", crate::common::MEDIUM_TOKEN).await;
    let token_label = format!("ECA {app}");
    let key_label = format!("ECA identity {app}");
    // The identity key's; the encryption key beside it is not renewed here.
    let private_keys = || -> Vec<String> {
        w.objects(&token_label)
            .into_iter()
            .filter(|o| o.starts_with("Private Key Object") && field(o, "label") == key_label)
            .collect()
    };
    let old_id = field(&private_keys()[0], "ID").to_owned();

    // Another application's reference names no key on this token.
    let slot = w.slot_of(&token_label).await;
    let other = ApplicationId::generate();
    let args = [
        "token",
        "renew",
        "--server",
        &w.server.base_url,
        "--module",
        SOFTHSM,
        "--application",
        other.as_str(),
        "--slot",
        &slot,
    ];
    let (ok, _, err) = w.signet(&args, &[("SIGNET_PIN", PIN)]).await;
    assert!(!ok && err.contains("holds no identity key with its certificate for application"), "{err}");

    // Right after retrieval the window is closed; the token keeps only its key.
    let (ok, _, err) = w.renew(&app).await;
    assert!(!ok && err.contains("renewal opens on"), "{err}");
    assert_eq!(private_keys().len(), 1);

    // 30 days before the certificate expires.
    let store = w.server.state.store();
    let identities = || async {
        let all = store.account_certificates(&app).await.unwrap();
        all.into_iter().filter(|c| c.profile == "medium-token-identity").collect::<Vec<_>>()
    };
    let old = identities().await.remove(0);
    w.clock.advance(old.not_after - Duration::days(30) - w.clock.now());
    let (ok, out, err) = w.renew(&app).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Renewed: certificate"), "{out}");

    // One key under the usual label, new, generated on the token, with its certificate; the old
    // key and certificate are gone, and the chain is not written twice.
    let objects = w.objects(&token_label);
    let private = private_keys();
    assert_eq!(private.len(), 1, "{objects:#?}");
    assert_eq!(field(&private[0], "label"), key_label);
    assert_eq!(field(&private[0], "Access"), "sensitive, always sensitive, never extractable, local");
    let id = field(&private[0], "ID").to_owned();
    assert_ne!(id, old_id, "a new key pair");
    let certs: Vec<&String> = objects.iter().filter(|o| o.starts_with("Certificate Object")).collect();
    assert_eq!(certs.len(), 4, "identity, encryption, issuing CA, root: {objects:#?}");
    let mine: Vec<&&String> = certs.iter().filter(|o| field(o, "ID") == id).collect();
    assert_eq!((mine.len(), field(mine[0], "label")), (1, key_label.as_str()), "{objects:#?}");
    assert!(!objects.iter().any(|o| o.contains("(renewal)")), "{objects:#?}");

    // OpenSSL checks the new certificate at the (fake) renewal time, and the new key signs for it.
    let pem = w.read_certificate(&token_label, &["--id", &id], "renewed");
    w.verifies(&pem, crate::common::MEDIUM_TOKEN);
    w.signs_with(&token_label, &id, "p-256", &pem);
    let serial = must("openssl", &["x509", "-noout", "-serial", "-in", file(&pem)], &[]);
    let all = identities().await;
    assert_eq!(all.len(), 2);
    assert!(serial.trim().eq_ignore_ascii_case(&format!("serial={}", all[1].serial.to_hex())), "{serial}");
    assert!(store.verify_audit().await.unwrap().is_ok());

    // The new certificate has a new window: renewing it now is too early.
    let (ok, _, err) = w.renew(&app).await;
    assert!(!ok && err.contains("renewal opens on"), "{err}");
    assert_eq!(private_keys().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieves_a_p256_identity_key() {
    let (w, app, _) = retrieve_and_check("medium", "p-256", crate::common::MEDIUM).await;

    // Holding a valid identity certificate, the subscriber may become the first user of the
    // organization's enterprise account, which the RA grants from the command line.
    let organization = signet_ra::fixtures::sample_form("medium").organization;
    let data = w.path("data");
    let add = |org: &str| {
        let args = [
            "admin",
            "enterprise",
            "add-user",
            "--data-dir",
            file(&data),
            "--organization",
            org,
            "--account",
            app.as_str(),
        ];
        run(SIGNET, &args, &[])
    };
    let (ok, _, err) = add("Globex Corporation");
    assert!(!ok && err.contains("no subscriber of your organization has that application reference"), "{err}");
    let (ok, out, err) = add(organization.as_str());
    assert!(ok && out.contains(&format!("{app} is now a user")), "{out}{err}");
    let (ok, _, err) = add(organization.as_str());
    assert!(!ok && err.contains("already a user"), "{err}");
    let records = w.server.state.store().audit_records().await.unwrap();
    assert!(records.iter().any(|r| r.action == "enterprise-user-added" && r.subject == app.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_tries_pause_retrieval_for_a_while_and_the_applicant_allows_it_again() {
    let w = World::start().await;
    let (app, code) = w.ready_application("medium-token", 10).await;
    let wrong = "ZZZZ-ZZZZ-ZZZZ-ZZZZ";
    let token_label = format!("ECA {app}");
    let slot = w.slot_of(&token_label).await;
    // The first wrong try through the CLI: a generic refusal, and the token is not touched: it
    // still has its transport PINs and no key of the applicant's.
    let (ok, _, err) = w.retrieve(&app, wrong, &["--slot", &slot], &[("SIGNET_NEW_PIN", PIN)]).await;
    assert!(!ok && err.contains("the application reference, activation code or password is not correct"), "{err}");
    assert!(!w.public_objects(&token_label).contains("signet personalized"), "the transport PINs are still set");
    let pin = [("SIGNET_PIN", PIN)];
    // A wrong password reads the same as a wrong code, and counts the same.
    let (ok, _, err) =
        w.retrieve(&app, &code, &["--slot", &slot], &[("SIGNET_PASSWORD", "not-the-password"), pin[0]]).await;
    assert!(!ok && err.contains("activation code or password is not correct"), "{err}");
    for _ in 0..2 {
        let (ok, _, err) = w.retrieve(&app, wrong, &["--slot", &slot], &pin).await;
        assert!(!ok && err.contains("is not correct"), "{err}");
    }
    // The fifth failure pauses retrieval for 15 minutes, and says until when and where the
    // applicant lifts it; even the right code waits.
    let until = signet_ra::lockout::utc_text(w.clock.now() + Duration::minutes(15));
    let page = format!("{}/applications/{app}/retrieval", w.server.base_url);
    for (secret, what) in [(wrong, "the fifth failure"), (code.as_str(), "even the right code")] {
        let (ok, _, err) = w.retrieve(&app, secret, &["--slot", &slot], &pin).await;
        let told = format!("Too many failed attempts. Try again in 15 minutes (after {until}).");
        assert!(!ok && err.contains(&told), "{what}: {err}");
        assert!(err.contains(&format!("sign in at {page}")), "{what}: {err}");
    }

    // The applicant signs in to the portal with the account password and allows it again.
    let jar = w.path("cookies");
    let (_, home) = w.portal(&jar, "/", &[]).await;
    let (status, _) = w
        .portal(
            &jar,
            "/applications/sign-in",
            &[("_csrf", &csrf(&home)), ("reference", app.as_str()), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status, "303");
    let (_, overview) = w.portal(&jar, &format!("/applications/{app}"), &[]).await;
    assert!(overview.contains(&format!("href=\"/applications/{app}/retrieval\"")), "{overview}");
    let (_, paused) = w.portal(&jar, &format!("/applications/{app}/retrieval"), &[]).await;
    assert!(
        paused.contains(&format!("Retrieval is paused until <strong id=\"paused-until\">{until}</strong>")),
        "{paused}"
    );
    // The post answers Post/Redirect/Get: the result is shown at the form's own address.
    let (status, _) = w.portal(&jar, &format!("/applications/{app}/retrieval"), &[("_csrf", &csrf(&paused))]).await;
    assert_eq!(status, "303");
    let (status, allowed) = w.portal(&jar, &format!("/applications/{app}/retrieval"), &[]).await;
    assert!(status == "200" && allowed.contains("Retrieval is allowed again"), "{status}: {allowed}");

    let (ok, out, err) = w.retrieve(&app, &code, &["--slot", &slot], &[("SIGNET_NEW_PIN", PIN)]).await;
    assert!(ok, "{out}\n{err}");
    let records = w.server.state.store().audit_records().await.unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "authentication-failed").count(), 5, "{actions:?}");
    let applicant = format!("applicant:{app}");
    assert!(records.iter().any(|r| r.action == "lockout-cleared" && r.actor == applicant), "{actions:?}");
    assert!(actions.contains(&"application-retrieved"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieval_after_the_thirty_day_deadline_fails() {
    let w = World::start().await;
    // Notarized 25 days ago: retrievable now, not after six more days.
    let (app, code) = w.ready_application("medium-token", 25).await;
    w.clock.advance(Duration::days(6));
    let slot = w.slot_of(&format!("ECA {app}")).await;
    let (ok, _, err) = w.retrieve(&app, &code, &["--slot", &slot], &[("SIGNET_NEW_PIN", PIN)]).await;
    assert!(!ok && err.contains("the retrieval deadline") && err.contains("has passed"), "{err}");
    assert!(!w.public_objects(&format!("ECA {app}")).contains("signet personalized"), "the token was not touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_says_what_is_missing() {
    let w = World::start().await;
    let (ok, out, _) = w.signet(&["token", "readiness", "--module", SOFTHSM], &[]).await;
    assert!(ok && out.contains("blank token") && out.contains("ready: nothing is missing"), "{out}");
    let (ok, out, _) = w.signet(&["token", "readiness", "--module", "/nonexistent/opensc-pkcs11.so"], &[]).await;
    assert!(!ok && out.contains("no PKCS#11 module at /nonexistent/opensc-pkcs11.so"), "{out}");
}

/// An RA operator with a known password and TOTP secret (base32, for oathtool).
async fn operator(w: &World, id: &str) -> String {
    use signet_ra::operator::{Operator, OperatorStore, Role, operator_password};
    use signet_ra::totp::{Digits, Totp, TotpAlgorithm, TotpSecret};
    let id = OperatorId::new(id).unwrap();
    let secret = TotpSecret::generate();
    let base32 = secret.to_base32();
    let password = PasswordHash::new(&operator_password(AGENT_PASSWORD, &id).unwrap()).unwrap();
    let totp = Totp::new(secret, TotpAlgorithm::Sha1, Digits::Six);
    let op = Operator::new(id.clone(), CommonName::new(id.as_str()).unwrap(), Role::RaOperator, password, totp);
    let event = op.created_event("operator:root", w.clock.now());
    w.server.state.store().create_operator(&op, event).await.unwrap();
    base32
}

const AGENT_PASSWORD: &str = "Escrow-Warden-Lantern-81";

/// The TOTP code oathtool computes for `secret` `steps_ahead` 30-second steps from now: each
/// agent command must use a step later than the agent's last, and one step ahead is accepted.
fn code(secret: &str, steps_ahead: i64) -> String {
    let at = format!("@{}", OffsetDateTime::now_utc().unix_timestamp() + 30 * steps_ahead);
    must("oathtool", &["--totp", "-b", secret, "-N", &at], &[]).trim().to_owned()
}

/// Each agent signs in at most twice, with codes for this step and the next: a code is never
/// accepted twice, and the verifier looks one step ahead at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escrowed_key_is_recovered_only_with_two_agents() {
    let w = World::start().await;
    let (app, code_) = w.ready_application("medium-token", 10).await;
    let slot = w.slot_of(&format!("ECA {app}")).await;
    let (ok, out, err) = w.retrieve(&app, &code_, &["--slot", &slot], &[("SIGNET_NEW_PIN", PIN)]).await;
    assert!(ok, "{out}\n{err}");
    let store = w.server.state.store();
    let certificates = store.account_certificates(&app).await.unwrap();
    let encryption = certificates.iter().find(|c| c.profile == "medium-token-encryption").unwrap();
    let identity = certificates.iter().find(|c| c.profile == "medium-token-identity").unwrap();
    let (serial, identity_serial) = (encryption.serial.to_hex(), identity.serial.to_hex());

    let data = w.path("data");
    let admin = |args: &[&str], env: &[(&str, &str)]| {
        let args = [&["admin", "key-recovery", args[0], "--data-dir", file(&data)], &args[1..]].concat();
        run(SIGNET, &args, env)
    };
    let mut secrets = std::collections::HashMap::new();
    for id in ["alice", "bob", "carol", "dave", "erin"] {
        secrets.insert(id, operator(&w, id).await);
    }
    for agent in ["alice", "bob", "carol", "erin"] {
        let (ok, out, err) = admin(&["designate", "--operator", agent], &[]);
        assert!(ok && out.contains("is now a key recovery agent"), "{out}{err}");
    }
    let (ok, _, err) = admin(&["designate", "--operator", "nobody"], &[]);
    assert!(!ok && err.contains("no operator nobody"), "{err}");
    // `agent` signs in with a code `steps` ahead of now.
    let as_agent = |args: &[&str], agent: &str, steps: i64, extra: &[(&str, &str)]| {
        let totp = code(&secrets[agent], steps);
        let mut env = vec![("SIGNET_AGENT_PASSWORD", AGENT_PASSWORD), ("SIGNET_AGENT_TOTP", totp.as_str())];
        env.extend_from_slice(extra);
        admin(&[args, &["--agent", agent]].concat(), &env)
    };
    let agent_cmd = |args: &[&str], agent: &str, steps: i64| as_agent(args, agent, steps, &[]);

    // An operator who is not an agent cannot ask; a signing key has no escrow.
    let (ok, _, err) = agent_cmd(&["request", "--serial", &serial, "--reason", "lost token"], "dave", 0);
    assert!(!ok && err.contains("dave is not a key recovery agent"), "{err}");
    let (ok, _, err) = agent_cmd(&["request", "--serial", &identity_serial, "--reason", "lost token"], "erin", 0);
    assert!(!ok && err.contains("has no escrowed key"), "{err}");
    // A wrong code is refused like a wrong password.
    let wrong = [("SIGNET_AGENT_PASSWORD", AGENT_PASSWORD), ("SIGNET_AGENT_TOTP", "000000")];
    let args = ["request", "--serial", &serial, "--reason", "lost token", "--agent", "carol"];
    let (ok, _, err) = admin(&args, &wrong);
    assert!(!ok && err.contains("not correct"), "{err}");

    let reason = "token destroyed; mail must be read";
    let (ok, out, err) = agent_cmd(&["request", "--serial", &serial, "--reason", reason], "carol", 0);
    assert!(ok, "{out}{err}");
    let request = out.trim().to_owned();
    let approve = ["approve", "--request", &request];
    let (ok, out, err) = agent_cmd(&approve, "alice", 0);
    assert!(ok && out.contains("pending, approved by alice"), "{out}{err}");
    // The same agent's second approval does not count.
    let (ok, _, err) = agent_cmd(&approve, "alice", 1);
    assert!(!ok && err.contains("different"), "{err}");
    let out_file = w.path("recovered.pem");
    let export = ["export", "--request", &request, "--out", file(&out_file)];
    let passphrase = ("SIGNET_EXPORT_PASSPHRASE", "recovery-passphrase-2026");
    let export_as = |agent: &str, steps: i64| as_agent(&export, agent, steps, &[passphrase]);
    // One approval is not enough to export.
    let (ok, _, err) = export_as("carol", 1);
    assert!(!ok && err.contains("two"), "{err}");
    assert!(!out_file.exists());
    let (ok, out, err) = agent_cmd(&approve, "bob", 0);
    assert!(ok && out.contains("approved by alice and bob"), "{out}{err}");
    // Only an approver exports.
    let (ok, _, err) = export_as("erin", 1);
    assert!(!ok && err.contains("approv"), "{err}");
    let (ok, out, err) = export_as("bob", 1);
    assert!(ok && out.contains("exported the key of certificate"), "{out}{err}");

    // OpenSSL opens the export with the passphrase only, and it is the certificate's key.
    let mode = std::fs::metadata(&out_file).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    let (ok, _, _) =
        run("openssl", &["pkey", "-in", file(&out_file), "-passin", "pass:wrong-passphrase", "-noout"], &[]);
    assert!(!ok, "a wrong passphrase opens nothing");
    let recovered = must(
        "openssl",
        &["pkey", "-in", file(&out_file), "-passin", &format!("pass:{}", passphrase.1), "-pubout"],
        &[],
    );
    let cert = w.path("encryption-cert.pem");
    std::fs::write(&cert, signet_pki::to_pem("CERTIFICATE", &encryption.der)).unwrap();
    let public = must("openssl", &["x509", "-in", file(&cert), "-pubkey", "-noout"], &[]);
    assert_eq!(recovered, public);

    // Exported once: the request is spent.
    let (ok, out, _) = admin(&["list"], &[]);
    assert!(ok && out.contains("exported by bob"), "{out}");
    let records = store.audit_records().await.unwrap();
    for action in ["key-escrowed", "key-recovery-agent-designated", "key-recovery-requested", "key-recovered"] {
        assert!(records.iter().any(|r| r.action == action), "{action} missing");
    }
    assert_eq!(records.iter().filter(|r| r.action == "key-recovery-approved").count(), 2);
    assert!(store.verify_audit().await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardware_types_need_an_attestation_or_a_witness() {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = signet_testkit::attestation::YubiKeyPki::new(&pki_dir.path().join("pki"));
    // A YubiKey-like client: the slot key's CSR, attestations of it (PIN once; PIN never) and
    // of another key, and a transport key; made before the server's clock stops.
    pki.openssl(&["req", "-new", "-key", "slot.key", "-subj", "/CN=slot", "-outform", "DER", "-out", "slot.csr"]);
    pki.openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "transport.key"]);
    pki.openssl(&["pkey", "-in", "transport.key", "-pubout", "-outform", "DER", "-out", "transport.spki"]);
    pki.issue("leaf-pin-never", "/CN=YubiKey PIV Attestation 9a", "slot", "f9", "yubikey_pin_never", 3650);
    pki.key("other");
    pki.issue("leaf-other", "/CN=YubiKey PIV Attestation 9a", "other", "f9", "yubikey", 3650);
    // openssl dates certificates to the second; the server's clock starts after them.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let w = World::start_with(Some(pki.path("root.pem"))).await;

    // Without attestation or witness, the CLI is told why and the token keeps no key.
    let (app, code_) = w.unwitnessed_application("medium-hardware", 10).await;
    let (ok, _, err) = w.retrieve(&app, &code_, &[], &[("SIGNET_NEW_PIN", PIN)]).await;
    assert!(!ok && err.contains("needs a key held by hardware"), "{err}");
    assert!(!w.objects(&format!("ECA {app}")).iter().any(|o| o.starts_with("Private Key Object")));

    let post = |chain: Vec<Vec<u8>>| {
        let body = serde_json::json!({
            "application": app.as_str(),
            "activation_code": code_,
            "password": PASSWORD,
            "csr": b64(&std::fs::read(pki.path("slot.csr")).unwrap()),
            "transport_key": b64(&std::fs::read(pki.path("transport.spki")).unwrap()),
            "attestation": chain.iter().map(|c| b64(c)).collect::<Vec<_>>(),
        });
        let url = format!("{}/api/v1/retrieval", w.server.base_url);
        let out = must(
            "curl",
            &["-s", "-w", "\n%{http_code}", "-H", "content-type: application/json", "--data", &body.to_string(), &url],
            &[],
        );
        let (body, status) = out.rsplit_once('\n').unwrap();
        (status.to_owned(), body.to_owned())
    };
    // A key usable without its PIN, and an attestation of another key, are refused.
    let (status, body) = post(pki.chain("leaf-pin-never"));
    assert!(status == "409" && body.contains("PIN policy"), "{status} {body}");
    let (status, body) = post(pki.chain("leaf-other"));
    assert!(status == "409" && body.contains("attestation-refused"), "{status} {body}");

    let (status, body) = post(pki.chain("leaf"));
    assert_eq!(status, "201", "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["encryption"]["profile"], "medium-hardware-encryption", "{body}");
    let records = w.server.state.store().audit_records().await.unwrap();
    let retrieved = records.iter().find(|r| r.action == "application-retrieved").unwrap();
    assert!(retrieved.details.contains("\"attestation\"") && retrieved.details.contains("20000000"), "{retrieved:?}");
}

/// A proxy in front of the server that loses the answer to the first retrieval (the
/// connection drops after the server issued) and keeps every retrieval request it saw.
struct LossyProxy {
    url: String,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

impl LossyProxy {
    async fn start(upstream: &str) -> Self {
        use tokio::io::AsyncWriteExt;
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let (upstream, seen, lost) = (upstream.clone(), seen.clone(), lost.clone());
                tokio::spawn(async move {
                    let request = read_message(&mut client).await;
                    let mut server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                    server.write_all(&request).await.unwrap();
                    let response = read_message(&mut server).await;
                    let text = String::from_utf8_lossy(&request).into_owned();
                    if text.starts_with("POST /api/v1/retrieval HTTP/1.1") {
                        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
                        seen.lock().unwrap().push(body);
                        if !lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
                            return; // the answer is lost on the way back
                        }
                    }
                    client.write_all(&response).await.unwrap();
                });
            }
        });
        Self { url, requests }
    }
}

/// One HTTP/1.1 message with a Content-Length body (all this server and client send).
async fn read_message(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                return buf;
            }
        }
        let n = stream.read(&mut chunk).await.unwrap();
        if n == 0 {
            return buf;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `curl` POSTs `body` (JSON) to `path` on the server; returns the status and the answer.
fn post(base: &str, path: &str, body: &str) -> (String, String) {
    let url = format!("{base}{path}");
    let out = must(
        "curl",
        &["-s", "-w", "\n%{http_code}", "-H", "content-type: application/json", "--data", body, &url],
        &[],
    );
    let (body, status) = out.rsplit_once('\n').unwrap();
    (status.to_owned(), body.to_owned())
}

/// The applicant's main path: the token arrives from the RA's stock, bound to the application
/// at shipment; at home, with no operator involved, `signet token retrieve` sets the
/// subscriber's PINs and proves with the shipment key that it runs on that very token. The
/// first answer is lost on the way; running the command again delivers the same certificates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_token_proves_itself_and_a_lost_answer_is_delivered_again() {
    let w = World::start().await;
    let (app, code) = w.ready_application("medium-token", 10).await;
    let token_label = format!("ECA {app}");
    let slot = w.slot_of(&token_label).await;
    let store = w.server.state.store();
    let token = store.token_of(&app).await.unwrap().expect("shipped from the stock");
    let pins = signet_authority::stock::TransportPins::open(&w.server.state, &token).unwrap();
    let issued = || async { store.account_certificates(&app).await.unwrap().len() };

    // The first answer never arrives: the server issued, the client saw a dropped connection.
    let proxy = LossyProxy::start(&w.server.base_url).await;
    let args = ["token", "retrieve", "--server", &proxy.url, "--module", SOFTHSM, "--application", app.as_str()];
    let env = [
        ("SIGNET_ACTIVATION_CODE", code.as_str()),
        ("SIGNET_PASSWORD", PASSWORD),
        ("SIGNET_NEW_PIN", PIN),
        ("RUST_LOG", "trace"),
    ];
    let (ok, first_out, first_err) =
        w.signet(&[&args[..], &["--slot", &slot, "--key-type", "p-256"]].concat(), &env).await;
    assert!(!ok, "the answer was lost: {first_out}{first_err}");
    assert_eq!(issued().await, 2, "identity and encryption certificates were issued");

    // The captured request, sent again as it was, is refused: its challenge answered once.
    let captured = proxy.requests.lock().unwrap()[0].clone();
    let (status, body) = post(&w.server.base_url, "/api/v1/retrieval", &captured);
    assert!(status == "409" && body.contains("shipment-proof-refused"), "{status} {body}");
    // A proof signed by a key of the client's own (not the token's) is refused too.
    let begin = serde_json::json!({
        "application": app.as_str(), "activation_code": code, "password": PASSWORD, "token_serial": token.serial.as_str()
    });
    let (status, begun) = post(&w.server.base_url, "/api/v1/retrieval/begin", &begin.to_string());
    assert_eq!(status, "200", "{begun}");
    let begun: serde_json::Value = serde_json::from_str(&begun).unwrap();
    assert!(begun.get("transport_pins").is_none(), "no PINs once the certificates are delivered: {begun}");
    let mut forged: serde_json::Value = serde_json::from_str(&captured).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let csr = b64.decode(forged["csr"].as_str().unwrap()).unwrap();
    let nonce = begun["challenge"].as_str().unwrap();
    let (message, key, sig) = (w.path("proof.bin"), w.path("soft.key"), w.path("proof.sig"));
    std::fs::write(&message, shipment_message(nonce, &app, &token.serial, &csr)).unwrap();
    must("openssl", &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", file(&key)], &[]);
    must("openssl", &["dgst", "-sha256", "-sign", file(&key), "-out", file(&sig), file(&message)], &[]);
    forged["challenge"] = nonce.into();
    forged["shipment_signature"] = b64.encode(std::fs::read(&sig).unwrap()).into();
    let (status, body) = post(&w.server.base_url, "/api/v1/retrieval", &forged.to_string());
    assert!(status == "409" && body.contains("did not sign this request"), "{status} {body}");
    assert_eq!(issued().await, 2, "refusals issue nothing");

    // Run again on the same token: the same certificates, nothing issued twice.
    let (ok, out, err) =
        w.retrieve(&app, &code, &["--slot", &slot], &[("SIGNET_PIN", PIN), ("RUST_LOG", "trace")]).await;
    assert!(ok, "{out}\n{err}");
    assert_eq!(issued().await, 2, "delivered again, not issued again");
    let escrows = store.account_certificates(&app).await.unwrap();
    let encryption = escrows.iter().find(|c| c.profile == "medium-token-encryption").unwrap();
    use signet_ra::key_recovery::KeyRecoveryStore;
    assert!(store.escrow_of_serial(&encryption.serial.to_hex()).await.unwrap().is_some());
    assert!(out.contains(&encryption.serial.to_hex()), "{out}");

    // What landed: keys born on the token, never extractable, beside the shipment key.
    let objects = w.objects(&token_label);
    for label in [format!("ECA identity {app}"), "signet shipment key".to_owned()] {
        let key = objects
            .iter()
            .find(|o| o.starts_with("Private Key Object") && field(o, "label") == label)
            .unwrap_or_else(|| panic!("{label}: {objects:#?}"));
        assert_eq!(field(key, "Access"), "sensitive, always sensitive, never extractable, local", "{key}");
    }
    let id = field(
        objects
            .iter()
            .find(|o| o.starts_with("Private Key Object") && field(o, "label") == format!("ECA identity {app}"))
            .unwrap(),
        "ID",
    )
    .to_owned();
    let leaf = w.read_certificate(&token_label, &["--id", &id], "leaf");
    w.read_certificate(&token_label, &["--label", "Signet Dev ECA 1"], "issuing");
    w.read_certificate(&token_label, &["--label", "Signet Dev Root CA"], "root");
    w.verifies(&leaf, crate::common::MEDIUM_TOKEN);
    w.check_encryption_key(&token_label, &app, crate::common::MEDIUM_TOKEN);
    assert!(matches!(store.token_of(&app).await.unwrap().unwrap().state, StockState::Retrieved(..)));

    // The transport PINs were never shown, logged or kept in clear.
    let mut seen = format!("{first_out}{first_err}{out}{err}");
    for f in ["signet.db", "signet.db-wal"] {
        if let Ok(bytes) = std::fs::read(w.path("data").join(f)) {
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    seen.push_str(&logged());
    for pin in [&pins.user, &pins.so] {
        assert!(!seen.contains(pin.as_str()), "a transport PIN leaked");
    }
    assert!(store.verify_audit().await.unwrap().is_ok());
}

/// Each wrong token is refused before anything is issued, and the activation code stays
/// unspent: another application's token, a token not from the stock, a blank token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_token_shipped_for_the_application_retrieves() {
    let w = World::start().await;
    let (app, code) = w.ready_application("medium-hardware", 10).await;
    let store = w.server.state.store();
    // Another application's token, from the stock, in its own token directory.
    let theirs = signet_testkit::softhsm_conf(&w.path("theirs"));
    let theirs_env = ("SOFTHSM2_CONF", theirs.to_str().unwrap());
    let data = w.path("data");
    let provision = ["admin", "token", "provision", "--data-dir", file(&data), "--module", SOFTHSM];
    let (ok, out, err) = w.signet(&provision, &[theirs_env]).await;
    assert!(ok, "{out}{err}");
    let other_app = ApplicationId::generate();
    let their_serial =
        TokenSerial::new(out.strip_prefix("Token ").unwrap().split_whitespace().next().unwrap()).unwrap();
    w.walk(other_app.clone(), "medium-token", 10, Some(&their_serial)).await;
    let (ok, _, err) = w.retrieve(&app, &code, &[], &[theirs_env, ("SIGNET_NEW_PIN", PIN)]).await;
    assert!(!ok && err.contains("is not the one the RA shipped for application"), "{err}");
    // A token set up outside the stock.
    let foreign = signet_testkit::softhsm_conf(&w.path("foreign"));
    let foreign_env = ("SOFTHSM2_CONF", foreign.to_str().unwrap());
    let init = ["--init-token", "--free", "--label", "mine", "--so-pin", "12345678", "--pin", PIN];
    must("softhsm2-util", &init, &[foreign_env]);
    let (ok, _, err) = w.retrieve(&app, &code, &[], &[foreign_env, ("SIGNET_PIN", PIN)]).await;
    assert!(!ok && err.contains("is not the one the RA shipped for application"), "{err}");
    // A blank token of the applicant's own: told to insert the shipped one.
    let blank = signet_testkit::softhsm_conf(&w.path("blank"));
    let (ok, _, err) =
        w.retrieve(&app, &code, &[], &[("SOFTHSM2_CONF", blank.to_str().unwrap()), ("SIGNET_NEW_PIN", PIN)]).await;
    assert!(!ok && err.contains("insert that token"), "{err}");
    assert!(store.account_certificates(&app).await.unwrap().is_empty(), "nothing was issued");

    // Readiness says which token is which before anything is tried.
    let check =
        ["token", "readiness", "--module", SOFTHSM, "--application", app.as_str(), "--server", &w.server.base_url];
    let (ok, out, _) = w.signet(&check, &[theirs_env]).await;
    assert!(!ok && out.contains("is NOT the one the RA shipped for it"), "{out}");
    let (ok, out, _) = w.signet(&check, &[]).await;
    assert!(ok && out.contains("is the one the RA shipped for it"), "{out}");
    assert!(!out.contains("ERROR"), "no module noise: {out}");

    // The code still works on the right token.
    let slot = w.slot_of(&format!("ECA {app}")).await;
    let (ok, out, err) = w.retrieve(&app, &code, &["--slot", &slot], &[("SIGNET_NEW_PIN", PIN)]).await;
    assert!(ok, "{out}\n{err}");
    assert!(store.verify_audit().await.unwrap().is_ok());
}

/// At the counter, an operator may witness the key being generated on a token that did not
/// come from the stock; the witness names the token's serial and only that token retrieves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witnessed_generation_names_its_token() {
    let w = World::start().await;
    let conf = [("SOFTHSM2_CONF", w.softhsm_conf.to_str().unwrap())];
    must("softhsm2-util", &["--init-token", "--free", "--label", "mine", "--so-pin", "12345678", "--pin", PIN], &conf);
    let listing = must("pkcs11-tool", &["--module", SOFTHSM, "-L"], &conf);
    let serial = listing
        .lines()
        .find_map(|l| l.trim().strip_prefix("serial num"))
        .map(|v| v.trim_start_matches([' ', ':']).trim().to_owned())
        .unwrap_or_else(|| panic!("{listing}"));
    let store = w.server.state.store();
    let witnessed = |app: &ApplicationId, serial: &str| {
        let w = WitnessedGeneration::record(
            app.clone(),
            OperatorId::new("alice").unwrap(),
            serial,
            "RA office",
            w.clock.now(),
        );
        w.unwrap()
    };

    // Witnessed on another token: this one is refused, and keeps no key.
    let (app, code) = w.unwitnessed_application("medium-token", 10).await;
    let record = witnessed(&app, "0000000000000000");
    store.record_witness(&record, record.event()).await.unwrap();
    let (ok, _, err) = w.retrieve(&app, &code, &[], &[("SIGNET_PIN", PIN)]).await;
    assert!(!ok && err.contains("was on token 0000000000000000, not on this one"), "{err}");
    assert!(store.account_certificates(&app).await.unwrap().is_empty());
    assert!(!w.objects("mine").iter().any(|o| o.starts_with("Private Key Object")), "the refused key was removed");

    // Witnessed on this token: retrieved, and the audit names the token.
    let (app, code) = w.unwitnessed_application("medium-token", 10).await;
    let record = witnessed(&app, &serial);
    store.record_witness(&record, record.event()).await.unwrap();
    let (ok, out, err) = w.retrieve(&app, &code, &[], &[("SIGNET_PIN", PIN)]).await;
    assert!(ok, "{out}\n{err}");
    let records = store.audit_records().await.unwrap();
    let retrieved = records.iter().find(|r| r.action == "application-retrieved").unwrap();
    assert!(retrieved.details.contains("\"witnessed\"") && retrieved.details.contains(&serial), "{retrieved:?}");
}

/// Everything the server and this process log, at every level: the tests look in it for
/// secrets that must never be logged.
pub(crate) fn logged() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<std::sync::Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buffer: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
        let sink = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .try_init();
        buffer
    })
}

struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
