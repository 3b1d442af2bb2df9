//! `signet admin operator …` and `signet admin unlock`: RA operator accounts for the operator
//! console, and the administrator's unlock of a lockout. Runs with direct database access, so
//! the audit actor is `cli:<user>`.

use clap::{Args, Subcommand};
use signet_pki::subject::CommonName;
use signet_ra::application::{OperatorId, PasswordHash};
use signet_ra::issuance::StoreError;
use signet_ra::lockout::{AttemptScope, AttemptStore};
use signet_ra::operator::{Operator, OperatorStore, Role, operator_password};
use signet_ra::totp::{Digits, Totp, TotpAlgorithm, TotpSecret};
use signet_store::Store;

use crate::{ServerArgs, cli_actor};

/// Where `operator create` reads the password from when set; otherwise it prompts.
const PASSWORD_ENV: &str = "SIGNET_OPERATOR_PASSWORD";

#[derive(Subcommand)]
pub(crate) enum OperatorCommand {
    /// Create an operator; prints the TOTP enrollment URI and secret once.
    Create(CreateArgs),
    /// List operators.
    List(ServerArgs),
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Login name: letters, digits, '.', '_', '-', '@'.
    #[arg(long, value_parser = |s: &str| OperatorId::new(s))]
    id: OperatorId,
    /// Name shown in the console and on approvals.
    #[arg(long, value_parser = |s: &str| CommonName::new(s))]
    name: CommonName,
    /// ra-operator or ra-administrator.
    #[arg(long, value_parser = |s: &str| s.parse::<Role>())]
    role: Role,
    /// TOTP algorithm: sha1 (every authenticator app) or sha256.
    #[arg(long, default_value = "sha1", value_parser = |s: &str| s.parse::<TotpAlgorithm>())]
    totp_algorithm: TotpAlgorithm,
    /// TOTP code length: 6 or 8.
    #[arg(long, default_value = "6", value_parser = |s: &str| s.parse::<Digits>())]
    totp_digits: Digits,
    /// The issuer name the authenticator app shows.
    #[arg(long, default_value = "Signet RA")]
    issuer: String,
}

#[derive(Args)]
pub(crate) struct UnlockArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// operator-password (the console sign-in), applicant-password, activation-code,
    /// subscriber-password, subscriber-totp or password-reset.
    #[arg(long, value_parser = |s: &str| s.parse::<AttemptScope>())]
    scope: AttemptScope,
    /// Whom the failures were counted for: an operator id, application reference or account.
    #[arg(long)]
    subject: String,
}

/// The store with the CA folder's sealing key, which operators' TOTP seeds are sealed under:
/// what every command reading or writing operators opens.
pub(crate) async fn store(server: &ServerArgs) -> Result<Store, Box<dyn std::error::Error>> {
    let settings = server.settings()?;
    // Operators may be created before the first `signet serve` made the data folder and the CA
    // in it: the sealing key is then made here, and the CA created later beside it keeps it.
    let ca_dir = settings.data_dir.join("ca");
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
    dirs.create(&ca_dir).map_err(|e| format!("{}: {e}", ca_dir.display()))?;
    let store = Store::connect(&settings.database_url).await?;
    Ok(store.with_sealing_key(signet_authority::ca_files::sealing_key(&ca_dir)?).await?)
}

/// The password from the environment, or typed twice without echo.
fn read_password() -> Result<String, Box<dyn std::error::Error>> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    let first = rpassword::prompt_password("operator password: ")?;
    if rpassword::prompt_password("again: ")? != first {
        return Err("the passwords differ".into());
    }
    Ok(first)
}

pub(crate) async fn run_operator(command: OperatorCommand) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        OperatorCommand::Create(a) => {
            let store = store(&a.server).await?;
            let password = PasswordHash::new(&operator_password(&read_password()?, &a.id)?)?;
            let totp = Totp::new(TotpSecret::generate(), a.totp_algorithm, a.totp_digits);
            let op = Operator::new(a.id, a.name, a.role, password, totp);
            let event = op.created_event(&cli_actor(), time::OffsetDateTime::now_utc());
            match store.create_operator(&op, event).await {
                Err(StoreError::Conflict(_)) => return Err(format!("operator {} exists already", op.id).into()),
                r => r?,
            }
            println!("{}", op.totp.uri(&a.issuer, op.id.as_str()));
            println!("secret: {}", op.totp.secret().to_base32());
            eprintln!(
                "created operator {} ({}); add the TOTP secret to an authenticator app now: it is not shown again",
                op.id,
                op.role.name()
            );
        }
        OperatorCommand::List(server) => {
            for op in store(&server).await?.list_operators().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    op.id,
                    op.role.name(),
                    if op.disabled { "disabled" } else { "active" },
                    op.display_name.as_str()
                );
            }
        }
    }
    Ok(())
}

pub(crate) async fn run_unlock(a: UnlockArgs) -> Result<(), Box<dyn std::error::Error>> {
    let store = store(&a.server).await?;
    match store.unlock(a.scope, &a.subject, &cli_actor(), time::OffsetDateTime::now_utc()).await {
        Err(StoreError::NotFound) => Err(format!("no failures are recorded for {} {}", a.scope, a.subject).into()),
        r => {
            r?;
            println!("unlocked {} {}", a.scope, a.subject);
            Ok(())
        }
    }
}
