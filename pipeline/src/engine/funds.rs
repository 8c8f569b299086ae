//! Deposits and withdrawals.

use rust_decimal::Decimal;

use crate::error::Reject;
use crate::event::{Event, EventKind};
use crate::spec::{MAX_UNITS, to_units};
use crate::types::ids::{AccountId, Asset};

use super::Engine;

impl Engine {
    /// An amount in units of `asset`: positive and within its precision.
    fn amount_units(&self, asset: &Asset, amount: Decimal) -> Result<(usize, i128), Reject> {
        let i = self.asset_index(asset).ok_or(Reject::UnknownAsset)?;
        if amount <= Decimal::ZERO {
            return Err(Reject::InvalidAmount);
        }
        let units = to_units(amount, 1, self.assets[i].scale).map_err(|_| Reject::InvalidAmount)?;
        let units = i128::try_from(units).map_err(|_| Reject::InvalidAmount)?;
        if units > MAX_UNITS {
            return Err(Reject::InvalidAmount);
        }
        Ok((i, units))
    }

    /// Handles `Command::Deposit`. The asset's total supply is capped at 2^96 − 1
    /// units so every balance stays representable as a `Decimal`.
    pub(super) fn deposit(
        &mut self,
        account: AccountId,
        asset: Asset,
        amount: Decimal,
        ts: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let (i, units) = self.amount_units(&asset, amount)?;
        if units > MAX_UNITS - self.ledger.supply(i) {
            return Err(Reject::SupplyLimit);
        }
        self.ledger.deposit(account, i, units);
        self.emit(
            out,
            ts,
            EventKind::Deposited {
                account,
                asset,
                amount,
            },
        );
        Ok(())
    }

    /// Handles `Command::Withdraw`: only available (not held) funds can leave.
    pub(super) fn withdraw(
        &mut self,
        account: AccountId,
        asset: Asset,
        amount: Decimal,
        ts: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let (i, units) = self.amount_units(&asset, amount)?;
        if units > self.ledger.get(account, i).available {
            return Err(Reject::InsufficientFunds);
        }
        self.ledger.withdraw(account, i, units);
        self.emit(
            out,
            ts,
            EventKind::Withdrawn {
                account,
                asset,
                amount,
            },
        );
        Ok(())
    }
}
