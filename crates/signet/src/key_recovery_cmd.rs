//! `signet admin key-recovery …`: recovering an escrowed encryption key (DESIGN §2
//! "key recovery with two recovery agents").
//!
//! An administrator designates key recovery agents among the RA operators. An agent opens a
//! request for a certificate's key, giving a reason; two different agents approve it; one of
//! the two then exports the key, once, as a passphrase-encrypted PKCS#8 file. Every agent action
//! signs the agent in with password and a fresh TOTP code, under the console's lockouts, and
//! every step is in the audit chain. Export opens the key recovery key, so it runs only here,
//! on the CA host: the web tier holds the recovery key's public half only.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use signet_pki::escrow::open;
use signet_ra::application::{OperatorId, UnboundedChecker};
use signet_ra::issuance::StoreError;
use signet_ra::key_recovery::{
    Agent, AgentDesignation, KeyRecoveryStore, RecoveryRequest, RecoveryRequestId, RecoveryState,
};
use signet_ra::operator::{OperatorStore, SIGN_IN_SCOPE, authenticate};
use signet_store::Store;

use crate::{ServerArgs, cli_actor, operator_cmd};

/// Where agent commands read the agent's password and TOTP code when set; otherwise they prompt.
const PASSWORD_ENV: &str = "SIGNET_AGENT_PASSWORD";
const TOTP_ENV: &str = "SIGNET_AGENT_TOTP";
/// Where `export` reads the export file's passphrase when set; otherwise it prompts twice.
const PASSPHRASE_ENV: &str = "SIGNET_EXPORT_PASSPHRASE";
/// The shortest export passphrase: the file carries a private key.
const MIN_PASSPHRASE: usize = 12;

type Error = Box<dyn std::error::Error>;

#[derive(Subcommand)]
pub(crate) enum KeyRecoveryCommand {
    /// Designate an RA operator as key recovery agent (administrator, audited).
    Designate {
        #[command(flatten)]
        server: ServerArgs,
        /// The operator's login name.
        #[arg(long, value_parser = |s: &str| OperatorId::new(s))]
        operator: OperatorId,
    },
    /// List the key recovery agents.
    Agents(ServerArgs),
    /// Ask for the recovery of a certificate's escrowed key (agent).
    Request {
        #[command(flatten)]
        agent: AgentArgs,
        /// Serial of the encryption certificate, hex.
        #[arg(long)]
        serial: String,
        /// Why the key is needed (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Approve a request; it needs two different agents (agent).
    Approve {
        #[command(flatten)]
        agent: AgentArgs,
        /// The request id.
        #[arg(long)]
        request: String,
    },
    /// List the requests and their state.
    List(ServerArgs),
    /// Export an approved request's key, once, to a passphrase-encrypted PKCS#8 PEM file; needs
    /// the key recovery key and one of the two approving agents.
    Export {
        #[command(flatten)]
        agent: AgentArgs,
        /// The request id.
        #[arg(long)]
        request: String,
        /// The file to create (never overwritten; readable by its owner only).
        #[arg(long)]
        out: PathBuf,
    },
}

/// The agent acting, and where the database is.
#[derive(Args)]
pub(crate) struct AgentArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The agent's operator login name.
    #[arg(long, value_parser = |s: &str| OperatorId::new(s))]
    agent: OperatorId,
}

fn secret(env: &str, prompt: &str) -> Result<String, Error> {
    match std::env::var(env) {
        Ok(v) => Ok(v),
        Err(_) => Ok(rpassword::prompt_password(prompt)?),
    }
}

/// Signs the agent in (password + fresh TOTP code, with the console's lockouts) and checks the
/// designation.
async fn sign_in(store: &Store, id: &OperatorId) -> Result<Agent, Error> {
    let password = secret(PASSWORD_ENV, &format!("password of {id}: "))?;
    let code = secret(TOTP_ENV, &format!("authenticator code of {id}: "))?;
    let policy = SIGN_IN_SCOPE.default_policy();
    let operator =
        authenticate(store, &UnboundedChecker, id, &password, &code, time::OffsetDateTime::now_utc(), &policy).await?;
    let designation = store.agent(&operator.id).await?.ok_or_else(|| format!("{id} is not a key recovery agent"))?;
    Ok(Agent::from_designation(&designation))
}

async fn load(store: &Store, id: &str) -> Result<RecoveryRequest, Error> {
    let id = RecoveryRequestId::parse(id).ok_or_else(|| format!("{id:?} is not a request id"))?;
    Ok(store.request(&id).await?.ok_or_else(|| format!("no key recovery request {id}"))?)
}

/// Saves a transition; a lost compare-and-set means another agent acted meanwhile.
async fn update(store: &Store, request: &RecoveryRequest, event: signet_ra::audit::AuditEvent) -> Result<(), Error> {
    match store.update_request(request, event).await {
        Err(StoreError::Conflict(_)) => {
            Err(format!("request {} changed meanwhile; look at it again (signet admin key-recovery list)", request.id)
                .into())
        }
        r => Ok(r?),
    }
}

fn describe(r: &RecoveryRequest) -> String {
    let state = match &r.state {
        RecoveryState::Pending { first_approver: None } => "pending, no approval".to_owned(),
        RecoveryState::Pending { first_approver: Some(a) } => format!("pending, approved by {a}"),
        RecoveryState::Approved { approvers: [a, b] } => format!("approved by {a} and {b}"),
        RecoveryState::Exported { exported_by, exported_at, .. } => {
            format!("exported by {exported_by} at {exported_at}")
        }
    };
    format!("{}\t{}\t{}\t{}\trequested by {}: {}", r.id, r.serial, r.application, state, r.requested_by, r.reason)
}

/// The export passphrase, from the environment or typed twice.
fn export_passphrase() -> Result<String, Error> {
    let passphrase = match std::env::var(PASSPHRASE_ENV) {
        Ok(p) => p,
        Err(_) => {
            let first = rpassword::prompt_password("passphrase for the exported key: ")?;
            if rpassword::prompt_password("again: ")? != first {
                return Err("the passphrases differ".into());
            }
            first
        }
    };
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(format!("the export passphrase must have at least {MIN_PASSPHRASE} characters").into());
    }
    Ok(passphrase)
}

pub(crate) async fn run(command: KeyRecoveryCommand) -> Result<(), Error> {
    let now = time::OffsetDateTime::now_utc;
    match command {
        KeyRecoveryCommand::Designate { server, operator } => {
            let store = operator_cmd::store(&server).await?;
            if store.operator_by_id(&operator).await?.is_none() {
                return Err(format!("no operator {operator}").into());
            }
            let designation = AgentDesignation::new(operator, &cli_actor(), now());
            match store.designate_agent(&designation, designation.designated_event()).await {
                Err(StoreError::Conflict(_)) => {
                    return Err(format!("{} is a key recovery agent already", designation.operator).into());
                }
                r => r?,
            }
            println!("{} is now a key recovery agent", designation.operator);
        }
        KeyRecoveryCommand::Agents(server) => {
            let store = operator_cmd::store(&server).await?;
            for d in store.agents().await? {
                println!("{}\tdesignated by {} at {}", d.operator, d.designated_by, d.designated_at);
            }
        }
        KeyRecoveryCommand::Request { agent, serial, reason } => {
            let store = operator_cmd::store(&agent.server).await?;
            let agent = sign_in(&store, &agent.agent).await?;
            let serial = serial.trim().to_ascii_lowercase();
            let escrow = store.escrow_of_serial(&serial).await?.ok_or_else(|| {
                format!("certificate {serial} has no escrowed key (only encryption keys are escrowed)")
            })?;
            let (request, event) = RecoveryRequest::open(&escrow, &serial, &reason, &agent, now())?;
            store.create_request(&request, event).await?;
            println!("{}", request.id);
            eprintln!("request {} opened; it needs the approval of two different key recovery agents", request.id);
        }
        KeyRecoveryCommand::Approve { agent, request } => {
            let store = operator_cmd::store(&agent.server).await?;
            let agent = sign_in(&store, &agent.agent).await?;
            let (request, event) = load(&store, &request).await?.approve(&agent, now())?;
            update(&store, &request, event).await?;
            println!("{}", describe(&request));
        }
        KeyRecoveryCommand::List(server) => {
            let store = operator_cmd::store(&server).await?;
            for r in store.requests().await? {
                println!("{}", describe(&r));
            }
        }
        KeyRecoveryCommand::Export { agent, request, out } => {
            let settings = agent.server.settings()?;
            let store = operator_cmd::store(&agent.server).await?;
            let agent = sign_in(&store, &agent.agent).await?;
            let (exported, event) = load(&store, &request).await?.export(&agent, now())?;
            let escrow = store
                .escrow_of_serial(&exported.serial)
                .await?
                .ok_or_else(|| format!("the escrow of certificate {} is gone", exported.serial))?;
            let passphrase = export_passphrase()?;
            let krk = signet_authority::ca_files::open_recovery_key(&settings.data_dir.join("ca"))?;
            let pem = open(&escrow.envelope, krk.as_ref())?.to_encrypted_pem(&passphrase)?;
            signet_authority::ca_files::write_private(&out, pem.as_bytes())?;
            // The request is spent only once the file exists; if another agent exported first,
            // this copy is removed.
            if let Err(e) = update(&store, &exported, event).await {
                let _ = std::fs::remove_file(&out);
                return Err(e);
            }
            println!("exported the key of certificate {} to {}", exported.serial, out.display());
        }
    }
    Ok(())
}
