//! The enrollment wizard: step 8, review and submit.

use super::*;

#[derive(Template)]
#[template(path = "apply/review.html")]
pub(super) struct ReviewPage {
    f: Frame,
    form: ApplicationForm,
    program_name: String,
    type_name: String,
    agency_names: Vec<String>,
    /// How the applicant pays, with the purchase-order number or the card's last digits.
    payment: String,
}

/// The payment as the applicant chose it, in words.
pub(super) fn payment_words(payment: &Payment) -> String {
    match payment {
        Payment::Invoice => "Invoice to your organization".into(),
        Payment::PurchaseOrder { po } => format!("Invoice against purchase order {po}"),
        Payment::Card { authorization } => {
            format!("Card ending in {}, {} authorized", authorization.last4, authorization.amount)
        }
    }
}

/// The whole draft parsed into the domain's form, or the step to send the applicant back to.
pub(super) fn parse_draft(
    s: &AppState,
    draft: &Draft,
) -> Result<(ApplicationForm, PasswordHash, ApplicationId), usize> {
    let program = s.agencies.program(&draft.program).map_err(|_| 0_usize)?;
    let residency = match draft.residency.as_str() {
        "united-states" => Residency::UnitedStates,
        "abroad" => Residency::Abroad,
        _ => return Err(0_usize),
    };
    let ids: Vec<&str> = draft.agencies.iter().map(String::as_str).collect();
    let selection = s.agencies.select(&ids).map_err(|_| 1_usize)?;
    // The partner link holds however the steps were visited: the program's agencies stay
    // unless the applicant said they will not use it, and so does its list of types.
    if !draft.program_dropped && !s.agencies.program_agencies_left_out(&program, &draft.agencies).is_empty() {
        return Err(1_usize);
    }
    if !selection.allows(&draft.cert_type)
        || (!draft.outside_program && !s.agencies.program_objections(&program, &draft.cert_type).is_empty())
    {
        return Err(2_usize);
    }
    let certificate = choice(s, draft).map_err(|_| 2_usize)?;
    let organization = OrganizationName::new(&draft.organization).map_err(|_| 3_usize)?;
    let applicant = draft.personal.parse().map_err(|_| 4_usize)?;
    let password = PasswordHash::from_phc(&draft.password_phc).map_err(|_| 5_usize)?;
    let payment = draft.payment.clone().ok_or(6_usize)?;
    let reference = ApplicationId::new(&draft.reference).map_err(|_| 6_usize)?;
    let form = ApplicationForm {
        program,
        agencies: draft.agencies.clone(),
        residency,
        certificate,
        organization,
        applicant,
        payment,
    };
    Ok((form, password, reference))
}

pub(super) async fn review_page(State(s): State<AppState>, session: Session) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(7) {
        return r;
    }
    let (form, _, _) = match parse_draft(&s, &draft) {
        Ok(parsed) => parsed,
        Err(step) => return Redirect::to(STEPS[step].0).into_response(),
    };
    render(&review_view(&s, &session, form, Errors::new()))
}

pub(super) fn review_view(s: &AppState, session: &Session, form: ApplicationForm, errors: Errors) -> ReviewPage {
    let program_name = s
        .agencies
        .programs()
        .iter()
        .find(|p| p.id == form.program.as_str())
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let type_name = s.type_name(form.certificate.cert_type());
    let agency_names = form.agencies.iter().filter_map(|id| s.agencies.agency(id)).map(|a| a.name.clone()).collect();
    let payment = payment_words(&form.payment);
    ReviewPage { f: Frame::new(session, 7, errors), form, program_name, type_name, agency_names, payment }
}

#[derive(Deserialize)]
pub(super) struct ReviewForm {
    #[serde(default)]
    agree: String,
}

pub(super) async fn review_post(
    State(s): State<AppState>,
    mut session: Session,
    Form(review): Form<ReviewForm>,
) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(7) {
        return r;
    }
    let (form, password, reference) = match parse_draft(&s, &draft) {
        Ok(parsed) => parsed,
        Err(step) => return Redirect::to(STEPS[step].0).into_response(),
    };
    if review.agree != "yes" {
        let errors = Errors::from([("agree", "Confirm that the information is true and complete.".to_owned())]);
        return invalid(&review_view(&s, &session, form, errors));
    }
    let transition = Application::submit(reference, form.clone(), s.clock.now());
    let outbox = s.notifier.outbox_for(&transition);
    let id = transition.application.id().clone();
    match s.store.create(&transition, &password, &outbox).await {
        Ok(()) => {}
        // The reference was made at the payment step, so a taken one is this same draft
        // submitted from a second tab: the first submission stands. Anything else under that
        // reference is someone else's application and must not be signed in to.
        Err(StoreError::Conflict(_)) => match s.store.load(&id).await {
            Ok(Some(existing)) if *existing.form() == form => {}
            Ok(_) => return PageError::Internal(format!("application reference {id} collided")).into_response(),
            Err(e) => return PageError::from(e).into_response(),
        },
        Err(e) => return PageError::from(e).into_response(),
    }
    tracing::info!(application = %id, "application submitted");
    register_organization(&s, &form.organization).await;
    if let Err(e) = session.become_principal(Principal::Applicant(id.as_str().to_owned())).await {
        return e.into_response();
    }
    Redirect::to(&format!("/applications/{id}?submitted=1")).into_response()
}
