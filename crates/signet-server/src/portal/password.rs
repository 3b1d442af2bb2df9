//! The enrollment wizard: step 6, account password.

use super::*;

#[derive(Template)]
#[template(path = "apply/account.html")]
pub(super) struct AccountPage {
    f: Frame,
    email: String,
    min_length: usize,
}

pub(super) async fn account_page(session: Session) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(5) {
        return r;
    }
    render(&AccountPage {
        f: Frame::new(&session, 5, Errors::new()),
        email: draft.personal.email,
        min_length: signet_ra::application::MIN_PASSWORD_LENGTH,
    })
}

#[derive(Deserialize)]
pub(super) struct AccountForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

pub(super) async fn account_post(
    State(s): State<AppState>,
    mut session: Session,
    Form(form): Form<AccountForm>,
) -> Response {
    let mut draft: Draft = session.data();
    if let Some(r) = draft.guard(5) {
        return r;
    }
    let email = match Email::new(draft.personal.email.trim()) {
        Ok(e) => e,
        Err(_) => return Redirect::to(STEPS[4].0).into_response(),
    };
    let mut errors = Errors::new();
    let checked = NewPassword::new(&form.password, &email);
    match &checked {
        Err(weak) => {
            let reasons: Vec<String> = weak.0.iter().map(ToString::to_string).collect();
            errors.insert("password", format!("Choose a stronger password: {}.", reasons.join("; ")));
        }
        Ok(_) if form.password != form.confirm => {
            errors.insert("confirm", "The two passwords differ.".into());
        }
        Ok(_) => {}
    }
    let password = match checked {
        Ok(p) if errors.is_empty() => p,
        _ => {
            // Passwords are never sent back into the page.
            let page = AccountPage {
                f: Frame::new(&session, 5, errors),
                email: draft.personal.email,
                min_length: signet_ra::application::MIN_PASSWORD_LENGTH,
            };
            return invalid(&page);
        }
    };
    match s.hashing.run(move |memory| PasswordHash::new_in(&password, memory)).await {
        Ok(Ok(hash)) => draft.password_phc = hash.as_phc().to_owned(),
        Ok(Err(e)) => return PageError::Internal(e.to_string()).into_response(),
        Err(busy) => return PageError::from(busy).into_response(),
    }
    if let Err(e) = session.save_data(&draft).await {
        return e.into_response();
    }
    next(5)
}
