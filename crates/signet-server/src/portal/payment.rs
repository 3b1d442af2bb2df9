//! The enrollment wizard: step 7, payment.

use super::*;

#[derive(Template)]
#[template(path = "apply/payment.html")]
pub(super) struct PaymentPage {
    f: Frame,
    po_max: usize,
    price: String,
    method: String,
    po: String,
}

pub(super) fn choice(s: &AppState, draft: &Draft) -> Result<CertificateChoice, PageError> {
    let years = draft.years.parse::<u8>().map_err(|_| PageError::BadRequest("choose the validity again".into()))?;
    CertificateChoice::new(&s.catalog, &s.prices, &draft.cert_type, years)
        .map_err(|e| PageError::BadRequest(e.to_string()))
}

pub(super) async fn payment_page(State(s): State<AppState>, session: Session) -> Response {
    let draft: Draft = session.data();
    if let Some(r) = draft.guard(6) {
        return r;
    }
    let price = match choice(&s, &draft) {
        Ok(c) => c.price().to_string(),
        Err(e) => return e.into_response(),
    };
    let (method, po) = match &draft.payment {
        Some(Payment::PurchaseOrder { po }) => ("purchase-order".to_owned(), po.as_str().to_owned()),
        Some(p) => (p.method().to_owned(), String::new()),
        None => (String::new(), String::new()),
    };
    render(&PaymentPage { f: Frame::new(&session, 6, Errors::new()), po_max: PO_MAX, price, method, po })
}

#[derive(Deserialize)]
pub(super) struct PaymentForm {
    #[serde(default)]
    method: String,
    #[serde(default)]
    po: String,
    #[serde(default)]
    card: String,
}

pub(super) async fn payment_post(
    State(s): State<AppState>,
    mut session: Session,
    Form(form): Form<PaymentForm>,
) -> Response {
    let mut draft: Draft = session.data();
    if let Some(r) = draft.guard(6) {
        return r;
    }
    let price = match choice(&s, &draft) {
        Ok(c) => c.price(),
        Err(e) => return e.into_response(),
    };
    if draft.reference.is_empty() {
        draft.reference = ApplicationId::generate().as_str().to_owned();
    }
    let reference = match ApplicationId::new(&draft.reference) {
        Ok(r) => r,
        Err(e) => return PageError::Internal(e.to_string()).into_response(),
    };
    let payment = match form.method.as_str() {
        "invoice" => Ok(Payment::Invoice),
        "purchase-order" => {
            PoNumber::new(&form.po).map(|po| Payment::PurchaseOrder { po }).map_err(|_| ("po", po_message(&form.po)))
        }
        "card" => match CardNumber::new(&form.card) {
            // The card processor is a TEST DOUBLE until a processor contract exists.
            Ok(card) => TestCardProcessor
                .authorize(&card, price, &reference)
                .await
                .map(|authorization| Payment::Card { authorization })
                .map_err(|e| match e {
                    PaymentError::Declined => {
                        ("card", "The card was declined. Try another card, or choose invoice.".to_owned())
                    }
                    // The processor's details are for the log, not the applicant.
                    other => {
                        tracing::error!(error = %other, "card processor");
                        ("card", "Card payments are unavailable right now. Try later, or choose invoice.".to_owned())
                    }
                }),
            Err(_) => {
                Err(("card", "Check the card number: it is the 13 to 19 digits on the front of the card.".to_owned()))
            }
        },
        _ => Err(("method", "Choose how to pay.".to_owned())),
    };
    match payment {
        Ok(p) => {
            draft.payment = Some(p);
            if let Err(e) = session.save_data(&draft).await {
                return e.into_response();
            }
            next(6)
        }
        Err((field, message)) => invalid(&PaymentPage {
            f: Frame::new(&session, 6, Errors::from([(field, message)])),
            po_max: PO_MAX,
            price: price.to_string(),
            method: form.method,
            // The card number is never echoed back.
            po: form.po,
        }),
    }
}
