//! Orders (RFC 8555 §7.4): names checked against the account's domains, one authorization per
//! name, then ready, processing and valid or invalid. Pending and ready are derived from the
//! authorizations, never stored.

use std::collections::BTreeSet;

use serde_json::json;
use signet_pki::Serial;
use time::OffsetDateTime;

use super::{
    Account, AccountId, AcmeInputError, AcmeProblem, Authorization, AuthorizationId, AuthorizationStatus, Challenge,
    ChallengeId, ChallengeKind, ChallengeStatus, ChallengeToken, DomainSuffix, Identifier, MAX_IDENTIFIERS,
    ORDER_LIFETIME, OrderId, ProblemKind,
};
use crate::audit::{AuditAction, AuditEvent};

/// How far an order got, as stored; whether it is pending or ready follows from its
/// authorizations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderProgress {
    /// Waiting for its authorizations (pending, or ready once all are valid).
    Authorizing,
    /// Finalize was accepted; the certificate is being issued.
    Processing,
    /// Issued.
    Valid {
        /// The certificate's serial.
        certificate: Serial,
    },
    /// Issuance failed.
    Invalid {
        /// Why.
        error: AcmeProblem,
    },
}

impl OrderProgress {
    /// The stored name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Authorizing => "authorizing",
            Self::Processing => "processing",
            Self::Valid { .. } => "valid",
            Self::Invalid { .. } => "invalid",
        }
    }
}

/// An order's status (RFC 8555 §7.1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderStatus {
    /// Some authorization is pending.
    Pending,
    /// All authorizations are valid: finalize may be sent.
    Ready,
    /// Issuing.
    Processing,
    /// Issued.
    Valid {
        /// The certificate's serial.
        certificate: Serial,
    },
    /// An authorization failed or expired, or issuance failed.
    Invalid {
        /// Why, when known.
        error: Option<AcmeProblem>,
    },
}

impl OrderStatus {
    /// The RFC name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Processing => "processing",
            Self::Valid { .. } => "valid",
            Self::Invalid { .. } => "invalid",
        }
    }
}

/// Why an order could not be created or finalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// No identifiers, or too many.
    #[error("an order names 1 to {MAX_IDENTIFIERS} DNS names")]
    IdentifierCount,
    /// An identifier was refused.
    #[error(transparent)]
    Identifier(#[from] AcmeInputError),
    /// A name outside the domains registered for the account's organization.
    #[error("{name} is not under the domains registered for {organization} ({domains})")]
    OutsideScope {
        /// The name.
        name: String,
        /// The organization.
        organization: String,
        /// Its domains, comma-separated.
        domains: String,
    },
    /// Finalize before every authorization was valid, or twice.
    #[error("the order is {0}, not ready")]
    NotReady(&'static str),
    /// The CSR does not request exactly the order's names.
    #[error("the CSR requests {requested}, but the order is for {ordered}")]
    CsrNames {
        /// The CSR's names.
        requested: String,
        /// The order's names.
        ordered: String,
    },
    /// A transition was asked of an order in another state (a bug or a concurrent change).
    #[error("the order is {0}")]
    State(&'static str),
}

impl From<OrderError> for AcmeProblem {
    fn from(e: OrderError) -> Self {
        let kind = match &e {
            OrderError::Identifier(i) => return i.clone().into(),
            OrderError::OutsideScope { .. } => ProblemKind::RejectedIdentifier,
            OrderError::NotReady(_) => ProblemKind::OrderNotReady,
            OrderError::CsrNames { .. } => ProblemKind::BadCsr,
            _ => ProblemKind::Malformed,
        };
        Self::new(kind, e.to_string())
    }
}

/// A certificate order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Id.
    pub id: OrderId,
    /// Owner.
    pub account: AccountId,
    /// The names, sorted, without duplicates.
    pub identifiers: Vec<Identifier>,
    /// Its authorizations (one per name, same order) and their stored statuses.
    pub authorizations: Vec<(AuthorizationId, AuthorizationStatus)>,
    /// Stored progress.
    pub progress: OrderProgress,
    /// Expiry (of the order and its authorizations).
    pub expires: OffsetDateTime,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// A new order with its new authorizations, to be stored together.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The order.
    pub order: Order,
    /// One pending authorization per name, each with an http-01 and a dns-01 challenge.
    pub authorizations: Vec<Authorization>,
}

impl NewOrder {
    /// Checks the requested `(type, value)` identifiers against the account's scope and builds
    /// the order (RFC 8555 §7.4).
    pub fn new<'a>(
        account: &Account,
        requested: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: OffsetDateTime,
    ) -> Result<Self, OrderError> {
        let mut names = BTreeSet::new();
        for (kind, value) in requested {
            let id = Identifier::parse(kind, value)?;
            if !account.scope.covers(id.name()) {
                return Err(OrderError::OutsideScope {
                    name: id.name().to_string(),
                    organization: account.organization.to_string(),
                    domains: account.scope.domains().map(DomainSuffix::as_str).collect::<Vec<_>>().join(", "),
                });
            }
            names.insert(id);
        }
        if names.is_empty() || names.len() > MAX_IDENTIFIERS {
            return Err(OrderError::IdentifierCount);
        }
        let id = OrderId::generate();
        let expires = now + ORDER_LIFETIME;
        let authorizations: Vec<Authorization> = names
            .iter()
            .map(|identifier| Authorization {
                id: AuthorizationId::generate(),
                order: id.clone(),
                account: account.id.clone(),
                identifier: identifier.clone(),
                status: AuthorizationStatus::Pending,
                expires,
                challenges: [ChallengeKind::Http01, ChallengeKind::Dns01]
                    .into_iter()
                    .map(|kind| Challenge {
                        id: ChallengeId::generate(),
                        kind,
                        token: ChallengeToken::generate(),
                        status: ChallengeStatus::Pending,
                    })
                    .collect(),
            })
            .collect();
        let order = Order {
            id,
            account: account.id.clone(),
            identifiers: names.into_iter().collect(),
            authorizations: authorizations.iter().map(|a| (a.id.clone(), a.status)).collect(),
            progress: OrderProgress::Authorizing,
            expires,
            created_at: now,
        };
        Ok(Self { order, authorizations })
    }

    /// The audit event for creating it.
    pub fn created_event(&self, account: &Account) -> AuditEvent {
        let names: Vec<&str> = self.order.identifiers.iter().map(|i| i.name().as_str()).collect();
        AuditEvent::new(
            self.order.created_at,
            &account.actor(),
            AuditAction::AcmeOrderCreated,
            self.order.id.as_str(),
            json!({ "names": names }),
        )
    }
}

impl Order {
    /// The status at `now`.
    pub fn status_at(&self, now: OffsetDateTime) -> OrderStatus {
        match &self.progress {
            OrderProgress::Processing => OrderStatus::Processing,
            OrderProgress::Valid { certificate } => OrderStatus::Valid { certificate: certificate.clone() },
            OrderProgress::Invalid { error } => OrderStatus::Invalid { error: Some(error.clone()) },
            OrderProgress::Authorizing => {
                let statuses = || self.authorizations.iter().map(|(_, s)| *s);
                if statuses().any(|s| s == AuthorizationStatus::Invalid) {
                    OrderStatus::Invalid {
                        error: Some(AcmeProblem::new(ProblemKind::Unauthorized, "an authorization failed")),
                    }
                } else if statuses().all(|s| s == AuthorizationStatus::Valid) {
                    OrderStatus::Ready
                } else if now >= self.expires {
                    OrderStatus::Invalid { error: None }
                } else {
                    OrderStatus::Pending
                }
            }
        }
    }

    /// Finalize (RFC 8555 §7.4): the order must be ready and the CSR must request exactly its
    /// names. Returns the processing order and the audit event.
    pub fn finalize(
        self,
        csr_names: &BTreeSet<Identifier>,
        account: &Account,
        now: OffsetDateTime,
    ) -> Result<(Self, AuditEvent), OrderError> {
        let status = self.status_at(now);
        if status != OrderStatus::Ready {
            return Err(OrderError::NotReady(status.name()));
        }
        if !csr_names.iter().eq(self.identifiers.iter()) {
            let list = |names: &mut dyn Iterator<Item = &Identifier>| {
                names.map(|i| i.name().as_str()).collect::<Vec<_>>().join(", ")
            };
            return Err(OrderError::CsrNames {
                requested: list(&mut csr_names.iter()),
                ordered: list(&mut self.identifiers.iter()),
            });
        }
        let event =
            AuditEvent::new(now, &account.actor(), AuditAction::AcmeOrderProcessing, self.id.as_str(), json!({}));
        Ok((Self { progress: OrderProgress::Processing, ..self }, event))
    }

    /// [`Order::finalize`], as the moves its issuance makes with the CA's writes.
    pub fn finalizing(
        self,
        csr_names: &BTreeSet<Identifier>,
        account: &Account,
        now: OffsetDateTime,
    ) -> Result<Finalizing, OrderError> {
        let from = self.progress.clone();
        let (order, audit) = self.finalize(csr_names, account, now)?;
        Ok(Finalizing { accepted: OrderMove { order, from, audit }, account: account.clone() })
    }

    /// The certificate was issued: processing → valid.
    pub fn issued(
        self,
        certificate: Serial,
        account: &Account,
        now: OffsetDateTime,
    ) -> Result<(Self, AuditEvent), OrderError> {
        let details = json!({ "serial": certificate.to_hex() });
        self.conclude(OrderProgress::Valid { certificate }, AuditAction::AcmeOrderValid, details, account, now)
    }

    /// Issuance failed: processing → invalid.
    pub fn failed(
        self,
        error: AcmeProblem,
        account: &Account,
        now: OffsetDateTime,
    ) -> Result<(Self, AuditEvent), OrderError> {
        let details = json!({ "error": error.kind.name(), "detail": error.detail });
        self.conclude(OrderProgress::Invalid { error }, AuditAction::AcmeOrderInvalid, details, account, now)
    }

    /// Its issuance was abandoned: the intent it waited for was resolved as abandoned, so no
    /// certificate will come (processing → invalid).
    pub fn issuance_abandoned(self, account: &Account, now: OffsetDateTime) -> Result<OrderMove, OrderError> {
        let (order, audit) = self.failed(AcmeProblem::issuance_interrupted(), account, now)?;
        Ok(OrderMove { order, from: OrderProgress::Processing, audit })
    }

    /// Issuance ended one way or the other: only a processing order moves on to `progress`.
    fn conclude(
        self,
        progress: OrderProgress,
        action: AuditAction,
        details: serde_json::Value,
        account: &Account,
        now: OffsetDateTime,
    ) -> Result<(Self, AuditEvent), OrderError> {
        if self.progress != OrderProgress::Processing {
            return Err(OrderError::State(self.progress.name()));
        }
        let event = AuditEvent::new(now, &account.actor(), action, self.id.as_str(), details);
        Ok((Self { progress, ..self }, event))
    }
}

/// An order's change of progress, stored only over `from` (the progress it had), with its
/// audit event.
#[derive(Debug, Clone)]
pub struct OrderMove {
    /// The order as it becomes.
    pub order: Order,
    /// The progress it had.
    pub from: OrderProgress,
    /// Its audit event.
    pub audit: AuditEvent,
}

/// An order whose finalize was accepted, while its certificate is issued. Each of its moves
/// is made in the same transaction as one of the CA's writes: to processing with the intent,
/// to valid with the certificate, to invalid with the failure, so the order never says
/// otherwise than the CA's records and costs the database no transaction of its own.
#[derive(Debug, Clone)]
pub struct Finalizing {
    /// The move to processing.
    pub accepted: OrderMove,
    /// The account finalizing it.
    pub account: Account,
}

impl Finalizing {
    /// The move to valid, with the certificate's serial.
    pub fn issued(&self, certificate: Serial, now: OffsetDateTime) -> Result<OrderMove, OrderError> {
        let (order, audit) = self.accepted.order.clone().issued(certificate, &self.account, now)?;
        Ok(OrderMove { order, from: OrderProgress::Processing, audit })
    }

    /// The move to invalid, with why.
    pub fn failed(&self, error: AcmeProblem, now: OffsetDateTime) -> Result<OrderMove, OrderError> {
        let (order, audit) = self.accepted.order.clone().failed(error, &self.account, now)?;
        Ok(OrderMove { order, from: OrderProgress::Processing, audit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::Respond;
    use crate::acme::testing::{account, t0};

    #[test]
    fn orders_stay_inside_the_organization_domains() {
        let acct = account("acme.example");
        let order = NewOrder::new(
            &acct,
            [("dns", "b.acme.example"), ("dns", "a.acme.example"), ("dns", "A.acme.example")],
            t0(),
        )
        .unwrap();
        let names: Vec<&str> = order.order.identifiers.iter().map(|i| i.name().as_str()).collect();
        assert_eq!(names, ["a.acme.example", "b.acme.example"], "sorted, duplicates folded");
        assert_eq!(order.authorizations.len(), 2);
        let kinds: Vec<_> = order.authorizations[0].challenges.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [ChallengeKind::Http01, ChallengeKind::Dns01]);
        assert_ne!(order.authorizations[0].challenges[0].token, order.authorizations[0].challenges[1].token);
        assert_eq!(order.order.status_at(t0()), OrderStatus::Pending);

        let err = NewOrder::new(&acct, [("dns", "a.acme.example"), ("dns", "www.other.example")], t0()).unwrap_err();
        assert!(matches!(&err, OrderError::OutsideScope { name, .. } if name == "www.other.example"));
        assert_eq!(AcmeProblem::from(err).kind, ProblemKind::RejectedIdentifier);
        assert_eq!(NewOrder::new(&acct, [], t0()).unwrap_err(), OrderError::IdentifierCount);
        let many: Vec<String> = (0..=MAX_IDENTIFIERS).map(|i| format!("h{i}.acme.example")).collect();
        let err = NewOrder::new(&acct, many.iter().map(|n| ("dns", n.as_str())), t0()).unwrap_err();
        assert_eq!(err, OrderError::IdentifierCount);
    }

    #[test]
    fn order_lifecycle_pending_ready_processing_valid() {
        let acct = account("acme.example");
        let new = NewOrder::new(&acct, [("dns", "d.acme.example")], t0()).unwrap();
        let authz = new.authorizations[0].clone();
        let dns01 = authz.challenges[1].id.clone();
        let Respond::Validate(v) = authz.respond(&dns01, &acct.thumbprint, t0()) else { panic!("pending") };
        assert_eq!(v.kind(), ChallengeKind::Dns01);
        assert_eq!(v.key_authorization(), format!("{}.{}", v.token().as_str(), acct.thumbprint.as_str()));
        let (authz, challenge, event) = v.conclude(Ok(()), &acct, t0());
        assert_eq!(challenge, dns01);
        assert_eq!(event.action, AuditAction::AcmeAuthorizationValidated);
        assert_eq!(authz.status, AuthorizationStatus::Valid);
        assert!(matches!(authz.challenges[1].status, ChallengeStatus::Valid { .. }));
        assert_eq!(authz.challenges[0].status, ChallengeStatus::Pending);
        // Asking again changes nothing.
        assert!(matches!(authz.clone().respond(&dns01, &acct.thumbprint, t0()), Respond::Unchanged(_)));

        let mut order = new.order;
        let names: BTreeSet<Identifier> = [Identifier::parse("dns", "d.acme.example").unwrap()].into();
        assert_eq!(order.clone().finalize(&names, &acct, t0()).unwrap_err(), OrderError::NotReady("pending"));
        order.authorizations[0].1 = authz.status;
        assert_eq!(order.status_at(t0()), OrderStatus::Ready);
        let wrong: BTreeSet<Identifier> = [Identifier::parse("dns", "e.acme.example").unwrap()].into();
        assert!(matches!(order.clone().finalize(&wrong, &acct, t0()), Err(OrderError::CsrNames { .. })));
        let (processing, event) = order.finalize(&names, &acct, t0()).unwrap();
        assert_eq!(event.action, AuditAction::AcmeOrderProcessing);
        assert_eq!(processing.status_at(t0()), OrderStatus::Processing);
        assert_eq!(processing.clone().finalize(&names, &acct, t0()).unwrap_err(), OrderError::NotReady("processing"));
        let serial = Serial::random();
        let (valid, _) = processing.clone().issued(serial.clone(), &acct, t0()).unwrap();
        assert_eq!(valid.status_at(t0()), OrderStatus::Valid { certificate: serial.clone() });
        assert!(valid.issued(serial, &acct, t0()).is_err(), "valid is final");
        let (invalid, event) =
            processing.failed(AcmeProblem::new(ProblemKind::BadCsr, "duplicate key"), &acct, t0()).unwrap();
        assert_eq!(event.action, AuditAction::AcmeOrderInvalid);
        assert_eq!(invalid.status_at(t0()).name(), "invalid");
    }

    #[test]
    fn failed_or_expired_authorizations_make_the_order_invalid() {
        let acct = account("acme.example");
        let new = NewOrder::new(&acct, [("dns", "d.acme.example")], t0()).unwrap();
        let authz = new.authorizations[0].clone();
        let http01 = authz.challenges[0].id.clone();
        let Respond::Validate(v) = authz.clone().respond(&http01, &acct.thumbprint, t0()) else { panic!() };
        let (failed, _, event) = v.conclude(Err(AcmeProblem::new(ProblemKind::Connection, "refused")), &acct, t0());
        assert_eq!(event.action, AuditAction::AcmeAuthorizationInvalid);
        assert_eq!(failed.status, AuthorizationStatus::Invalid);
        let mut order = new.order.clone();
        order.authorizations[0].1 = failed.status;
        assert!(matches!(order.status_at(t0()), OrderStatus::Invalid { error: Some(_) }));

        let later = t0() + ORDER_LIFETIME;
        assert_eq!(authz.status_at(later), AuthorizationStatus::Expired);
        assert!(matches!(authz.respond(&http01, &acct.thumbprint, later), Respond::Unchanged(_)));
        assert_eq!(new.order.status_at(later), OrderStatus::Invalid { error: None });
    }
}
