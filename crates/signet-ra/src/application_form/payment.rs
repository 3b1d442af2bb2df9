//! How the applicant pays: by invoice, against a purchase order, or by card through a
//! [`PaymentProcessor`] whose authorization is all that is kept.

use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::ids::ApplicationId;
use crate::input::{InputError, string_display, string_serde};
use crate::prices::Cents;

/// A purchase-order number, as the applicant's organization issued it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PoNumber(String);

impl PoNumber {
    /// Checks a PO number: 1–30 letters, digits, `-`, `/`, `.`.
    pub fn new(s: &str) -> Result<Self, InputError> {
        let t = s.trim();
        let ok = !t.is_empty()
            && t.len() <= 30
            && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '.'));
        if ok { Ok(Self(t.to_owned())) } else { Err(InputError::PoNumber(s.to_owned())) }
    }
    /// The number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_serde!(PoNumber);
string_display!(PoNumber);

/// How the applicant pays. Invoice and purchase order are handled here; cards go through a
/// [`PaymentProcessor`] and only its authorization is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Payment {
    /// Invoice the organization.
    Invoice,
    /// Invoice against a purchase order.
    PurchaseOrder {
        /// The PO number.
        po: PoNumber,
    },
    /// A card payment the processor authorized.
    Card {
        /// The authorization.
        authorization: CardAuthorization,
    },
}

impl Payment {
    /// The method's stored name.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Invoice => "invoice",
            Self::PurchaseOrder { .. } => "purchase-order",
            Self::Card { .. } => "card",
        }
    }
}

/// A card number: 13–19 digits with a valid Luhn check digit. Never stored or logged: Debug
/// shows only the last four digits.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    /// Checks a number as typed (spaces and dashes ignored).
    pub fn new(s: &str) -> Result<Self, InputError> {
        let digits: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !(13..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InputError::CardNumber);
        }
        let sum: u32 = digits
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0');
                if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
            })
            .sum();
        if !sum.is_multiple_of(10) {
            return Err(InputError::CardNumber);
        }
        Ok(Self(digits))
    }
    /// The last four digits, for receipts.
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
    /// The full number, for the processor only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(****{})", self.last4())
    }
}

/// A processor's approval of a charge: what is kept instead of the card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardAuthorization {
    /// The processor's authorization id.
    pub id: String,
    /// The card's last four digits.
    pub last4: String,
    /// The amount authorized.
    pub amount: Cents,
}

/// Why a card was not charged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// The issuer declined; the applicant may try another card or pay by invoice.
    #[error("the card was declined")]
    Declined,
    /// The processor could not be reached; details are for the log.
    #[error("the card processor is unavailable: {0}")]
    Unavailable(String),
}

/// A card processor. Signet has no processor contract yet; production wiring must supply one.
pub trait PaymentProcessor: Send + Sync {
    /// Authorizes `amount` on `card` for application `reference`.
    fn authorize(
        &self,
        card: &CardNumber,
        amount: Cents,
        reference: &ApplicationId,
    ) -> impl Future<Output = Result<CardAuthorization, PaymentError>> + Send;
}

/// A TEST DOUBLE standing in for a card processor, for tests and demo deployments only: it
/// approves every valid number except [`TestCardProcessor::DECLINED_CARD`] and moves no money.
#[derive(Debug, Default, Clone, Copy)]
pub struct TestCardProcessor;

impl TestCardProcessor {
    /// The number this double always declines (a Luhn-valid test number).
    pub const DECLINED_CARD: &'static str = "4000000000000002";
}

impl PaymentProcessor for TestCardProcessor {
    fn authorize(
        &self,
        card: &CardNumber,
        amount: Cents,
        reference: &ApplicationId,
    ) -> impl Future<Output = Result<CardAuthorization, PaymentError>> + Send {
        let result = if card.expose() == Self::DECLINED_CARD {
            Err(PaymentError::Declined)
        } else {
            Ok(CardAuthorization { id: format!("test-{reference}"), last4: card.last4().to_owned(), amount })
        };
        std::future::ready(result)
    }
}
#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use serde_json::json;

    use super::*;

    /// Drives a (ready) future to completion without a runtime.
    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("test futures are ready immediately"),
        }
    }

    #[test]
    fn payment_by_po_and_the_test_card_double() {
        assert_eq!(PoNumber::new(" PO-2025/0042 ").unwrap().as_str(), "PO-2025/0042");
        assert!(PoNumber::new("").is_err() && PoNumber::new("PO 42; drop").is_err());
        assert!(CardNumber::new("4242 4242 4242 4241").is_err(), "bad check digit");
        let id = ApplicationId::generate();
        let ok =
            block_on(TestCardProcessor.authorize(&CardNumber::new("4242-4242-4242-4242").unwrap(), Cents(100), &id));
        assert_eq!(ok.unwrap().last4, "4242");
        let declined = CardNumber::new(TestCardProcessor::DECLINED_CARD).unwrap();
        assert_eq!(block_on(TestCardProcessor.authorize(&declined, Cents(100), &id)), Err(PaymentError::Declined));
        let json = serde_json::to_value(Payment::PurchaseOrder { po: PoNumber::new("PO-1").unwrap() }).unwrap();
        assert_eq!(json, json!({ "method": "purchase-order", "po": "PO-1" }));
    }

    #[test]
    fn card_numbers_debug_print_only_the_last_four() {
        assert_eq!(format!("{:?}", CardNumber::new("4242 4242 4242 4242").unwrap()), "CardNumber(****4242)");
    }
}
