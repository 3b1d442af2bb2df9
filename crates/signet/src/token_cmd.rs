//! `signet token …`: the applicant's side of certificate retrieval, on any OS with a
//! PKCS#11 module. `readiness` is the seed guide's "Please Check if my System is Ready";
//! `retrieve` initializes a blank token, generates the identity key on it, sends the request
//! with the activation code and account password, and writes the certificate and chain back,
//! then installs the escrowed encryption key the server sends wrapped to a session-only
//! transport key (unwrapped inside the token, not extractable) with its certificate;
//! `renew`, in the 90 days before the certificate expires, generates a new key on the token,
//! proves with the current key that it is the subscriber asking, and replaces key and
//! certificate under the same label.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressStyle};
use signet_pki::KeyAlgorithm;
use signet_ra::application::{ActivationCode, ApplicationId};
use signet_ra::renewal::proof_message;
use signet_ra::token_stock::{TokenSerial, renewal_message, shipment_message};
use signet_token::TokenError;
use signet_token::subscriber::{IdentityKey, SubscriberToken, TokenSession, TransportKey, UnlockCode, readiness};

type Error = Box<dyn std::error::Error>;

/// Environment variables that stand in for the prompts (tests, scripted set-ups). Prompts never
/// echo; the variables are read only when set.
const ACTIVATION_CODE_ENV: &str = "SIGNET_ACTIVATION_CODE";
const PASSWORD_ENV: &str = "SIGNET_PASSWORD";
const NEW_PIN_ENV: &str = "SIGNET_NEW_PIN";
const PIN_ENV: &str = "SIGNET_PIN";

/// The largest answer read from the server: a certificate and a two-certificate chain.
const MAX_ANSWER: usize = 256 * 1024;

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Check the PKCS#11 module and the tokens, and say what is missing for a retrieval.
    Readiness {
        /// The PKCS#11 module, e.g. /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so.
        #[arg(long)]
        module: PathBuf,
        /// Also check that the inserted token is the one the RA shipped for this application
        /// (needs --server).
        #[arg(long, requires = "server")]
        application: Option<String>,
        /// The Signet server, for --application.
        #[arg(long)]
        server: Option<String>,
        /// Trust these CA certificates (PEM) for the server's TLS certificate.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// The token's slot, when several tokens are inserted.
        #[arg(long)]
        slot: Option<u64>,
    },
    /// Retrieve your certificates (identity, and encryption with its escrowed key) onto your token
    /// with the emailed activation code.
    Retrieve(RetrieveArgs),
    /// Renew the identity certificate on your token (in the 90 days before it expires): a new
    /// key pair on the token, and a new certificate for it.
    Renew(RenewArgs),
    /// Change your token's PIN, or unblock it with the unlock code.
    Pin {
        #[command(subcommand)]
        command: crate::token_care::PinCommand,
    },
    /// Show the certificates on your token: type, expiry and, with --server, revocation status.
    Status(crate::token_care::StatusArgs),
}

/// What a retrieval or a renewal talks to: the server, the token, the application.
#[derive(Args)]
pub(crate) struct Target {
    /// The Signet server, e.g. https://ra.example.gov (plain http:// only to this machine).
    #[arg(long)]
    server: String,
    /// The PKCS#11 module of the token.
    #[arg(long)]
    module: PathBuf,
    /// The application reference from your emails.
    #[arg(long)]
    application: String,
    /// The token's slot number (see `signet token readiness`), when several tokens are inserted.
    #[arg(long)]
    slot: Option<u64>,
    /// Trust these CA certificates (PEM) for the server's TLS certificate, beside the system's.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

impl Target {
    /// The application reference and the server, both checked before the token is touched.
    fn open(&self) -> Result<(ApplicationId, Endpoint), Error> {
        Ok((ApplicationId::new(&self.application)?, Endpoint::new(&self.server, self.ca_file.as_deref())?))
    }
}

#[derive(Args)]
pub(crate) struct RetrieveArgs {
    #[command(flatten)]
    target: Target,
    /// The identity key's type: rsa-2048 or p-256.
    #[arg(long, default_value = "rsa-2048")]
    key_type: KeyAlgorithm,
}

#[derive(Args)]
pub(crate) struct RenewArgs {
    #[command(flatten)]
    target: Target,
    /// The new key's type: rsa-2048 or p-256 (default: the current key's type).
    #[arg(long)]
    key_type: Option<KeyAlgorithm>,
}

pub(crate) async fn run(command: TokenCommand) -> Result<ExitCode, Error> {
    match command {
        TokenCommand::Readiness { module, application, server, ca_file, slot } => {
            let report = readiness(&module);
            println!("{report}");
            let mut ready = report.is_ready();
            if let (Some(application), Some(server)) = (application, server) {
                let shipped = shipped_token_check(&module, slot, &application, &server, ca_file.as_deref()).await?;
                println!("{}", shipped.0);
                ready &= shipped.1;
            }
            Ok(if ready { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        TokenCommand::Retrieve(args) => retrieve(args).await.map(|()| ExitCode::SUCCESS),
        TokenCommand::Renew(args) => renew(args).await.map(|()| ExitCode::SUCCESS),
        TokenCommand::Pin { command } => crate::token_care::pin(command),
        TokenCommand::Status(args) => crate::token_care::status(args).await,
    }
}

/// Whether the inserted token is the one shipped for `application`: the sentence to print, and
/// whether retrieval can go ahead with it.
async fn shipped_token_check(
    module: &Path,
    slot: Option<u64>,
    application: &str,
    server: &str,
    ca_file: Option<&Path>,
) -> Result<(String, bool), Error> {
    let application = ApplicationId::new(application)?;
    let endpoint = Endpoint::new(server, ca_file)?;
    let token = SubscriberToken::find_initialized(module, slot)?;
    if !token.is_initialized() {
        return Ok((
            format!(
                "application {application}: the inserted token is blank, so it is not a token the RA shipped; \
                 insert the token that came in the mail"
            ),
            false,
        ));
    }
    let body = serde_json::json!({ "application": application.as_str(), "token_serial": token.serial() });
    let (status, answer) = endpoint.post_json("/api/v1/retrieval/check-token", body.to_string().into_bytes()).await?;
    if status != 200 {
        return Err(refused("token check", status, &answer).into());
    }
    let verdict: serde_json::Value = serde_json::from_slice(&answer)?;
    let serial = token.serial();
    Ok(match verdict["verdict"].as_str() {
        Some("shipped-for-this-application") => {
            (format!("application {application}: token {serial} is the one the RA shipped for it"), true)
        }
        Some("another-token") => (
            format!(
                "application {application}: token {serial} is NOT the one the RA shipped for it; insert the token \
                 that came in the mail (or choose it with --slot)"
            ),
            false,
        ),
        _ => (
            format!(
                "application {application}: no token from the RA's stock was shipped for it; your own token \
                 {serial} will be used"
            ),
            true,
        ),
    })
}

/// A secret from its environment variable, or typed without echo.
fn secret(env: &str, prompt: &str) -> Result<String, Error> {
    match std::env::var(env) {
        Ok(v) => Ok(v),
        Err(_) => Ok(rpassword::prompt_password(prompt)?),
    }
}

/// The retrieval's steps, one line each on the progress display.
struct Steps(ProgressBar);

impl Steps {
    const TOTAL: u64 = 6;

    fn new() -> Self {
        let bar = ProgressBar::new(Self::TOTAL);
        bar.set_style(ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg}").expect("the template is valid"));
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(bar)
    }

    fn start(&self, step: u64, what: impl Into<String>) {
        self.0.set_position(step - 1);
        self.0.set_message(what.into());
    }

    /// Runs `f` with the display cleared, for prompts and for text that must stay on screen.
    fn pause<T>(&self, f: impl FnOnce() -> T) -> T {
        self.0.suspend(f)
    }

    fn finish(&self, what: &str) {
        self.0.set_position(Self::TOTAL);
        self.0.finish_with_message(what.to_owned());
    }

    fn fail(&self) {
        self.0.abandon();
    }
}

async fn retrieve(a: RetrieveArgs) -> Result<(), Error> {
    let (application, endpoint) = a.target.open()?;
    // Ask for the account's secrets first, as the seed guide does: nothing on the token
    // changes before the applicant has them at hand.
    let code = ActivationCode::new(&secret(ACTIVATION_CODE_ENV, "Activation code (from the email): ")?)?;
    let password = secret(PASSWORD_ENV, "Account password (chosen when you applied): ")?;
    let steps = Steps::new();
    let outcome = retrieve_steps(&a, &steps, &endpoint, &application, &code, password).await;
    if outcome.is_err() {
        steps.fail();
    }
    outcome
}

async fn retrieve_steps(
    a: &RetrieveArgs,
    steps: &Steps,
    endpoint: &Endpoint,
    application: &ApplicationId,
    code: &ActivationCode,
    password: String,
) -> Result<(), Error> {
    steps.start(1, "Finding the token");
    // A token already set up is the one meant (SoftHSM2 and some readers also show a blank slot).
    let mut token = SubscriberToken::find_initialized(&a.target.module, a.target.slot)?;

    // A token from the RA's stock was initialized when it was provisioned; a blank one is the
    // applicant's own.
    let begun = if token.is_initialized() {
        steps.start(2, format!("Checking token {} with {}", token.serial(), endpoint.base));
        endpoint.begin(application, code, &password, token.serial()).await?
    } else {
        None
    };
    let session = match &begun {
        Some(b) => open_shipped(steps, &token, b)?,
        None => open_own(steps, &mut token, application)?,
    };

    steps.start(3, format!("Generating the {} identity key pair on the token", a.key_type));
    let label = identity_label(application);
    // A key left by a retrieval whose answer was lost is used again: the server delivers its
    // certificate rather than issuing another.
    let key = match session.uncertified_identity_key(&label)? {
        Some(key) => key,
        None => match session.generate_identity_key(a.key_type, &label) {
            Ok(key) => key,
            Err(TokenError::KeyExists { token, key }) => {
                return Err(format!(
                    "token {token:?} already holds the identity key and certificate of application {application} \
                     (labelled {key:?}): its certificates were retrieved before"
                )
                .into());
            }
            Err(e) => return Err(e.into()),
        },
    };

    steps.start(4, format!("Sending the certificate request to {}", endpoint.base));
    let csr = key.certificate_request()?;
    let b64 = base64::engine::general_purpose::STANDARD;
    // The escrowed encryption key comes wrapped to a transport key: on a token from the stock,
    // one kept on the token until the key is installed, so a lost answer can be delivered again;
    // on the applicant's own token, which the server cannot deliver to again, a session-only
    // one. A token that cannot make one still gets its identity certificate for types without
    // an encryption certificate; for the others the server says why it refuses.
    let transport = match &begun {
        Some(_) => session.transport_key(&transport_label(application)),
        None => session.generate_transport_key(),
    };
    let transport = match transport {
        Ok(t) => Some(t),
        Err(e) => {
            steps.pause(|| eprintln!("warning: the token cannot receive an escrowed encryption key: {e}"));
            None
        }
    };
    let mut body = serde_json::json!({
        "application": application.as_str(),
        "activation_code": code.expose(),
        "password": password,
        "csr": b64.encode(&csr),
        "token_serial": token.serial(),
    });
    if let Some(t) = &transport {
        body["transport_key"] = b64.encode(t.spki()).into();
    }
    if let Some(b) = &begun {
        let serial = TokenSerial::new(&b.token_serial)?;
        let message = shipment_message(&b.challenge, application, &serial, &csr);
        body["challenge"] = b.challenge.clone().into();
        body["shipment_signature"] = b64.encode(session.shipment_sign(&message)?).into();
    }
    if let Some(chain) = session.piv_attestation(&key)? {
        body["attestation"] = chain.iter().map(|c| b64.encode(c)).collect::<Vec<_>>().into();
    }
    let answer = match endpoint.request("/api/v1/retrieval", body, "retrieval").await {
        Ok(answer) => answer,
        // The answer may have been lost after the server issued: a token from the stock keeps
        // the key pair and the transport key, and running the command again delivers the
        // certificates for them.
        Err(e) if begun.is_some() && !e.is::<Refused>() => return Err(e),
        // Refused, so nothing was issued; or a token of the applicant's own, which the server
        // cannot deliver to again: the token keeps no key without a purpose.
        Err(e) => {
            let discarded = session.discard(key).and_then(|()| match transport {
                Some(t) => session.discard_transport_key(t),
                None => Ok(()),
            });
            if let Err(d) = discarded {
                steps.pause(|| eprintln!("warning: the unused keys stayed on the token: {d}"));
            }
            return Err(e);
        }
    };

    steps.start(5, "Writing the certificate and chain to the token");
    store(&session, &key, &answer)?;
    if let (Some(encryption), Some(transport)) = (&answer.encryption, transport) {
        steps.start(6, "Installing the escrowed encryption key and its certificate on the token");
        install_encryption(&session, transport, encryption, application)?;
    }
    steps.finish("Certificates retrieved");
    println!(
        "Retrieved certificate {} ({}) onto token {:?} (serial {}): key and certificate labelled {:?}, ID {}.",
        answer.serial,
        answer.profile,
        token.label(),
        token.serial(),
        key.label(),
        hex::encode(key.id())
    );
    if let Some(e) = &answer.encryption {
        println!(
            "Retrieved encryption certificate {} ({}) with its escrowed key, labelled {:?}.",
            e.serial,
            e.profile,
            encryption_label(application)
        );
    }
    Ok(())
}

/// Opens the token the RA shipped: the first time, replaces its transport PINs with the
/// subscriber's own PIN and a new unlock code; after that, asks for the subscriber's PIN.
fn open_shipped(steps: &Steps, token: &SubscriberToken, begun: &Begun) -> Result<TokenSession, Error> {
    if token.is_personalized()? {
        return log_in(steps, token);
    }
    let Some(pins) = &begun.transport_pins else {
        return Err("the server sent no transport PINs for this token, which still has them: ask the RA".into());
    };
    steps.start(2, format!("Setting your own PIN and unlock code on token {}", token.serial()));
    let pin = steps.pause(|| new_pin(token))?;
    let unlock = token.personalize(&pins.user, &pins.so, &pin)?;
    show_unlock_code(steps, token, &unlock);
    Ok(token.login(&pin)?)
}

/// Opens a token of the applicant's own (not from the RA's stock): initializes it if blank.
fn open_own(steps: &Steps, token: &mut SubscriberToken, application: &ApplicationId) -> Result<TokenSession, Error> {
    if token.is_initialized() {
        return log_in(steps, token);
    }
    steps.start(2, "Initializing the blank token");
    let pin = steps.pause(|| new_pin(token))?;
    let label = format!("ECA {application}");
    let unlock = token.initialize(&label, &pin)?;
    show_unlock_code(steps, token, &unlock);
    Ok(token.login(&pin)?)
}

fn show_unlock_code(steps: &Steps, token: &SubscriberToken, unlock: &UnlockCode) {
    steps.pause(|| {
        println!("Your token's unlock code (PUK, the SO PIN) for token {:?} is:\n", token.label());
        println!("    {}\n", unlock.expose());
        println!(
            "WARNING: write the unlock code down now and keep it apart from the token. It is shown only \
             this once and Signet keeps no copy; without it, a PIN locked by wrong tries cannot be unlocked \
             (signet token pin unblock).\n"
        );
    });
}

/// Unwraps the encryption key into the token and writes its certificate; if the token refuses,
/// saves the certificate to a file (the key stays escrowed, so a recovery agent can restore it).
fn install_encryption(
    session: &TokenSession,
    transport: TransportKey,
    e: &IssuedEncryption,
    application: &ApplicationId,
) -> Result<(), Error> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let certificate = pem::parse(&e.certificate)?.into_contents();
    let install = || -> Result<Vec<u8>, Error> {
        let wrapped_key = b64.decode(&e.wrapped_key)?;
        let wrapped_private_key = b64.decode(&e.wrapped_private_key)?;
        let label = encryption_label(application);
        Ok(session.install_encryption_key(transport, &wrapped_key, &wrapped_private_key, &certificate, &label)?)
    };
    if let Err(err) = install() {
        let file = PathBuf::from(format!("signet-{}.pem", e.serial));
        std::fs::write(&file, &e.certificate)?;
        return Err(format!(
            "the encryption key could not be installed on the token: {err}. Its certificate was saved to {}; \
             the key is escrowed, so an RA key recovery agent can recover it",
            file.display()
        )
        .into());
    }
    Ok(())
}

/// Logs in to an initialized token with the PIN from the environment or typed.
fn log_in(steps: &Steps, token: &SubscriberToken) -> Result<TokenSession, Error> {
    steps.start(2, format!("Logging in to token {:?}", token.label()));
    let pin = steps.pause(|| secret(PIN_ENV, &format!("PIN of token {:?}: ", token.label())))?;
    Ok(token.login(&pin)?)
}

/// Asks for the new token PIN twice (or reads it from the environment).
fn new_pin(token: &SubscriberToken) -> Result<String, Error> {
    if let Ok(pin) = std::env::var(NEW_PIN_ENV) {
        return Ok(pin);
    }
    let (min, max) = token.pin_length();
    let first = rpassword::prompt_password(format!("Choose a PIN for the token ({min} to {max} characters): "))?;
    if rpassword::prompt_password("Type the PIN again: ")? != first {
        return Err("the two PINs differ; nothing was changed on the token".into());
    }
    Ok(first)
}

/// Waits for the server's certificate for `key`; if there is none, deletes the key: without
/// its certificate the key has no use, and the token keeps no key without one.
async fn send_or_discard(
    steps: &Steps,
    session: &TokenSession,
    key: IdentityKey,
    request: impl Future<Output = Result<Issued, Error>>,
) -> Result<(IdentityKey, Issued), Error> {
    match request.await {
        Ok(answer) => Ok((key, answer)),
        Err(e) => {
            if let Err(discard) = session.discard(key) {
                steps.pause(|| eprintln!("warning: the unused key pair stayed on the token: {discard}"));
            }
            Err(e)
        }
    }
}

async fn renew(a: RenewArgs) -> Result<(), Error> {
    let (application, endpoint) = a.target.open()?;
    let steps = Steps::new();
    let outcome = renew_steps(&a, &steps, &endpoint, &application).await;
    if outcome.is_err() {
        steps.fail();
    }
    outcome
}

async fn renew_steps(
    a: &RenewArgs,
    steps: &Steps,
    endpoint: &Endpoint,
    application: &ApplicationId,
) -> Result<(), Error> {
    steps.start(1, "Finding the token");
    let token = SubscriberToken::find(&a.target.module, a.target.slot)?;
    if !token.is_initialized() {
        return Err("the token is blank: retrieve your certificate onto it first (signet token retrieve)".into());
    }
    let session = log_in(steps, &token)?;
    let label = identity_label(application);
    let (current, certificate) = match session.certified_key(&label) {
        Ok(found) => found,
        Err(TokenError::KeyNotFound { token, .. }) => {
            return Err(format!(
                "token {token:?} holds no identity key with its certificate for application {application}: \
                 retrieve them first (signet token retrieve)"
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    };

    let key_type = a.key_type.unwrap_or(current.algorithm());
    steps.start(3, format!("Generating the new {key_type} identity key pair on the token"));
    let key = session.generate_identity_key(key_type, &format!("{label} (renewal)"))?;

    steps.start(4, format!("Sending the renewal request to {}", endpoint.base));
    let csr = key.certificate_request()?;
    let proof = current.sign(&proof_message(&csr))?;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut body = serde_json::json!({
        "certificate": signet_pki::to_pem("CERTIFICATE", &certificate),
        "csr": b64(&csr),
        "proof": b64(&proof),
    });
    // Token types renew only onto a key proven on the token: the shipment key of a token from
    // the RA's stock signs for it, or a YubiKey attests it.
    let serial = TokenSerial::new(token.serial())?;
    if let Ok(signature) = session.shipment_sign(&renewal_message(&serial, &csr)) {
        body["token_serial"] = serial.as_str().into();
        body["shipment_signature"] = b64(&signature).into();
    }
    if let Some(chain) = session.piv_attestation(&key)? {
        body["attestation"] = chain.iter().map(|c| b64(c)).collect::<Vec<_>>().into();
    }
    let request = endpoint.request("/api/v1/renewal", body, "renewal");
    let (key, answer) = send_or_discard(steps, &session, key, request).await?;

    steps.start(5, "Writing the new certificate to the token and removing the old key");
    store(&session, &key, &answer)?;
    let new_id = hex::encode(key.id());
    session.replace(current, key, &label)?;
    steps.finish("Certificate renewed");
    println!(
        "Renewed: certificate {} ({}) replaces the old one on token {:?}; key and certificate labelled {label:?}, ID {new_id}.",
        answer.serial,
        answer.profile,
        token.label(),
    );
    Ok(())
}

/// The label of the identity key and certificate of `application` on the token.
fn identity_label(application: &ApplicationId) -> String {
    format!("ECA identity {application}")
}

/// The label of the transport key kept on the token until the encryption key is installed.
fn transport_label(application: &ApplicationId) -> String {
    format!("signet transport {application}")
}

/// The label of the encryption key and certificate of `application` on the token.
fn encryption_label(application: &ApplicationId) -> String {
    format!("ECA encryption {application}")
}

/// The server's answer to a retrieval or renewal.
#[derive(serde::Deserialize)]
struct Issued {
    serial: String,
    profile: String,
    certificate: String,
    chain: String,
    /// Retrieval of a type with an escrowed encryption certificate.
    #[serde(default)]
    encryption: Option<IssuedEncryption>,
}

/// The encryption certificate and its key, wrapped to the transport key.
#[derive(serde::Deserialize)]
struct IssuedEncryption {
    serial: String,
    profile: String,
    certificate: String,
    wrapped_key: String,
    wrapped_private_key: String,
}

/// What the server says when it refuses (RFC 9457 problem details).
#[derive(serde::Deserialize)]
struct Problem {
    #[serde(rename = "type", default)]
    kind: String,
    detail: String,
}

/// The problem type slug of a refusal (`urn:signet:problem:<slug>`).
fn problem_kind(answer: &[u8]) -> Option<String> {
    let p: Problem = serde_json::from_slice(answer).ok()?;
    p.kind.strip_prefix("urn:signet:problem:").map(str::to_owned)
}

/// The error for a refused request: the problem's detail, or the raw answer.
fn refused(what: &str, status: u16, answer: &[u8]) -> String {
    let detail = serde_json::from_slice::<Problem>(answer)
        .map(|p| p.detail)
        .unwrap_or_else(|_| format!("HTTP {status}: {}", String::from_utf8_lossy(answer)));
    format!("the server refused the {what}: {detail}")
}

/// The server answered with a refusal: nothing was issued.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The answer to `begin`.
#[derive(serde::Deserialize)]
struct Begun {
    token_serial: String,
    challenge: String,
    #[serde(default)]
    transport_pins: Option<TransportPins>,
}

/// A stock token's transport PINs, replaced at once by the subscriber's own.
#[derive(serde::Deserialize)]
struct TransportPins {
    user: String,
    so: String,
}

/// Writes the certificate and chain; if the token refuses, saves them to a file so the issued
/// certificate is not lost (the activation code is spent by now).
fn store(session: &TokenSession, key: &IdentityKey, answer: &Issued) -> Result<(), Error> {
    let leaf = pem::parse(&answer.certificate)?.into_contents();
    let chain: Vec<Vec<u8>> = pem::parse_many(&answer.chain)?.into_iter().map(pem::Pem::into_contents).collect();
    if let Err(e) = session.store_certificates(key, &leaf, &chain) {
        let file = PathBuf::from(format!("signet-{}.pem", answer.serial));
        std::fs::write(&file, format!("{}{}", answer.certificate, answer.chain))?;
        return Err(format!(
            "{e}. The certificate and chain were saved to {}; the key is on the token under ID {}",
            file.display(),
            hex::encode(key.id())
        )
        .into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// HTTP(S)

/// The Signet server to talk to.
struct Endpoint {
    base: String,
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Endpoint {
    /// Checks the URL. The activation code and password travel in the request, so plain HTTP is
    /// allowed only to this machine (a server behind a local TLS proxy, or tests).
    fn new(base: &str, ca_file: Option<&Path>) -> Result<Self, Error> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|_| format!("{base} is not a URL"))?;
        let host = uri.host().ok_or_else(|| format!("{base} names no host"))?.trim_matches(['[', ']']).to_owned();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if is_loopback(&host) => false,
            Some("http") => {
                return Err(format!(
                    "{base}: plain http:// would send the activation code and password unencrypted; use https://"
                )
                .into());
            }
            _ => return Err(format!("{base}: use an https:// URL").into()),
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https { Some(Arc::new(tls_config(ca_file)?)) } else { None };
        Ok(Self { base, host, port, tls })
    }

    /// POSTs `body` to `path` and reads the certificate from a 201 answer; a refusal's
    /// problem detail becomes the error, naming `what` was refused.
    async fn request(&self, path: &str, body: serde_json::Value, what: &str) -> Result<Issued, Error> {
        // 201: issued now; 200: delivered again after a lost answer.
        match self.post_json(path, body.to_string().into_bytes()).await? {
            (200 | 201, answer) => {
                Ok(serde_json::from_slice(&answer).map_err(|e| format!("the server's answer is malformed: {e}"))?)
            }
            (status, answer) => Err(Box::new(Refused(refused(what, status, &answer)))),
        }
    }

    /// Opens the retrieval onto a token from the RA's stock; `None` when the application had no
    /// token from the stock shipped (the applicant's own token is used as it is).
    async fn begin(
        &self,
        application: &ApplicationId,
        code: &ActivationCode,
        password: &str,
        serial: &str,
    ) -> Result<Option<Begun>, Error> {
        let body = serde_json::json!({
            "application": application.as_str(),
            "activation_code": code.expose(),
            "password": password,
            "token_serial": serial,
        });
        match self.post_json("/api/v1/retrieval/begin", body.to_string().into_bytes()).await? {
            (200, answer) => {
                Ok(Some(serde_json::from_slice(&answer).map_err(|e| format!("the server's answer is malformed: {e}"))?))
            }
            (409, answer) if problem_kind(&answer).as_deref() == Some("no-shipped-token") => Ok(None),
            (status, answer) => Err(refused("retrieval", status, &answer).into()),
        }
    }

    /// POSTs a JSON body to `path`; returns the status and the body (at most [`MAX_ANSWER`]).
    async fn post_json(&self, path: &str, body: Vec<u8>) -> Result<(u16, Bytes), Error> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(hyper::header::HOST, format!("{}:{}", self.host, self.port))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let unreachable = |e: &dyn std::fmt::Display| format!("cannot reach {}: {e}", self.base);
        let work = async {
            let tcp =
                tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| unreachable(&e))?;
            match &self.tls {
                Some(config) => {
                    let name =
                        rustls_pki_types::ServerName::try_from(self.host.clone()).map_err(|e| unreachable(&e))?;
                    let tls = tokio_rustls::TlsConnector::from(config.clone())
                        .connect(name, tcp)
                        .await
                        .map_err(|e| unreachable(&e))?;
                    exchange(TokioIo::new(tls), request).await
                }
                None => exchange(TokioIo::new(tcp), request).await,
            }
        };
        tokio::time::timeout(Duration::from_secs(60), work)
            .await
            .map_err(|_| format!("{} did not answer within a minute", self.base))?
    }
}

/// One HTTP/1.1 request on a fresh connection.
async fn exchange<I>(io: I, request: Request<Full<Bytes>>) -> Result<(u16, Bytes), Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_ANSWER).collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, body))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// TLS with the system's trust store, plus the CA certificates in `ca_file`.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in pem::parse_many(&text)? {
            roots.add(cert.into_contents().into()).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err("no trusted CA certificates: the system has none, and no --ca-file was given".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in ["http://127.0.0.1:8080", "http://localhost:1/", "http://[::1]:8443"] {
            assert!(Endpoint::new(ok, None).is_ok_and(|e| e.tls.is_none()), "{ok}");
        }
        for bad in ["http://ra.example.gov", "http://10.0.0.5:8080", "ftp://127.0.0.1", "127.0.0.1:8080"] {
            assert!(Endpoint::new(bad, None).is_err(), "{bad}");
        }
        let err = Endpoint::new("http://ra.example.gov", None).err().unwrap().to_string();
        assert!(err.contains("unencrypted"), "{err}");
    }

    /// A TLS server on this machine with a certificate from a throwaway CA: the client trusts it
    /// through `--ca-file` and refuses it without.
    #[tokio::test]
    async fn https_with_a_ca_file() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let answer = format!("got {} bytes", body.len());
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder().status(201).body(Full::new(Bytes::from(answer))).unwrap(),
                        )
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });

        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        let url = format!("https://localhost:{port}");
        let trusted = Endpoint::new(&url, Some(&ca_file)).unwrap();
        let (status, body) = trusted.post_json("/api/v1/retrieval", b"{}".to_vec()).await.unwrap();
        assert_eq!((status, &body[..]), (201, &b"got 2 bytes"[..]));
        // Without the CA file the server's certificate is unknown (a machine without any
        // system roots refuses even earlier).
        match Endpoint::new(&url, None) {
            Ok(untrusted) => {
                let err = untrusted.post_json("/api/v1/retrieval", b"{}".to_vec()).await.unwrap_err().to_string();
                assert!(err.contains("cannot reach") && err.contains("certificate"), "{err}");
            }
            Err(e) => assert!(e.to_string().contains("no trusted CA certificates"), "{e}"),
        }
    }
}
