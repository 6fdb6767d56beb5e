//! The set of AWS accounts allowed to enrol, shared between the enrolment
//! server and whatever keeps it current (the aggregator's AWS Organizations
//! refresh replaces it while the server runs).

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use crate::error::IdentityError;
use crate::identity::check_account_id;

/// Accounts allowed to enrol: 12-digit ids, cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct AllowedAccounts {
    inner: Arc<RwLock<BTreeSet<String>>>,
}

impl AllowedAccounts {
    /// A set holding `accounts`, each checked to be a 12-digit id.
    pub fn new(accounts: impl IntoIterator<Item = String>) -> Result<Self, IdentityError> {
        let set = Self::default();
        set.replace(accounts)?;
        Ok(set)
    }

    /// Replaces the whole set; on a bad id the set is left unchanged.
    pub fn replace(&self, accounts: impl IntoIterator<Item = String>) -> Result<(), IdentityError> {
        let fresh = accounts
            .into_iter()
            .map(|a| check_account_id(&a).map(|()| a))
            .collect::<Result<BTreeSet<String>, _>>()?;
        *self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// True when `account_id` may enrol.
    pub fn contains(&self, account_id: &str) -> bool {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(account_id)
    }

    /// Number of accounts in the set.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// True when no account may enrol.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_swaps_the_set_for_every_clone() {
        let set = AllowedAccounts::new(["111111111111".to_owned()]).unwrap();
        let seen_by_server = set.clone();
        assert!(seen_by_server.contains("111111111111"));
        set.replace(["222222222222".to_owned(), "333333333333".to_owned()]).unwrap();
        assert!(!seen_by_server.contains("111111111111"));
        assert!(seen_by_server.contains("333333333333"));
        assert_eq!(seen_by_server.len(), 2);
    }

    #[test]
    fn a_bad_id_is_refused_and_leaves_the_set_unchanged() {
        let set = AllowedAccounts::new(["111111111111".to_owned()]).unwrap();
        let err = set.replace(["222222222222".to_owned(), "12345".to_owned()]).unwrap_err();
        assert!(err.to_string().contains("12345"), "{err}");
        assert!(set.contains("111111111111"));
        assert_eq!(set.len(), 1);
    }
}
