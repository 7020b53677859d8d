//! Fuzzing of order input: an accepted order always satisfies the stored
//! invariants (bounded items, exact total), a refused one is a 400 naming
//! its fields, and no sequence of status changes escapes the state machine.

use proptest::prelude::*;
use serde_json::{Value, json};
use service_kit::request::parse_json;

use crate::domain::{
    CreateOrder, MAX_ITEMS, MAX_QUANTITY, MAX_UNIT_PRICE_CENTS, OrderStatus, PatchOrder,
};

fn item() -> impl Strategy<Value = Value> {
    (
        "[A-Za-z0-9_-]{1,8}|\\PC{0,70}",
        prop_oneof![0u64..=20_000, any::<u64>()],
        prop_oneof![0u64..=2_000_000_000, any::<u64>()],
    )
        .prop_map(|(sku, quantity, unit_price_cents)| {
            json!({"sku": sku, "quantity": quantity, "unit_price_cents": unit_price_cents})
        })
}

proptest! {
    #[test]
    fn accepted_orders_are_bounded_with_exact_totals(
        user_id in prop_oneof![Just(0u64), 1u64..1_000],
        items in proptest::collection::vec(item(), 0..=MAX_ITEMS + 2),
    ) {
        let body = json!({"user_id": user_id, "items": items}).to_string();
        match parse_json::<CreateOrder>(body.as_bytes()).and_then(CreateOrder::validate) {
            Ok(order) => {
                prop_assert!(order.user_id > 0);
                prop_assert!((1..=MAX_ITEMS).contains(&order.items.len()));
                let mut total = 0u128;
                for item in &order.items {
                    prop_assert!((1..=MAX_QUANTITY).contains(&item.quantity));
                    prop_assert!(item.unit_price_cents <= MAX_UNIT_PRICE_CENTS);
                    total += u128::from(item.quantity) * u128::from(item.unit_price_cents);
                }
                prop_assert_eq!(u128::from(order.total_cents), total);
            }
            Err(e) => {
                prop_assert_eq!(e.status, 400);
                prop_assert!(e.details.is_some_and(|d| !d.is_empty()), "{}", e.message);
            }
        }
    }

    #[test]
    fn any_body_is_an_order_or_400(body in "\\PC{0,64}|\\{\"user_id\":-?[0-9]{1,22},\"items\":\\[\\]\\}") {
        if let Err(e) = parse_json::<CreateOrder>(body.as_bytes()).and_then(CreateOrder::validate) {
            prop_assert_eq!(e.status, 400);
        }
    }

    #[test]
    fn status_changes_stay_in_the_machine(raw in proptest::collection::vec("pending|paid|shipped|delivered|cancelled|\\PC{0,10}", 0..8)) {
        let mut status = OrderStatus::Pending;
        for next in raw {
            let patch = PatchOrder { status: next };
            match patch.status() {
                Ok(next) => match status.transition_to(next) {
                    Ok(moved) => status = moved,
                    Err(e) => prop_assert_eq!(e.status, 409),
                },
                Err(e) => prop_assert_eq!(e.status, 400),
            }
            prop_assert!(OrderStatus::ALL.contains(&status));
        }
    }
}
