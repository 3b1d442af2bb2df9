//! The enrollment wizard: step 3, certificate type and validity.

use super::*;

/// A type the applicant may buy: (type id, name, [(years, price)]).
pub(super) type PricedType = (String, String, Vec<(u8, String)>);

/// A type the program's agencies do not accept, with why: (type name, reasons).
pub(super) type OutsideType = (String, String);

#[derive(Template)]
#[template(path = "apply/certificate.html")]
pub(super) struct CertificatePage {
    f: Frame,
    message: String,
    allowed: Vec<PricedType>,
    excluded: Vec<Exclusion>,
    cert_type: String,
    years: String,
    /// The program, when some offered types are ones it does not accept.
    program_name: String,
    /// Offered types the program does not accept.
    outside: Vec<OutsideType>,
    /// "I will not use this certificate for <program>" is ticked.
    outside_program: bool,
}

pub(super) async fn certificate_page(State(s): State<AppState>, session: Session) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(2) {
        return r;
    }
    let form = CertificateForm {
        cert_type: draft.cert_type.clone(),
        years: draft.years.clone(),
        outside_program: if draft.outside_program { "yes".into() } else { String::new() },
    };
    certificate_view(&s, &session, &draft, &form, Errors::new())
}

/// Why the program's agencies do not accept `cert_type`, in one sentence; empty when they do.
pub(super) fn program_objection(s: &AppState, draft: &Draft, cert_type: &str) -> String {
    let Ok(program) = s.agencies.program(&draft.program) else { return String::new() };
    let reasons: Vec<String> =
        s.agencies.program_objections(&program, cert_type).into_iter().map(|o| o.reason).collect();
    reasons.join("; ")
}

pub(super) fn certificate_view(
    s: &AppState,
    session: &Session,
    draft: &Draft,
    form: &CertificateForm,
    errors: Errors,
) -> Response {
    let ids: Vec<&str> = draft.agencies.iter().map(String::as_str).collect();
    let selection = match s.agencies.select(&ids) {
        Ok(sel) => sel,
        Err(e) => return PageError::BadRequest(e.to_string()).into_response(),
    };
    let priced = |t: &OfferedType| {
        let options = (1..=3u8).filter_map(|y| s.prices.price(&t.id, y).map(|p| (y, p.to_string()))).collect();
        (t.id.clone(), t.name.clone(), options)
    };
    let outside: Vec<OutsideType> = selection
        .allowed
        .iter()
        .map(|t| (t.name.clone(), program_objection(s, draft, &t.id)))
        .filter(|(_, why)| !why.is_empty())
        .collect();
    let program_name = match s.agencies.program(&draft.program) {
        Ok(p) if !outside.is_empty() => s.agencies.program_name(&p),
        _ => String::new(),
    };
    let failed = !errors.is_empty();
    let page = CertificatePage {
        f: Frame::new(session, 2, errors),
        message: selection.message(),
        allowed: selection.allowed.iter().map(priced).collect(),
        excluded: selection.excluded,
        cert_type: form.cert_type.clone(),
        years: form.years.clone(),
        program_name,
        outside,
        outside_program: form.outside_program == "yes",
    };
    if failed { invalid(&page) } else { render(&page) }
}

#[derive(Deserialize)]
pub(super) struct CertificateForm {
    #[serde(default)]
    cert_type: String,
    #[serde(default)]
    years: String,
    #[serde(default)]
    outside_program: String,
}

pub(super) async fn certificate_post(
    State(s): State<AppState>,
    mut session: Session,
    Form(form): Form<CertificateForm>,
) -> Response {
    let mut draft: Draft = session.data();
    if let Some(r) = draft.guard(2) {
        return r;
    }
    let ids: Vec<&str> = draft.agencies.iter().map(String::as_str).collect();
    let selection = s.agencies.select(&ids).ok();
    let offered = selection.as_ref().and_then(|sel| sel.allowed.iter().find(|t| t.id == form.cert_type));
    let outside_program = form.outside_program == "yes";
    // Type and validity are checked apart, so that both are flagged at once.
    let mut errors = Errors::new();
    match offered {
        None if form.cert_type.is_empty() => {
            errors.insert("cert_type", "Choose a certificate type.".into());
        }
        None => {
            errors.insert("cert_type", "Choose one of the certificate types your agencies accept.".into());
        }
        Some(t) => {
            let objection = program_objection(&s, &draft, &t.id);
            if !objection.is_empty() && !outside_program {
                errors.insert(
                    "outside_program",
                    format!(
                        "{objection}. Choose another type, or tick the box to say you will not use this \
                         certificate for that."
                    ),
                );
            }
        }
    }
    let years = form.years.parse::<u8>().ok().filter(|y| (1..=3).contains(y));
    match (years, offered) {
        (None, _) => {
            errors.insert("years", "Choose how many years the certificate is valid: 1, 2 or 3.".into());
        }
        (Some(y), Some(t)) if CertificateChoice::new(&s.catalog, &s.prices, &t.id, y).is_err() => {
            errors
                .insert("years", format!("{} is not sold for {y} years. Choose a period that shows a price.", t.name));
        }
        _ => {}
    }
    if !errors.is_empty() {
        return certificate_view(&s, &session, &draft, &form, errors);
    }
    draft.cert_type = form.cert_type;
    draft.years = form.years;
    draft.outside_program = outside_program;
    if let Err(e) = session.save_data(&draft).await {
        return e.into_response();
    }
    next(2)
}
