use super::*;
use crate::types::ids::{AccountId, OrderId};
use crate::types::order::{OrderType, SelfTradePrevention, TimeInForce};

fn node(id: u64, side: Side, ticks: u64, lots: u64) -> Node {
    Node::new(
        OrderId(id),
        AccountId(1),
        None,
        side,
        OrderType::Limit,
        ticks,
        lots,
        TimeInForce::Gtc,
        false,
        SelfTradePrevention::CancelTaker,
        0,
    )
}

fn ids(book: &Book) -> Vec<u64> {
    book.orders().map(|n| n.id.0).collect()
}

#[test]
fn orders_are_listed_best_price_first_then_oldest_first() {
    let mut b = Book::default();
    b.insert(node(1, Side::Buy, 100, 1));
    b.insert(node(2, Side::Buy, 101, 1));
    b.insert(node(3, Side::Buy, 100, 1));
    b.insert(node(4, Side::Sell, 105, 1));
    b.insert(node(5, Side::Sell, 103, 1));
    assert_eq!(ids(&b), vec![2, 1, 3, 5, 4]);
    assert_eq!(b.best(Side::Buy), Some(101));
    assert_eq!(b.best(Side::Sell), Some(103));
}

#[test]
fn removing_from_the_middle_keeps_the_others_in_order() {
    let mut b = Book::default();
    let _s1 = b.insert(node(1, Side::Buy, 100, 1));
    let s2 = b.insert(node(2, Side::Buy, 100, 2));
    let _s3 = b.insert(node(3, Side::Buy, 100, 3));
    assert_eq!(b.remove(s2).id, OrderId(2));
    assert_eq!(ids(&b), vec![1, 3]);
    let lots: Vec<u128> = b.levels(Side::Buy).map(|(_, l)| l.lots).collect();
    assert_eq!(lots, vec![4]);
    let s4 = b.insert(node(4, Side::Buy, 100, 1));
    assert_eq!(s4, s2, "freed slots are reused");
    assert_eq!(ids(&b), vec![1, 3, 4]);
}

#[test]
fn an_emptied_level_disappears() {
    let mut b = Book::default();
    let s = b.insert(node(1, Side::Sell, 100, 1));
    b.remove(s);
    assert_eq!(b.best(Side::Sell), None);
    assert_eq!(b.levels(Side::Sell).count(), 0);
}

#[test]
fn set_lots_updates_the_level_total_in_place() {
    let mut b = Book::default();
    let s = b.insert(node(1, Side::Sell, 100, 5));
    b.insert(node(2, Side::Sell, 100, 5));
    b.set_lots(s, 2);
    assert_eq!(b.levels(Side::Sell).next().map(|(_, l)| l.lots), Some(7));
    assert_eq!(ids(&b), vec![1, 2]);
}
