//! The enrollment wizard: step 5, personal information and shipping address.

use super::*;

#[derive(Template)]
#[template(path = "apply/personal.html")]
pub(super) struct PersonalPage {
    f: Frame,
    states: Vec<(&'static str, &'static str, bool)>,
    p: PersonalFields,
    abroad: bool,
    name_max: usize,
}

impl PersonalPage {
    fn new(session: &Session, draft: &Draft, p: PersonalFields, errors: Errors) -> Self {
        Self {
            f: Frame::new(session, 4, errors),
            states: p.states(),
            p,
            abroad: draft.residency == "abroad",
            name_max: NAME_MAX,
        }
    }
}

pub(super) async fn personal_page(session: Session) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(4) {
        return r;
    }
    render(&PersonalPage::new(&session, &draft, draft.personal.clone(), Errors::new()))
}

pub(super) async fn personal_post(mut session: Session, Form(form): Form<PersonalFields>) -> Response {
    let mut draft: Draft = session.data();
    if let Some(r) = draft.guard(4) {
        return r;
    }
    if let Err(errors) = form.parse() {
        return invalid(&PersonalPage::new(&session, &draft, form, errors));
    }
    if draft.personal.email.trim() != form.email.trim() {
        // The password rules depend on the email: choose it again for the new address.
        draft.password_phc.clear();
    }
    draft.personal = form;
    if let Err(e) = session.save_data(&draft).await {
        return e.into_response();
    }
    next(4)
}
