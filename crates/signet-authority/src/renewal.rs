//! Which of a subscriber's certificates replaced which: a renewed certificate is not renewed
//! again, and its expiry is not worth a reminder.

use signet_ra::issuance::StoredStatus;
use signet_store::AccountCertificate;

/// The certificate that replaces `current` (one of `all`, the account's certificates, oldest
/// first): the latest valid one of the same profile issued after it.
pub fn replacement<'a>(current: &AccountCertificate, all: &'a [AccountCertificate]) -> Option<&'a AccountCertificate> {
    let later = all.iter().skip_while(|c| c.serial != current.serial).skip(1);
    later.filter(|c| c.profile == current.profile && c.status == StoredStatus::Good).last()
}
