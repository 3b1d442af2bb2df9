//! `signet token pin change`, `signet token pin unblock` and `signet token status`: the
//! subscriber's care of the token after retrieval, on any OS with a PKCS#11 module, so nobody
//! needs a vendor's tool to change a PIN, unblock it with the unlock code, or see which
//! certificates the token holds and whether they are still good.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use signet_gateway::fetch::Fetcher;
use signet_gateway::revocation::{RevocationStatus, check_response, encode_request};
use signet_pki::profile::Catalog;
use signet_token::subscriber::{SubscriberToken, TokenCertificate};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

type Error = Box<dyn std::error::Error>;

/// Environment variables that stand in for the prompts (tests, scripted set-ups).
const PIN_ENV: &str = "SIGNET_PIN";
const NEW_PIN_ENV: &str = "SIGNET_NEW_PIN";
const UNLOCK_CODE_ENV: &str = "SIGNET_UNLOCK_CODE";

/// id-ad-ocsp (RFC 5280 §4.2.2.1).
const ID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";

/// How long an OCSP responder gets to answer.
const OCSP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Subcommand)]
pub(crate) enum PinCommand {
    /// Change the token's PIN (you type the current one, then the new one twice).
    Change(TokenArgs),
    /// Set a new PIN with the unlock code (PUK) you were shown at retrieval, when the PIN is
    /// locked by wrong tries or forgotten.
    Unblock(TokenArgs),
}

/// Which token.
#[derive(Args)]
pub(crate) struct TokenArgs {
    /// The PKCS#11 module of the token, e.g. /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so.
    #[arg(long)]
    module: PathBuf,
    /// The token's slot number (see `signet token readiness`), when several tokens are inserted.
    #[arg(long)]
    slot: Option<u64>,
}

#[derive(Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    token: TokenArgs,
    /// Ask this Signet server's OCSP responder (`<server>/ocsp`) whether the certificates are
    /// revoked, when a certificate names no responder of its own.
    #[arg(long)]
    server: Option<String>,
}

impl TokenArgs {
    /// The token, which must have been initialized (a blank one has no PIN to care for).
    fn open(&self) -> Result<SubscriberToken, Error> {
        let token = SubscriberToken::find_initialized(&self.module, self.slot)?;
        if !token.is_initialized() {
            return Err(format!(
                "the token (serial {}) is blank: it has no PIN yet; retrieve your certificates onto it first \
                 (signet token retrieve)",
                token.serial()
            )
            .into());
        }
        Ok(token)
    }
}

pub(crate) fn pin(command: PinCommand) -> Result<ExitCode, Error> {
    match command {
        PinCommand::Change(args) => {
            let token = args.open()?;
            let current = secret(PIN_ENV, &format!("Current PIN of token {:?}: ", token.label()))?;
            let new = new_pin(&token)?;
            token.change_pin(&current, &new)?;
            println!("The PIN of token {:?} (serial {}) is changed.", token.label(), token.serial());
        }
        PinCommand::Unblock(args) => {
            let token = args.open()?;
            let code = secret(UNLOCK_CODE_ENV, &format!("Unlock code (PUK) of token {:?}: ", token.label()))?;
            let new = new_pin(&token)?;
            token.unblock_pin(&code, &new)?;
            println!(
                "Token {:?} (serial {}) has a new PIN, and its wrong tries are reset.",
                token.label(),
                token.serial()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn status(args: StatusArgs) -> Result<ExitCode, Error> {
    let token = SubscriberToken::find_initialized(&args.token.module, args.token.slot)?;
    if !token.is_initialized() {
        println!("Token serial {}: blank (no PIN, no certificates).", token.serial());
        return Ok(ExitCode::SUCCESS);
    }
    let personalized = if token.is_from_stock()? && !token.is_personalized()? {
        " (still has the transport PINs it shipped with: retrieve your certificates to set your own)"
    } else {
        ""
    };
    println!("Token {:?}, serial {}{personalized}", token.label(), token.serial());
    let certificates = token.certificates()?;
    let parsed: Vec<(&TokenCertificate, Option<X509Certificate<'_>>)> =
        certificates.iter().map(|c| (c, X509Certificate::from_der(&c.der).ok().map(|(_, x)| x))).collect();
    let catalog = Catalog::default_eca();
    let now = OffsetDateTime::now_utc();
    let fetcher = Fetcher::new(OCSP_TIMEOUT);

    let mine: Vec<_> = parsed.iter().filter(|(_, x)| !x.as_ref().is_some_and(|x| x.is_ca())).collect();
    if mine.is_empty() {
        println!("No certificates of yours on the token.");
    }
    for (object, cert) in &mine {
        println!();
        println!("{:?} (ID {})", object.label, hex::encode(&object.id));
        let Some(cert) = cert else {
            println!("  not a readable X.509 certificate");
            continue;
        };
        println!("  subject: {}", cert.subject());
        println!("  type:    {}", certificate_type(&catalog, cert));
        println!("  serial:  {}", hex::encode(cert.raw_serial()));
        let not_after = cert.validity().not_after.to_datetime();
        let days = (not_after - now).whole_days();
        let expiry = if not_after < now {
            "EXPIRED".to_owned()
        } else if days <= 90 {
            format!("{days} days left: renew now (signet token renew)")
        } else {
            format!("{days} days left")
        };
        println!("  expires: {} ({expiry})", not_after.date());
        if let Some(server) = &args.server {
            let issuer = parsed
                .iter()
                .filter_map(|(_, x)| x.as_ref())
                .find(|x| x.is_ca() && x.subject().as_raw() == cert.issuer().as_raw());
            println!("  status:  {}", revocation(&fetcher, server, cert, issuer, now).await);
        }
    }
    let cas: Vec<String> =
        parsed.iter().filter_map(|(_, x)| x.as_ref()).filter(|x| x.is_ca()).map(|x| x.subject().to_string()).collect();
    if !cas.is_empty() {
        println!();
        println!("CA certificates: {}", cas.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

/// The ECA certificate type the certificate's policies name, from the profile catalog.
fn certificate_type(catalog: &Catalog, cert: &X509Certificate<'_>) -> String {
    let mut policies = Vec::new();
    for extension in cert.extensions() {
        if let ParsedExtension::CertificatePolicies(p) = extension.parsed_extension() {
            policies.extend(p.iter().map(|info| info.policy_id.to_id_string()));
        }
    }
    let named = catalog.types().iter().find(|t| {
        policies
            .iter()
            .any(|p| *p == t.policy.to_string() || t.legacy_policy.as_ref().is_some_and(|l| *p == l.to_string()))
    });
    match (named, policies.is_empty()) {
        (Some(t), _) => format!("{} (policy {})", t.name, t.policy),
        (None, true) => "no certificate policy (not an ECA certificate)".to_owned(),
        (None, false) => format!("not an ECA type (policies {})", policies.join(", ")),
    }
}

/// The certificate's revocation status from the OCSP responder its AIA names, or the server's.
async fn revocation(
    fetcher: &Fetcher,
    server: &str,
    cert: &X509Certificate<'_>,
    issuer: Option<&X509Certificate<'_>>,
    now: OffsetDateTime,
) -> String {
    let Some(issuer) = issuer else {
        return "unknown: the issuing CA's certificate is not on the token, so an OCSP answer cannot be checked"
            .to_owned();
    };
    let url = ocsp_url(cert).unwrap_or_else(|| format!("{}/ocsp", server.trim_end_matches('/')));
    let mut nonce = [0u8; 16];
    if aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut nonce).is_err() {
        return "unknown: no randomness for the OCSP nonce".to_owned();
    }
    let key_bits = issuer.public_key().subject_public_key.data.as_ref();
    let (request, nonce_value) =
        match encode_request(issuer.subject().as_raw(), key_bits, cert.raw_serial(), Some(&nonce[..])) {
            Ok(r) => r,
            Err(e) => return format!("unknown: {e}"),
        };
    let answer = match fetcher.post(&url, "application/ocsp-request", request).await {
        Ok(body) => body,
        Err(e) => return format!("unknown: the OCSP responder did not answer ({e})"),
    };
    match check_response(&answer, issuer, cert.raw_serial(), nonce_value.as_deref(), now) {
        Ok(Some((RevocationStatus::Good(_), _))) => format!("good (not revoked, per {url})"),
        Ok(Some((RevocationStatus::Revoked(why), _))) => format!("REVOKED: {why}"),
        Ok(Some((RevocationStatus::Unavailable(why), _))) => format!("unknown: {why}"),
        Ok(None) => format!("unknown to the OCSP responder at {url}: not issued by this server's CA"),
        Err(e) => format!("unknown: {e}"),
    }
}

/// The first OCSP responder URL in the certificate's Authority Information Access.
fn ocsp_url(cert: &X509Certificate<'_>) -> Option<String> {
    cert.extensions().iter().find_map(|extension| match extension.parsed_extension() {
        ParsedExtension::AuthorityInfoAccess(aia) => aia.iter().find_map(|d| match &d.access_location {
            GeneralName::URI(uri) if d.access_method.to_id_string() == ID_AD_OCSP => Some((*uri).to_owned()),
            _ => None,
        }),
        _ => None,
    })
}

/// A secret from its environment variable, or typed without echo.
fn secret(env: &str, prompt: &str) -> Result<String, Error> {
    match std::env::var(env) {
        Ok(v) => Ok(v),
        Err(_) => Ok(rpassword::prompt_password(prompt)?),
    }
}

/// The new PIN from the environment, or typed twice.
fn new_pin(token: &SubscriberToken) -> Result<String, Error> {
    if let Ok(pin) = std::env::var(NEW_PIN_ENV) {
        return Ok(pin);
    }
    let (min, max) = token.pin_length();
    let first = rpassword::prompt_password(format!("New PIN ({min} to {max} characters): "))?;
    if rpassword::prompt_password("Type the new PIN again: ")? != first {
        return Err("the two PINs differ; nothing was changed on the token".into());
    }
    Ok(first)
}
