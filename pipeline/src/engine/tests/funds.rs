use rust_decimal_macros::dec;

use super::fixture::*;
use crate::*;

#[test]
fn deposits_and_withdrawals_move_available_funds() {
    let mut e = Engine::new(config());
    let ev = e
        .apply(Command::deposit(ALICE, usd(), dec!(10.5)), 1)
        .unwrap();
    assert_eq!(
        ev[0].kind,
        EventKind::Deposited {
            account: ALICE,
            asset: usd(),
            amount: dec!(10.5)
        }
    );
    e.apply(Command::withdraw(ALICE, usd(), dec!(0.5)), 2)
        .unwrap();
    assert_eq!(avail(&e, ALICE, usd()), dec!(10));
    assert_eq!(e.total_supply(&usd()), dec!(10));
    assert_eq!(
        e.balances(ALICE),
        vec![(
            usd(),
            Balance {
                available: dec!(10),
                held: dec!(0)
            }
        )]
    );
}

#[test]
fn held_funds_cannot_be_withdrawn() {
    let mut e = Engine::new(config());
    e.apply(Command::deposit(ALICE, usd(), dec!(100.2)), 1)
        .unwrap();
    rest(&mut e, limit(ALICE, Side::Buy, "100", "1"));
    let w = Command::withdraw(ALICE, usd(), dec!(0.01));
    assert_eq!(e.apply(w, 2), Err(Reject::InsufficientFunds));
}

#[test]
fn bad_amounts_and_unknown_assets_are_rejected() {
    let mut e = Engine::new(config());
    let dep = |amount, asset| Command::deposit(ALICE, asset, amount);
    assert_eq!(e.apply(dep(dec!(0), usd()), 1), Err(Reject::InvalidAmount));
    assert_eq!(e.apply(dep(dec!(-1), usd()), 1), Err(Reject::InvalidAmount));
    assert_eq!(
        e.apply(dep(dec!(0.000000001), btc()), 1),
        Err(Reject::InvalidAmount)
    );
    assert_eq!(
        e.apply(dep(dec!(1), Asset::parse("ETH").unwrap()), 1),
        Err(Reject::UnknownAsset)
    );
    assert_eq!(e.last_seq(), 0);
}

#[test]
fn a_deposit_past_the_supply_every_balance_can_hold_is_a_supply_limit() {
    let mut e = Engine::new(config());
    let dep = |amount| Command::deposit(ALICE, btc(), amount);
    // 2^96 - 1 units of 10^-8 BTC is about 7.9 × 10^20 BTC: more than
    // that on its own is an invalid amount, whatever the supply.
    assert_eq!(
        e.apply(dep(dec!(900000000000000000000)), 1),
        Err(Reject::InvalidAmount)
    );
    assert!(e.apply(dep(dec!(500000000000000000000)), 2).is_ok());
    assert_eq!(
        e.apply(dep(dec!(500000000000000000000)), 3),
        Err(Reject::SupplyLimit)
    );
    assert_eq!(e.last_seq(), 1);
}
