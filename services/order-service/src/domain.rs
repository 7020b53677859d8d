//! Orders, their line items, money, and the status state machine.
//!
//! [`OrderStatus::transition_to`] is the only place that knows which status
//! may follow which. Money is integer cents with checked arithmetic: the
//! bounds of the API contract (openapi.yaml) keep a total far below `u64::MAX`, but a total is
//! still computed as if they did not, so a future change of bounds cannot
//! silently wrap.

use serde::{Deserialize, Serialize};
use service_kit::ApiError;

pub const MAX_ITEMS: usize = 100;
pub const MAX_SKU_LEN: usize = 64;
pub const MAX_QUANTITY: u32 = 10_000;
pub const MAX_UNIT_PRICE_CENTS: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        Self::Pending,
        Self::Paid,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// pending→paid|cancelled, paid→shipped|cancelled, shipped→delivered.
    pub fn transition_to(self, next: OrderStatus) -> Result<OrderStatus, ApiError> {
        use OrderStatus::*;
        let allowed = matches!(
            (self, next),
            (Pending, Paid)
                | (Pending, Cancelled)
                | (Paid, Shipped)
                | (Paid, Cancelled)
                | (Shipped, Delivered)
        );
        if allowed {
            Ok(next)
        } else {
            Err(ApiError::conflict(
                "invalid_transition",
                format!(
                    "An order that is {} cannot become {}.",
                    self.as_str(),
                    next.as_str()
                ),
            )
            .with_detail("from", self.as_str())
            .with_detail("to", next.as_str()))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
    pub user_id: u64,
    pub items: Vec<LineItem>,
    pub total_cents: u64,
    pub status: OrderStatus,
    pub created_at: String,
    pub updated_at: String,
}

/// `POST /orders` body. Numbers are parsed wide so that an out-of-range
/// value is reported as a field error, not as a JSON type error.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    pub user_id: u64,
    pub items: Vec<ItemInput>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    pub sku: String,
    pub quantity: u64,
    pub unit_price_cents: u64,
}

/// `PATCH /orders/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchOrder {
    pub status: String,
}

/// An order request that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidOrder {
    pub user_id: u64,
    pub items: Vec<LineItem>,
    pub total_cents: u64,
}

fn validation_failed() -> ApiError {
    ApiError::bad_request("validation_failed", "Some fields are invalid.")
}

pub fn validate_sku(sku: &str) -> Result<(), &'static str> {
    if sku.is_empty() || sku.len() > MAX_SKU_LEN {
        return Err("must be 1 to 64 characters");
    }
    if !sku
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("may contain only A-Z, a-z, 0-9, '_' and '-'");
    }
    Ok(())
}

/// Sum of quantity × unit price, `None` on overflow.
pub fn total_cents(items: &[LineItem]) -> Option<u64> {
    items.iter().try_fold(0u64, |acc, item| {
        u64::from(item.quantity)
            .checked_mul(item.unit_price_cents)
            .and_then(|line| acc.checked_add(line))
    })
}

impl CreateOrder {
    pub fn validate(self) -> Result<ValidOrder, ApiError> {
        let mut problems: Vec<(String, &'static str)> = Vec::new();
        if self.user_id == 0 {
            problems.push(("user_id".into(), "must be a positive integer"));
        }
        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            problems.push(("items".into(), "must hold 1 to 100 items"));
        }
        for (i, item) in self.items.iter().enumerate().take(MAX_ITEMS) {
            if let Err(reason) = validate_sku(&item.sku) {
                problems.push((format!("items[{i}].sku"), reason));
            }
            if !(1..=u64::from(MAX_QUANTITY)).contains(&item.quantity) {
                problems.push((format!("items[{i}].quantity"), "must be 1 to 10000"));
            }
            if item.unit_price_cents > MAX_UNIT_PRICE_CENTS {
                problems.push((
                    format!("items[{i}].unit_price_cents"),
                    "must be 0 to 1000000000",
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems
                .into_iter()
                .fold(validation_failed(), |err, (field, reason)| {
                    err.with_detail(field, reason)
                }));
        }
        let items: Vec<LineItem> = self
            .items
            .into_iter()
            .map(|item| LineItem {
                sku: item.sku,
                // Bounded to 1..=10000 above.
                quantity: u32::try_from(item.quantity).unwrap_or(MAX_QUANTITY),
                unit_price_cents: item.unit_price_cents,
            })
            .collect();
        let total_cents = total_cents(&items)
            .ok_or_else(|| validation_failed().with_detail("items", "the order total overflows"))?;
        Ok(ValidOrder {
            user_id: self.user_id,
            items,
            total_cents,
        })
    }
}

impl PatchOrder {
    pub fn status(&self) -> Result<OrderStatus, ApiError> {
        OrderStatus::parse(&self.status).ok_or_else(|| {
            validation_failed().with_detail(
                "status",
                "must be one of pending, paid, shipped, delivered, cancelled",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;
    use service_kit::request::parse_json;

    fn item(sku: &str, quantity: u64, unit_price_cents: u64) -> ItemInput {
        ItemInput {
            sku: sku.into(),
            quantity,
            unit_price_cents,
        }
    }

    fn order(items: Vec<ItemInput>) -> CreateOrder {
        CreateOrder { user_id: 1, items }
    }

    fn field_errors(e: ApiError) -> Vec<String> {
        e.details
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn allowed_transitions() {
        for (from, to) in [
            (Pending, Paid),
            (Pending, Cancelled),
            (Paid, Shipped),
            (Paid, Cancelled),
            (Shipped, Delivered),
        ] {
            assert_eq!(from.transition_to(to), Ok(to), "{from:?}->{to:?}");
        }
    }

    #[test]
    fn every_other_transition_is_invalid() {
        let allowed = [
            (Pending, Paid),
            (Pending, Cancelled),
            (Paid, Shipped),
            (Paid, Cancelled),
            (Shipped, Delivered),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                if allowed.contains(&(from, to)) {
                    continue;
                }
                let e = from.transition_to(to).expect_err("invalid");
                assert_eq!(
                    (e.status, e.code),
                    (409, "invalid_transition"),
                    "{from:?}->{to:?}"
                );
            }
        }
    }

    #[test]
    fn status_names_round_trip() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).expect("json"),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(OrderStatus::parse("PAID"), None);
        assert_eq!(OrderStatus::parse(""), None);
    }

    #[test]
    fn total_is_sum_of_lines() {
        let v = order(vec![item("A", 2, 150), item("B", 1, 99)])
            .validate()
            .expect("valid");
        assert_eq!(v.total_cents, 399);
    }

    #[test]
    fn zero_price_is_allowed() {
        assert_eq!(
            order(vec![item("FREE", 3, 0)])
                .validate()
                .map(|v| v.total_cents),
            Ok(0)
        );
    }

    #[test]
    fn maximal_order_fits() {
        let items = (0..100)
            .map(|i| item(&format!("SKU-{i}"), 10_000, 1_000_000_000))
            .collect();
        assert_eq!(
            order(items).validate().map(|v| v.total_cents),
            Ok(100 * 10_000 * 1_000_000_000)
        );
    }

    #[test]
    fn checked_total_detects_overflow() {
        let items = vec![LineItem {
            sku: "A".into(),
            quantity: u32::MAX,
            unit_price_cents: u64::MAX,
        }];
        assert_eq!(total_cents(&items), None);
        let two = vec![
            LineItem {
                sku: "A".into(),
                quantity: 1,
                unit_price_cents: u64::MAX,
            },
            LineItem {
                sku: "B".into(),
                quantity: 1,
                unit_price_cents: 1,
            },
        ];
        assert_eq!(total_cents(&two), None);
    }

    #[test]
    fn item_count_bounds() {
        assert_eq!(
            field_errors(order(vec![]).validate().expect_err("empty")),
            vec!["items"]
        );
        let many = (0..101).map(|i| item(&format!("S{i}"), 1, 1)).collect();
        assert!(
            field_errors(order(many).validate().expect_err("too many"))
                .contains(&"items".to_string())
        );
    }

    #[test]
    fn sku_rules() {
        assert!(validate_sku("ABC-123_x").is_ok());
        assert!(validate_sku(&"a".repeat(64)).is_ok());
        for bad in ["", "has space", "ünï", "a/b", "a.b", &"a".repeat(65)] {
            assert!(validate_sku(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantity_and_price_bounds_name_the_item() {
        let e = order(vec![
            item("A", 0, 1),
            item("B", 10_001, 1),
            item("C", 1, 1_000_000_001),
        ])
        .validate()
        .expect_err("invalid");
        let fields = field_errors(e);
        assert!(fields.contains(&"items[0].quantity".to_string()));
        assert!(fields.contains(&"items[1].quantity".to_string()));
        assert!(fields.contains(&"items[2].unit_price_cents".to_string()));
    }

    #[test]
    fn zero_user_id_is_rejected() {
        let e = CreateOrder {
            user_id: 0,
            items: vec![item("A", 1, 1)],
        }
        .validate()
        .expect_err("invalid");
        assert_eq!(field_errors(e), vec!["user_id"]);
    }

    #[test]
    fn json_shape_errors() {
        for bad in [
            r#"{"user_id":"1","items":[]}"#,
            r#"{"user_id":-1,"items":[]}"#,
            r#"{"user_id":1.5,"items":[]}"#,
            r#"{"user_id":1,"items":{}}"#,
            r#"{"user_id":1,"items":[{"sku":"A","quantity":1}]}"#,
            r#"{"user_id":1,"items":[{"sku":"A","quantity":1,"unit_price_cents":1,"x":0}]}"#,
            r#"{"user_id":1,"items":[{"sku":"A","quantity":99999999999999999999999,"unit_price_cents":1}]}"#,
            r#"{"user_id":1,"items":[],"status":"paid"}"#,
        ] {
            let e = parse_json::<CreateOrder>(bad.as_bytes()).expect_err(bad);
            assert_eq!(e.status, 400, "{bad}");
        }
    }

    #[test]
    fn patch_status_must_be_known() {
        let p = parse_json::<PatchOrder>(br#"{"status":"refunded"}"#).expect("parses");
        assert_eq!(p.status().map_err(|e| e.code), Err("validation_failed"));
        let p = parse_json::<PatchOrder>(br#"{"status":"paid"}"#).expect("parses");
        assert_eq!(p.status(), Ok(Paid));
        assert!(parse_json::<PatchOrder>(br#"{"status":1}"#).is_err());
    }
}
