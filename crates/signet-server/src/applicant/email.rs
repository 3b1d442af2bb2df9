//! The applicant's own pages: email verification.

use super::*;

#[derive(Template)]
#[template(path = "verify.html")]
pub(super) struct VerifyPage {
    csrf: String,
    application: String,
    token: String,
    message: String,
    done: bool,
}

#[derive(Deserialize)]
pub(super) struct VerifyParams {
    #[serde(default)]
    application: String,
    #[serde(default)]
    token: String,
}

/// The emailed link opens a page with a button rather than verifying on GET: mail scanners
/// that prefetch links must not confirm an address nobody read.
pub(super) async fn verify_page(session: Session, Query(p): Query<VerifyParams>) -> Response {
    render(&VerifyPage {
        csrf: session.csrf().to_owned(),
        application: p.application,
        token: p.token,
        message: String::new(),
        done: false,
    })
}

pub(super) async fn verify_post(State(s): State<AppState>, session: Session, Form(p): Form<VerifyParams>) -> Response {
    let refused = |message: String| {
        let mut r = render(&VerifyPage {
            csrf: session.csrf().to_owned(),
            application: p.application.clone(),
            token: p.token.clone(),
            message,
            done: false,
        });
        *r.status_mut() = axum::http::StatusCode::BAD_REQUEST;
        r
    };
    let (Ok(id), Ok(token)) = (ApplicationId::new(p.application.trim()), VerificationToken::new(p.token.trim())) else {
        return refused("This link is damaged. Copy the whole link from the email into the address bar.".into());
    };
    match s.command(&id, &Actor::Applicant, Command::VerifyEmail(token)).await {
        Ok(_) => render(&VerifyPage {
            csrf: session.csrf().to_owned(),
            application: p.application.clone(),
            token: String::new(),
            message: "Your email address is confirmed. Next: print, notarize and mail your forms.".into(),
            done: true,
        }),
        Err(CommandFailure::NotFound) | Err(CommandFailure::Refused(_)) => refused(
            "This link is not valid any more: it was used already, the application has expired, or it belongs \
             to another application. Sign in to see where your application stands."
                .into(),
        ),
        Err(CommandFailure::Changed) => refused("The application changed meanwhile; open the link again.".into()),
        Err(CommandFailure::Store(e)) => PageError::from(e).into_response(),
    }
}
