//! `signet admin operator create|list` and `signet admin unlock` end to end: the enrollment
//! secret the CLI prints, fed to oathtool (an independent TOTP implementation), signs the
//! operator in through the store; a lockout is lifted by the CLI and the audit chain holds; the
//! seed is stored sealed.

use signet_ra::application::{OperatorId, UnboundedChecker};
use signet_ra::lockout::{AttemptScope, LockState, Until};
use signet_ra::operator::{LoginError, Role, authenticate};
use signet_ra::totp::Totp;
use signet_store::Store;
use time::macros::format_description;
use time::{Duration, OffsetDateTime};

use crate::common::*;

const PASSWORD: &str = "Lantern-Fjord-Cobalt-73";

/// oathtool's SHA-256, 8-digit code for `secret` at `at`.
fn oathtool(secret: &str, at: OffsetDateTime) -> String {
    let now = at.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC")).unwrap();
    must("oathtool", &["--totp=sha256", "--digits", "8", "-b", "--now", &now, secret], &[]).trim().to_owned()
}

#[tokio::test]
async fn operator_created_by_the_cli_signs_in_with_an_oathtool_code() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let env = [("SIGNET_OPERATOR_PASSWORD", PASSWORD)];
    let create = |id: &'static str, env: &[(&str, &str)]| {
        let args = [
            "admin",
            "operator",
            "create",
            "--data-dir",
            d,
            "--id",
            id,
            "--name",
            "Alice Example",
            "--role",
            "ra-administrator",
            "--totp-algorithm",
            "sha256",
            "--totp-digits",
            "8",
        ];
        run(SIGNET, &args, env)
    };

    let (ok, out, err) = create("alice", &env);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    let uri = lines.next().unwrap();
    assert!(uri.starts_with("otpauth://totp/Signet%20RA:alice?secret="), "{uri}");
    assert!(uri.ends_with("&issuer=Signet%20RA&algorithm=SHA256&digits=8&period=30"), "{uri}");
    let secret = lines.next().unwrap().strip_prefix("secret: ").unwrap().to_owned();
    assert!(uri.contains(&format!("secret={secret}&")), "the URI and the printed secret agree");
    assert!(err.contains("not shown again"), "{err}");

    let (ok, _, err) = create("alice", &env);
    assert!(!ok && err.contains("operator alice exists already"), "{err}");
    let (ok, _, err) = create("weak", &[("SIGNET_OPERATOR_PASSWORD", "password")]);
    assert!(!ok && err.contains("password is too weak"), "{err}");
    let out = must(SIGNET, &["admin", "operator", "list", "--data-dir", d], &[]);
    assert_eq!(out, "alice\tra-administrator\tactive\tAlice Example\n");

    // The seed is sealed under the key the CLI made in the CA folder, which the server uses too.
    let key = signet_authority::ca_files::sealing_key(&data.join("ca")).unwrap();
    let store = Store::connect(&format!("sqlite://{}", data.join("signet.db").display())).await.unwrap();
    let store = store.with_sealing_key(key).await.unwrap();
    let id = OperatorId::new("alice").unwrap();
    let policy = AttemptScope::OperatorPassword.default_policy();
    let now = OffsetDateTime::now_utc();
    let op =
        authenticate(&store, &UnboundedChecker, &id, PASSWORD, &oathtool(&secret, now), now, &policy).await.unwrap();
    assert_eq!(op.role, Role::RaAdministrator);
    assert_eq!(op.display_name.as_str(), "Alice Example");

    // Five wrong passwords lock the account; the CLI's unlock lifts the lock at once.
    let later = now + Duration::seconds(60);
    for _ in 0..5 {
        let _ =
            authenticate(&store, &UnboundedChecker, &id, "Lantern-Fjord-Cobalt-00", "00000000", later, &policy).await;
    }
    let code = oathtool(&secret, later);
    let e = authenticate(&store, &UnboundedChecker, &id, PASSWORD, &code, later, &policy).await.unwrap_err();
    assert!(matches!(e, LoginError::Locked { until: Until::Time(_) }), "{e:?}");
    let unlock = ["admin", "unlock", "--data-dir", d, "--scope", "operator-password", "--subject", "alice"];
    assert_eq!(must(SIGNET, &unlock, &[]), "unlocked operator-password alice\n");
    let (ok, _, err) = run(SIGNET, &unlock, &[]);
    assert!(!ok && err.contains("no failures are recorded for operator-password alice"), "{err}");
    let (ok, _, err) = run(SIGNET, &["admin", "unlock", "--data-dir", d, "--scope", "pin", "--subject", "alice"], &[]);
    assert!(!ok && err.contains("\"pin\" is not an attempt scope"), "{err}");
    let op = authenticate(&store, &UnboundedChecker, &id, PASSWORD, &code, later, &policy).await.unwrap();
    assert_eq!(op.last_totp_step, Some(Totp::step_at(later)));
    assert_eq!(
        signet_ra::lockout::AttemptStore::check(&store, AttemptScope::OperatorPassword, "alice", later).await.unwrap(),
        LockState::Open
    );
    store.close().await;

    let out = must(SIGNET, &["audit", "verify", "--data-dir", d], &[]);
    assert!(out.contains("audit log intact"), "{out}");
    let actors = must(
        "sqlite3",
        &[data.join("signet.db").to_str().unwrap(), "SELECT action || ' ' || actor FROM audit_log"],
        &[],
    );
    assert!(actors.lines().any(|l| l.starts_with("operator-created cli:")), "{actors}");
    assert!(actors.lines().any(|l| l.starts_with("lockout-cleared cli:")), "{actors}");
    assert!(!actors.contains(&secret));
    let stored = must("sqlite3", &[data.join("signet.db").to_str().unwrap(), "SELECT totp_secret FROM operators"], &[]);
    assert!(stored.starts_with("sealed:v1:") && !stored.to_uppercase().contains(&secret), "{stored}");
}
