//! `signet`: the command line. Thin: parses arguments and calls the library crates.

// Under load glibc's malloc and free took 7-9% of a node's CPU; mimalloc takes about a third
// of that (profiles of `signet bench http-issuance`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod gateway_cmd;
mod key_recovery_cmd;
mod operator_cmd;
mod stock_cmd;
mod token_care;
mod token_cmd;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use signet_authority::ca_files::{InitOptions, KeySource, init_ca};
use signet_authority::{ServerConfig, Settings};
use signet_pki::ca::HierarchyNames;
use signet_pki::issue::CertificateOrder;
use signet_pki::subject::{CommonName, DnsName, Email, OrganizationName, Subject};
use signet_pki::{KeyAlgorithm, RevocationReason, Serial};
use signet_ra::SystemClock;
use signet_ra::audit::{AuditAction, AuditEvent};
use signet_store::ApiKey;

#[derive(Parser)]
#[command(name = "signet", version, about = "Signet: an identity-vetted certificate authority (DoD ECA model)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (pages, API, ACME, OCSP, CRL). Creates a dev CA in <data>/ca on first start.
    /// Plain HTTP unless the configuration's [tls] says otherwise; prints the URL to open.
    Serve(ServeArgs),
    /// CA administration.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Issue and revoke certificates as an operator (direct access to the CA and database).
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Sign and write the current CRL.
    Crl {
        #[command(flatten)]
        server: ServerArgs,
        /// Output file (DER).
        #[arg(long)]
        out: PathBuf,
    },
    /// Operator administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The server configuration: check a file before deploying it.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Benchmarks: issuance, OCSP and CRL against raw-signing and plain-HTTP baselines.
    Bench(bench::BenchArgs),
    /// The mTLS relying-party gateway: run it, link certificates to accounts, benchmark it against nginx.
    Gateway(gateway_cmd::GatewayArgs),
    /// Your token: check that this machine is ready, retrieve your certificates onto it.
    Token {
        #[command(subcommand)]
        command: token_cmd::TokenCommand,
    },
}

/// `signet serve`: where everything is, and how the log is written.
#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Log lines as text for people, or as one JSON object per line for a log shipper.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How log lines are written to standard error.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields` (the message and its values), `target`,
    /// and `spans`, the first of which is the request's with its `request_id`, `method` and `path`.
    Json,
}

/// Where the server's configuration, data and database are.
#[derive(Args, Clone)]
struct ServerArgs {
    /// Configuration file (TOML).
    #[arg(long, env = "SIGNET_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address.
    #[arg(long)]
    listen: Option<String>,
    /// Public base URL written into certificates.
    #[arg(long)]
    base_url: Option<String>,
    /// Data folder.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL (sqlite://… or postgres://…).
    #[arg(long, env = "SIGNET_DATABASE_URL")]
    database_url: Option<String>,
}

impl ServerArgs {
    fn settings(&self) -> Result<Settings, Box<dyn std::error::Error>> {
        let mut cfg = match &self.config {
            Some(p) => ServerConfig::from_file(p)?,
            None => ServerConfig::default(),
        };
        cfg.listen = self.listen.clone().or(cfg.listen);
        cfg.base_url = self.base_url.clone().or(cfg.base_url);
        cfg.data_dir = self.data_dir.clone().or(cfg.data_dir);
        cfg.database_url = self.database_url.clone().or(cfg.database_url);
        Ok(cfg.into_settings()?)
    }

    /// The node's core over the configured database and CA, without serving: the commands
    /// below take the same workflows the pages take.
    async fn state(&self) -> Result<signet_authority::Core, Box<dyn std::error::Error>> {
        let settings = self.settings()?;
        let base_url = settings.certificate_base_url();
        Ok(signet_authority::Core::open(&settings, &base_url, &base_url, Arc::new(SystemClock)).await?.core)
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration and the files it names, and print the settings the server
    /// would run with (defaults filled in, secrets masked). Opens no database and no CA.
    Check(ServerArgs),
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create a root and an issuing CA in <data>/ca.
    Init(CaInitArgs),
}

#[derive(Args)]
struct CaInitArgs {
    /// Data folder; the CA goes in <data>/ca.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Key type: rsa-2048, rsa-3072, p-256, p-384.
    #[arg(long, default_value = "rsa-3072")]
    key_type: KeyAlgorithm,
    /// The CA vendor's OU in subscriber DNs.
    #[arg(long, default_value = "Signet")]
    vendor: String,
    /// Root CA common name.
    #[arg(long, default_value = "Signet Root CA")]
    root_cn: String,
    /// Issuing CA common name.
    #[arg(long, default_value = "Signet ECA 1")]
    issuing_cn: String,
    /// For file keys: environment variable holding the passphrase that encrypts them.
    #[arg(long, default_value = "SIGNET_CA_PASSPHRASE", conflicts_with = "pkcs11_module")]
    passphrase_env: String,
    /// Put the keys on a PKCS#11 token instead of files: the module path.
    #[arg(long, requires_all = ["token_label", "pin_env"])]
    pkcs11_module: Option<PathBuf>,
    /// PKCS#11 token label.
    #[arg(long)]
    token_label: Option<String>,
    /// Environment variable holding the token's user PIN.
    #[arg(long)]
    pin_env: Option<String>,
}

#[derive(Subcommand)]
enum CertCommand {
    /// Issue a certificate from a CSR for vetted subject data.
    Issue(IssueArgs),
    /// Revoke a certificate.
    Revoke {
        #[command(flatten)]
        server: ServerArgs,
        /// Serial (hex).
        serial: String,
        /// RFC 5280 reason, e.g. keyCompromise, superseded, cessationOfOperation.
        #[arg(long, default_value = "unspecified")]
        reason: RevocationReason,
    },
}

#[derive(Args)]
struct IssueArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Profile id (see `GET /api/v1/profiles`), e.g. medium-token-identity.
    #[arg(long)]
    profile: String,
    /// CSR file (PEM or DER).
    #[arg(long)]
    csr: PathBuf,
    /// Subscriber organization.
    #[arg(long)]
    org: String,
    /// Person: full name.
    #[arg(long, requires = "email", conflicts_with = "dns")]
    cn: Option<String>,
    /// Person: email address.
    #[arg(long)]
    email: Option<String>,
    /// Device: DNS names.
    #[arg(long, num_args = 1..)]
    dns: Vec<String>,
    /// Validity in years.
    #[arg(long, default_value_t = 1)]
    years: u8,
    /// Output file (PEM); standard output if absent.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Operator API keys for the RA API.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// RA operator accounts for the operator console (password + TOTP).
    Operator {
        #[command(subcommand)]
        command: operator_cmd::OperatorCommand,
    },
    /// Clear the failures that locked a subject out of a scope (audited).
    Unlock(operator_cmd::UnlockArgs),
    /// ACME for device certificates.
    Acme {
        #[command(subcommand)]
        command: AcmeCommand,
    },
    /// Enterprise accounts: who manages an organization's devices in the CMC.
    Enterprise {
        #[command(subcommand)]
        command: EnterpriseCommand,
    },
    /// Recovery of escrowed encryption keys: agents, two-agent approval, export.
    KeyRecovery {
        #[command(subcommand)]
        command: key_recovery_cmd::KeyRecoveryCommand,
    },
    /// The stock of hardware tokens: provision before shipping, list, report lost, retire.
    Token {
        #[command(subcommand)]
        command: stock_cmd::StockCommand,
    },
}

#[derive(Subcommand)]
enum EnterpriseCommand {
    /// Make a vetted subscriber of the organization a user of its enterprise account (the first
    /// user; users add the next ones in the Certificate Management Center).
    AddUser {
        #[command(flatten)]
        server: ServerArgs,
        /// The organization, as applicants named it.
        #[arg(long)]
        organization: String,
        /// The subscriber's application reference.
        #[arg(long)]
        account: String,
    },
}

#[derive(Subcommand)]
enum AcmeCommand {
    /// External Account Binding keys: each binds one ACME account to an organization's domains.
    Eab {
        #[command(subcommand)]
        command: EabCommand,
    },
}

#[derive(Subcommand)]
enum EabCommand {
    /// Create a key and print its id and HMAC key once.
    Create {
        #[command(flatten)]
        server: ServerArgs,
        /// The enterprise organization: the organization OU of its device certificates.
        #[arg(long)]
        organization: String,
        /// The organization's DNS domains, comma-separated; every name ordered must be under one.
        #[arg(long)]
        domains: String,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key and print its token once.
    Create {
        #[command(flatten)]
        server: ServerArgs,
        /// Unique name (appears in the audit log).
        #[arg(long)]
        name: String,
        /// ra-operator or ra-administrator.
        #[arg(long, default_value = "ra-operator", value_parser = ["ra-operator", "ra-administrator"])]
        role: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every row of the hash chain.
    Verify(ServerArgs),
}

fn cli_actor() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

/// Logs to standard error, at `RUST_LOG`'s levels (info by default).
fn init_logging(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        // Every enclosing span, outermost first: the request's (its id, method and path), then
        // the handler's.
        LogFormat::Json => builder.json().with_current_span(false).with_span_list(true).init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(match &cli.command {
        Command::Serve(args) => args.log_format,
        _ => LogFormat::Text,
    });
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    match cli.command {
        Command::Serve(args) => {
            let mut settings = args.server.settings()?;
            // The running program is the client applicants need: offer it unless told otherwise.
            if settings.client_download.is_none() {
                settings.client_download = std::env::current_exe().ok();
            }
            let running = signet_server::spawn(&settings, Arc::new(SystemClock)).await?;
            let plain = running.plain_addr.map(|a| format!(", plain HTTP on {a}")).unwrap_or_default();
            eprintln!(
                "signet listening on {} (base URL {}{plain}); open {}/",
                running.addr, running.base_url, running.public_url
            );
            // systemd and container runtimes stop a service with SIGTERM, a terminal with Ctrl-C:
            // either way the leases are handed over below.
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = running.task => r??,
                _ = tokio::signal::ctrl_c() => eprintln!("shutting down"),
                _ = terminate.recv() => eprintln!("shutting down"),
            }
            // Hands this node's job leases to the other nodes now rather than at expiry.
            running.jobs.stop().await;
        }
        Command::Config { command: ConfigCommand::Check(args) } => {
            let settings = args.settings()?;
            print!("{}", settings.effective());
            eprintln!("configuration is valid");
        }
        Command::Ca { command: CaCommand::Init(a) } => {
            let key = match a.pkcs11_module {
                Some(module) => KeySource::Pkcs11 {
                    module,
                    token_label: a.token_label.unwrap_or_default(),
                    issuing_key_label: "signet-issuing".into(),
                    root_key_label: "signet-root".into(),
                    pin_env: a.pin_env.unwrap_or_default(),
                },
                None => KeySource::File {
                    issuing_key: "issuing.key.json".into(),
                    root_key: "root.key.json".into(),
                    passphrase_env: Some(a.passphrase_env),
                    passphrase_file: None,
                },
            };
            let opts = InitOptions {
                dir: a.data_dir.join("ca"),
                vendor: a.vendor,
                algorithm: a.key_type,
                names: HierarchyNames { root_cn: a.root_cn, issuing_cn: a.issuing_cn },
                key,
            };
            init_ca(&opts, &signet_pki::profile::Catalog::default_eca(), time::OffsetDateTime::now_utc())?;
            println!("created root and issuing CA ({}) in {}", a.key_type, opts.dir.display());
        }
        Command::Cert { command: CertCommand::Issue(a) } => {
            let state = a.server.state().await?;
            let organization = OrganizationName::new(&a.org)?;
            let subject = match (a.cn, a.email) {
                (Some(cn), Some(email)) => {
                    Subject::Person { common_name: CommonName::new(&cn)?, organization, email: Email::new(&email)? }
                }
                _ if !a.dns.is_empty() => Subject::Device {
                    organization,
                    dns_names: a.dns.iter().map(|d| DnsName::new(d)).collect::<Result<_, _>>()?,
                },
                _ => return Err("give --cn and --email for a person, or --dns for a device".into()),
            };
            let csr = std::fs::read(&a.csr).map_err(|e| format!("{}: {e}", a.csr.display()))?;
            let order = CertificateOrder { profile: a.profile, subject, validity_years: a.years };
            let cert = state.issue(&cli_actor(), &order, &csr).await?;
            let pem = signet_pki::to_pem("CERTIFICATE", &cert.der);
            match a.out {
                Some(p) => std::fs::write(&p, pem).map_err(|e| format!("{}: {e}", p.display()))?,
                None => print!("{pem}"),
            }
            eprintln!("issued serial {}", cert.serial);
        }
        Command::Cert { command: CertCommand::Revoke { server, serial, reason } } => {
            let state = server.state().await?;
            let serial = Serial::from_hex(&serial)?;
            let outcome = state.revoke(&cli_actor(), &serial, reason).await?;
            println!("{serial}: revoked ({outcome:?})");
        }
        Command::Crl { server, out } => {
            let state = server.state().await?;
            let der = state.publish_crl(&cli_actor()).await?;
            std::fs::write(&out, der).map_err(|e| format!("{}: {e}", out.display()))?;
        }
        Command::Admin { command: AdminCommand::ApiKey { command: ApiKeyCommand::Create { server, name, role } } } => {
            let state = server.state().await?;
            let mut raw = [0u8; 32];
            aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut raw)
                .map_err(|_| "random generator failed")?;
            let token = format!("sgt_{}", hex::encode(raw));
            let event = AuditEvent::new(
                time::OffsetDateTime::now_utc(),
                &cli_actor(),
                AuditAction::ApiKeyCreated,
                &name,
                serde_json::json!({ "role": role }),
            );
            state.store.create_api_key(&ApiKey { name, role }, &signet_server::token_hash(&token), &event).await?;
            println!("{token}");
            eprintln!("store this token now; it is not shown again");
        }
        Command::Admin { command: AdminCommand::Operator { command } } => operator_cmd::run_operator(command).await?,
        Command::Admin { command: AdminCommand::Unlock(args) } => operator_cmd::run_unlock(args).await?,
        Command::Admin { command: AdminCommand::KeyRecovery { command } } => key_recovery_cmd::run(command).await?,
        Command::Admin { command: AdminCommand::Token { command } } => stock_cmd::run(command).await?,
        Command::Admin {
            command:
                AdminCommand::Acme {
                    command: AcmeCommand::Eab { command: EabCommand::Create { server, organization, domains } },
                },
        } => {
            use signet_ra::acme::{AcmeStore, DomainScope, EabBinding, EabKey};
            let key = EabKey::generate(
                OrganizationName::new(&organization)?,
                DomainScope::parse(&domains)?,
                time::OffsetDateTime::now_utc(),
            );
            let store = signet_store::Store::connect(&server.settings()?.database_url).await?;
            store.create_eab_key(&key, key.created_event(&cli_actor())).await?;
            if let EabBinding::Unbound(secret) = &key.binding {
                println!("eab-kid: {}\neab-hmac-key: {}", key.id, secret.to_base64url());
                eprintln!(
                    "give both to the organization's ACME client (certbot --eab-kid, --eab-hmac-key); the HMAC key is not shown again"
                );
            }
        }
        Command::Admin {
            command: AdminCommand::Enterprise { command: EnterpriseCommand::AddUser { server, organization, account } },
        } => {
            use signet_ra::application::{ApplicationId, OrganizationKey};
            let name = OrganizationName::new(&organization)?;
            let account = ApplicationId::new(&account)?;
            let state = server.state().await?;
            let user = state.add_enterprise_user(OrganizationKey::of(&name), account, &cli_actor()).await?;
            println!("{} is now a user of the enterprise account of {}", user.account, name.as_str());
        }
        Command::Audit { command: AuditCommand::Verify(server) } => {
            let settings = server.settings()?;
            let store = signet_store::Store::connect(&settings.database_url).await?;
            match store.verify_audit().await? {
                Ok(n) => println!("audit log intact: {n} rows"),
                Err(brk) => {
                    println!("audit log BROKEN: {brk}");
                    return Ok(std::process::ExitCode::from(2));
                }
            }
        }
        Command::Bench(args) => bench::run(args).await?,
        Command::Gateway(args) => gateway_cmd::run(args).await?,
        Command::Token { command } => return token_cmd::run(command).await,
    }
    Ok(std::process::ExitCode::SUCCESS)
}
