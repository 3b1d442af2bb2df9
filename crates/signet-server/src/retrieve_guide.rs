//! `/retrieve`: how an applicant gets the certificates onto the token, on their own computer.
//! The "certificates ready" mail and the status page link here with the application reference,
//! so the page can show the exact commands with this server's address and that reference
//! filled in, the driver (PKCS#11 module) path for the common tokens on each system, the
//! deadline when the applicant is signed in, and what to do when a step fails.
//! `/retrieve/signet` offers the `signet` client for download when the server was given one.

use std::path::PathBuf;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use signet_ra::application::{ApplicationId, ApplicationStore};
use signet_ra::vetting;

use crate::error::PageError;
use crate::state::AppState;
use crate::web::{Principal, Session, render};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/retrieve", get(guide)).route("/retrieve/signet", get(download))
}

/// A computer's system, as the page tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    Linux,
    MacOs,
    Windows,
}

impl System {
    const ALL: [Self; 3] = [Self::Linux, Self::MacOs, Self::Windows];

    fn slug(self) -> &'static str {
        match self {
            Self::Linux => "linux",
            Self::MacOs => "macos",
            Self::Windows => "windows",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Linux => "Linux",
            Self::MacOs => "macOS",
            Self::Windows => "Windows",
        }
    }

    /// The system named in the link, else the one the browser says it runs on.
    fn of(asked: Option<&str>, headers: &HeaderMap) -> Self {
        if let Some(s) = Self::ALL.into_iter().find(|s| Some(s.slug()) == asked) {
            return s;
        }
        let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if agent.contains("Windows") {
            Self::Windows
        } else if agent.contains("Mac OS X") || agent.contains("Macintosh") {
            Self::MacOs
        } else {
            Self::Linux
        }
    }

    /// Where each token maker's PKCS#11 module is installed: (token, path).
    fn modules(self) -> [(&'static str, &'static str); 3] {
        match self {
            Self::Linux => [
                ("Most smart cards and USB tokens (OpenSC)", "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"),
                ("SafeNet eToken (SafeNet Authentication Client)", "/usr/lib/libeTPkcs11.so"),
                ("YubiKey (Yubico PIV Tool)", "/usr/lib/x86_64-linux-gnu/libykcs11.so"),
            ],
            Self::MacOs => [
                ("Most smart cards and USB tokens (OpenSC)", "/Library/OpenSC/lib/opensc-pkcs11.so"),
                ("SafeNet eToken (SafeNet Authentication Client)", "/usr/local/lib/libeTPkcs11.dylib"),
                ("YubiKey (Yubico PIV Tool)", "/usr/local/lib/libykcs11.dylib"),
            ],
            Self::Windows => [
                (
                    "Most smart cards and USB tokens (OpenSC)",
                    r"C:\Program Files\OpenSC Project\OpenSC\pkcs11\opensc-pkcs11.dll",
                ),
                ("SafeNet eToken (SafeNet Authentication Client)", r"C:\Windows\System32\eTPKCS11.dll"),
                ("YubiKey (Yubico PIV Tool)", r"C:\Program Files\Yubico\Yubico PIV Tool\bin\libykcs11.dll"),
            ],
        }
    }

    /// Where the drivers come from, in a sentence.
    fn driver_help(self) -> &'static str {
        match self {
            Self::Linux => {
                "Install OpenSC from your distribution (Debian and Ubuntu: sudo apt install opensc; Fedora: sudo dnf \
                 install opensc; on Fedora the path is /usr/lib64/opensc-pkcs11.so), or the driver your token's \
                 maker supplies."
            }
            Self::MacOs => {
                "Install OpenSC from github.com/OpenSC/OpenSC/releases or with Homebrew (brew install opensc; on \
                 Apple silicon Homebrew's paths start with /opt/homebrew/lib), or the driver your token's maker \
                 supplies."
            }
            Self::Windows => {
                "Install OpenSC from github.com/OpenSC/OpenSC/releases (the 64-bit .msi), or the driver your \
                 token's maker supplies."
            }
        }
    }

    fn program(self) -> &'static str {
        if self == Self::Windows { "signet.exe" } else { "signet" }
    }
}

#[derive(Deserialize)]
struct GuideQuery {
    application: Option<String>,
    os: Option<String>,
}

#[derive(Template)]
#[template(path = "retrieve.html")]
struct GuidePage {
    system: &'static str,
    /// (slug, name, current) for the links to the other systems.
    systems: Vec<(&'static str, &'static str, bool)>,
    reference: String,
    /// The reference for the commands: the real one, or a placeholder to replace.
    reference_or_placeholder: String,
    base_url: String,
    program: &'static str,
    modules: Vec<(&'static str, &'static str)>,
    driver_help: &'static str,
    /// The first module's path, used in the commands.
    module: &'static str,
    /// Whether this server offers the client for this system.
    download: bool,
    /// The retrieval deadline in words; empty unless the applicant is signed in.
    deadline: String,
}

async fn guide(
    State(s): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Query(q): Query<GuideQuery>,
) -> Response {
    let system = System::of(q.os.as_deref(), &headers);
    let reference = q.application.as_deref().and_then(|r| ApplicationId::new(r.trim()).ok());
    let deadline = match &reference {
        Some(id) if session.principal() == Principal::Applicant(id.as_str().to_owned()) => match s.store.load(id).await
        {
            Ok(Some(app)) => vetting::deadline(&app, &s.deadlines)
                .map(|d| format!("Retrieve your certificates by {}.", d.last_day))
                .unwrap_or_default(),
            Ok(None) => String::new(),
            Err(e) => return PageError::from(e).into_response(),
        },
        _ => String::new(),
    };
    let reference = reference.map(|r| r.as_str().to_owned()).unwrap_or_default();
    let modules = system.modules().to_vec();
    render(&GuidePage {
        system: system.name(),
        systems: System::ALL.into_iter().map(|o| (o.slug(), o.name(), o == system)).collect(),
        reference_or_placeholder: if reference.is_empty() {
            "<your application reference>".into()
        } else {
            reference.clone()
        },
        reference,
        base_url: s.base_url.clone(),
        program: system.program(),
        module: modules[0].1,
        modules,
        driver_help: system.driver_help(),
        download: s.client_download.is_some() && system == System::Linux && cfg!(target_os = "linux"),
        deadline,
    })
}

/// The server's own `signet` build, streamed from disk.
async fn download(State(s): State<AppState>) -> Response {
    let Some(path) = s.client_download.clone() else { return PageError::NotFound.into_response() };
    match file_body(path).await {
        Ok((length, body)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"signet\"".to_owned()),
                (header::CONTENT_LENGTH, length.to_string()),
            ],
            body,
        )
            .into_response(),
        Err(e) => PageError::Internal(format!("client download: {e}")).into_response(),
    }
}

/// A file as a body read in 64 KiB pieces, never whole into memory.
async fn file_body(path: PathBuf) -> std::io::Result<(u64, Body)> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(&path).await?;
    let length = file.metadata().await?.len();
    let pieces = futures_util::stream::unfold(file, |mut file| async move {
        let mut piece = vec![0u8; 64 * 1024];
        match file.read(&mut piece).await {
            Ok(0) => None,
            Ok(n) => {
                piece.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(piece)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Ok((length, Body::from_stream(pieces)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_is_the_one_asked_for_else_the_browsers() {
        let agent = |a: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::USER_AGENT, a.parse().unwrap());
            h
        };
        let windows = agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36");
        let mac = agent("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15");
        assert_eq!(System::of(None, &windows), System::Windows);
        assert_eq!(System::of(None, &mac), System::MacOs);
        assert_eq!(System::of(None, &HeaderMap::new()), System::Linux);
        assert_eq!(System::of(Some("macos"), &windows), System::MacOs);
        assert_eq!(System::of(Some("beos"), &windows), System::Windows, "an unknown name falls back");
    }
}
