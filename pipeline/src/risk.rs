//! Balances and holds per account and asset, in integer units of each asset's
//! precision (see [`crate::spec`]).
//!
//! Every mutation here is a move between two buckets or an explicit
//! deposit/withdrawal, so per-asset totals are conserved by construction; the
//! engine checks affordability before it mutates anything.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::types::ids::AccountId;

/// A fast, deterministic hasher for integer ids (Fibonacci hashing). Ids are
/// assigned by the engine or the operator, not chosen adversarially per request
/// bucket, and deterministic iteration keeps replays identical.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
}

/// A `HashMap` keyed by integer ids.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// One account's balance in one asset, in units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Units {
    /// Free to spend.
    pub available: i128,
    /// Reserved by open orders.
    pub held: i128,
}

/// All balances.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    /// Per account, one entry per asset of the engine's asset table.
    accounts: IdMap<AccountId, Vec<Units>>,
    /// How many assets exist.
    assets: usize,
    /// Per asset: deposits − withdrawals, i.e. the sum of every balance.
    supply: Vec<i128>,
}

impl Ledger {
    /// An empty ledger over `assets` assets.
    pub fn new(assets: usize) -> Ledger {
        Ledger {
            accounts: IdMap::default(),
            assets,
            supply: vec![0; assets],
        }
    }

    /// The balance of `account` in asset `asset`.
    pub fn get(&self, account: AccountId, asset: usize) -> Units {
        self.accounts
            .get(&account)
            .map(|v| v[asset])
            .unwrap_or_default()
    }

    fn entry(&mut self, account: AccountId, asset: usize) -> &mut Units {
        let n = self.assets;
        &mut self
            .accounts
            .entry(account)
            .or_insert_with(|| vec![Units::default(); n])[asset]
    }

    /// The sum of all balances in `asset`.
    pub fn supply(&self, asset: usize) -> i128 {
        self.supply[asset]
    }

    /// Credits available funds from outside the exchange.
    pub fn deposit(&mut self, account: AccountId, asset: usize, amount: i128) {
        self.entry(account, asset).available += amount;
        self.supply[asset] += amount;
    }

    /// Debits available funds to outside the exchange (checked by the caller).
    pub fn withdraw(&mut self, account: AccountId, asset: usize, amount: i128) {
        self.entry(account, asset).available -= amount;
        self.supply[asset] -= amount;
    }

    /// Moves `amount` from available to held (a negative amount releases).
    pub fn hold(&mut self, account: AccountId, asset: usize, amount: i128) {
        let u = self.entry(account, asset);
        u.available -= amount;
        u.held += amount;
    }

    /// Moves `amount` from held back to available.
    pub fn release(&mut self, account: AccountId, asset: usize, amount: i128) {
        self.hold(account, asset, -amount);
    }

    /// Spends `amount` out of `from`'s held funds into `to`'s available funds.
    pub fn pay_held(&mut self, from: AccountId, to: AccountId, asset: usize, amount: i128) {
        self.entry(from, asset).held -= amount;
        self.entry(to, asset).available += amount;
    }

    /// Moves `amount` between two accounts' available funds.
    pub fn transfer(&mut self, from: AccountId, to: AccountId, asset: usize, amount: i128) {
        self.entry(from, asset).available -= amount;
        self.entry(to, asset).available += amount;
    }

    /// Every non-zero balance, sorted by account then asset index.
    pub fn all(&self) -> Vec<(AccountId, usize, Units)> {
        let mut out: Vec<_> = self
            .accounts
            .iter()
            .flat_map(|(a, v)| v.iter().enumerate().map(move |(i, u)| (*a, i, *u)))
            .filter(|(_, _, u)| *u != Units::default())
            .collect();
        out.sort_by_key(|(a, i, _)| (*a, *i));
        out
    }

    /// Sets a balance directly (restoring a snapshot).
    pub fn set(&mut self, account: AccountId, asset: usize, units: Units) {
        let e = self.entry(account, asset);
        let before = e.available + e.held;
        *e = units;
        self.supply[asset] += units.available + units.held - before;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_and_payments_conserve_the_supply() {
        let mut l = Ledger::new(2);
        let (a, b) = (AccountId(1), AccountId(2));
        l.deposit(a, 0, 100);
        l.hold(a, 0, 40);
        l.pay_held(a, b, 0, 30);
        l.release(a, 0, 10);
        assert_eq!(
            l.get(a, 0),
            Units {
                available: 70,
                held: 0
            }
        );
        assert_eq!(
            l.get(b, 0),
            Units {
                available: 30,
                held: 0
            }
        );
        assert_eq!(l.supply(0), 100);
        l.withdraw(b, 0, 30);
        assert_eq!(l.supply(0), 70);
        assert_eq!(l.all().len(), 1);
    }
}
