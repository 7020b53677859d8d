//! The orders bucket: key scheme, creation, listing and idempotency.
//!
//! | key | value |
//! | --- | --- |
//! | `order:{id}` | the [`Order`] |
//! | `seq:order` | counter for ids |
//! | `user-orders:{user_id}:{shard}` | ascending ids of that user's orders whose id is `shard` modulo [`USER_INDEX_SHARDS`] (an id whose create died may have no order) |
//! | `user-orders:{user_id}` | the same for orders made before the index was sharded: read, never written |
//! | `idem:{key}` | [`Idempotency`]: the request a key was first used with, and its outcome |
//!
//! A user's index is split in [`USER_INDEX_SHARDS`] records because each
//! create updates it by CAS: with one record, concurrent creates for one
//! user all raced for it and each lost once per rival (16 at once cost 9
//! CAS attempts per create, each a commit; BENCHMARKS.md, "One hot user").
//! Consecutive ids land in different shards, so concurrent creates rarely
//! meet, and a listing reads every shard in one `get-many` and merges.
//!
//! An idempotency key is claimed with create-if-absent before anything is
//! created, so of two concurrent requests with one key exactly one creates;
//! the other sees `pending` (409, retry) or the stored response (replay).

use serde::{Deserialize, Serialize};
use service_kit::kv::{Bucket, Update, Writes};
use service_kit::pagination::{PageRequest, collect_page};
use service_kit::{ApiError, clock};

use crate::domain::{CreateOrder, Order, OrderStatus, ValidOrder};

pub const BUCKET: &str = "orders";
const SEQ_KEY: &str = "seq:order";
/// A `pending` claim older than this belongs to a request that died; a
/// retry may take it over.
const STALE_PENDING_MS: u64 = 30_000;
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Idempotency {
    Pending { request: CreateOrder, since_ms: u64 },
    Done { request: CreateOrder, order: Order },
}

/// What a request with an idempotency key should do.
#[derive(Debug, PartialEq)]
pub enum Claim {
    /// The key is ours: create the order, passing the key to [`Orders::create`].
    Fresh,
    /// The key was used before with this very request: answer with this.
    Replay(Box<Order>),
}

fn order_key(id: u64) -> String {
    format!("order:{id}")
}

/// Records a user's order index is split into (by order id modulo this).
/// Part of the stored format: a listing reads shards `0..USER_INDEX_SHARDS`
/// only, so changing it would hide the ids in the others.
pub const USER_INDEX_SHARDS: u64 = 16;

fn user_orders_key(user_id: u64, order_id: u64) -> String {
    format!("user-orders:{user_id}:{}", order_id % USER_INDEX_SHARDS)
}

/// Every record that may hold ids of `user_id`'s orders: the shards and
/// the unsharded index of stores written before the split.
fn user_index_keys(user_id: u64) -> Vec<String> {
    (0..USER_INDEX_SHARDS)
        .map(|shard| format!("user-orders:{user_id}:{shard}"))
        .chain([format!("user-orders:{user_id}")])
        .collect()
}

/// One ascending, duplicate-free list from the index records of a user.
fn merge_index(records: Vec<Option<Vec<u64>>>) -> Vec<u64> {
    let mut ids: Vec<u64> = records.into_iter().flatten().flatten().collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn idempotency_key(key: &str) -> String {
    format!("idem:{key}")
}

/// Visible ASCII, 1..=255 characters (the header is echoed into logs),
/// judged on the bytes the client sent: a header that is present but not
/// such a key is refused, never ignored.
pub fn validate_idempotency_key(raw: &[u8]) -> Result<&str, ApiError> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_IDEMPOTENCY_KEY_LEN
        && raw.iter().all(u8::is_ascii_graphic);
    match std::str::from_utf8(raw) {
        Ok(key) if ok => Ok(key),
        _ => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
        )
        .with_detail("idempotency-key", "1..=255 visible ASCII characters")),
    }
}

pub struct Orders {
    bucket: Bucket,
}

impl Orders {
    pub fn open() -> Result<Self, ApiError> {
        Ok(Self {
            bucket: Bucket::open(BUCKET)?,
        })
    }

    pub fn get(&self, id: u64) -> Result<Order, ApiError> {
        self.bucket
            .get(&order_key(id))?
            .ok_or_else(|| not_found(id))
    }

    /// Creates the order; with an idempotency key, records the outcome
    /// for replays in the same write as the order itself.
    ///
    /// The id goes into the user's index before the order is written: a
    /// create that dies between leaves an id without an order, which
    /// listings skip, but never an order its user's listing misses. The
    /// order and its idempotency outcome are one `set-many`, so a replay
    /// never finds the order made and the key still pending, and a keyed
    /// create waits for four commits, not five.
    pub fn create(
        &self,
        input: ValidOrder,
        idempotency: Option<(&str, &CreateOrder)>,
    ) -> Result<Order, ApiError> {
        let id = u64::try_from(self.bucket.increment(SEQ_KEY, 1)?)
            .map_err(|_| ApiError::internal("The id counter is corrupt."))?;
        let now = clock::now_rfc3339();
        let order = Order {
            id,
            user_id: input.user_id,
            items: input.items,
            total_cents: input.total_cents,
            status: OrderStatus::Pending,
            created_at: now.clone(),
            updated_at: now,
        };
        self.bucket.update(
            &user_orders_key(order.user_id, id),
            |ids: Option<Vec<u64>>| {
                let mut ids = ids.unwrap_or_default();
                if let Err(at) = ids.binary_search(&id) {
                    ids.insert(at, id);
                }
                Ok(Update::Put(ids, ()))
            },
        )?;
        let mut writes = Writes::default().put(order_key(id), &order)?;
        if let Some((key, request)) = idempotency {
            writes = writes.put(
                idempotency_key(key),
                &Idempotency::Done {
                    request: request.clone(),
                    order: order.clone(),
                },
            )?;
        }
        self.bucket.write(writes)?;
        Ok(order)
    }

    pub fn set_status(&self, id: u64, next: OrderStatus) -> Result<Order, ApiError> {
        self.bucket.update(&order_key(id), |order: Option<Order>| {
            let mut order = order.ok_or_else(|| not_found(id))?;
            order.status = order.status.transition_to(next)?;
            order.updated_at = clock::now_rfc3339();
            Ok(Update::Put(order.clone(), order))
        })
    }

    /// Orders above the cursor, ascending, optionally of one user and status.
    pub fn list(
        &self,
        page: PageRequest,
        user_id: Option<u64>,
        status: Option<OrderStatus>,
    ) -> Result<(Vec<Order>, Option<u64>), ApiError> {
        let keep = |o: &Order| status.is_none_or(|s| o.status == s);
        let fetch = |ids: &[u64]| self.bucket.get_by_ids(ids, order_key);
        match user_id {
            Some(user_id) => {
                let ids = merge_index(self.bucket.get_many(&user_index_keys(user_id))?);
                let after = ids.partition_point(|&id| id <= page.after);
                collect_page(ids[after..].iter().copied(), page.limit, fetch, keep)
            }
            None => {
                let max_id = u64::try_from(self.bucket.increment(SEQ_KEY, 0)?).unwrap_or(0);
                collect_page(
                    page.after.saturating_add(1)..=max_id,
                    page.limit,
                    fetch,
                    keep,
                )
            }
        }
    }

    /// Claims `key` for `request`, or says how to answer a repeat.
    pub fn claim(&self, key: &str, request: &CreateOrder) -> Result<Claim, ApiError> {
        let now = clock::now_ms();
        let pending = Idempotency::Pending {
            request: request.clone(),
            since_ms: now,
        };
        self.bucket.update(
            &idempotency_key(key),
            |record: Option<Idempotency>| match record {
                None => Ok(Update::Put(pending.clone(), Claim::Fresh)),
                Some(Idempotency::Done {
                    request: first,
                    order,
                }) => {
                    if &first == request {
                        Ok(Update::Keep(Claim::Replay(Box::new(order))))
                    } else {
                        Err(key_reused())
                    }
                }
                Some(Idempotency::Pending {
                    request: first,
                    since_ms,
                }) => {
                    if &first != request {
                        Err(key_reused())
                    } else if now.saturating_sub(since_ms) > STALE_PENDING_MS {
                        Ok(Update::Put(pending.clone(), Claim::Fresh))
                    } else {
                        Err(ApiError::conflict(
                            "idempotency_in_progress",
                            "A request with this Idempotency-Key is still being processed.",
                        )
                        .with_header("retry-after", "1"))
                    }
                }
            },
        )
    }

    /// Frees a key whose request failed, so the client may retry it.
    pub fn abandon(&self, key: &str) -> Result<(), ApiError> {
        self.bucket.delete(&idempotency_key(key))
    }

    pub fn healthy(&self) -> Result<(), ApiError> {
        self.bucket.exists(SEQ_KEY).map(|_| ())
    }
}

pub fn not_found(id: u64) -> ApiError {
    ApiError::not_found("order_not_found", format!("No order has id {id}."))
}

fn key_reused() -> ApiError {
    ApiError::new(
        422,
        "idempotency_key_reused",
        "This Idempotency-Key was already used with a different request.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_accept_visible_ascii() {
        assert!(validate_idempotency_key(b"order-2026-11-24/abc:1").is_ok());
        assert!(validate_idempotency_key("k".repeat(255).as_bytes()).is_ok());
    }

    #[test]
    fn idempotency_keys_reject_the_rest() {
        for bad in ["", " ", "a b", "ключ", "a\tb", &"k".repeat(256)] {
            assert!(validate_idempotency_key(bad.as_bytes()).is_err(), "{bad:?}");
        }
        // Latin-1 é, as a header byte that is not UTF-8.
        assert!(validate_idempotency_key(b"latin\xe9key").is_err());
    }

    #[test]
    fn consecutive_ids_spread_over_every_shard() {
        let keys: std::collections::BTreeSet<String> = (100..100 + USER_INDEX_SHARDS)
            .map(|id| user_orders_key(7, id))
            .collect();
        assert_eq!(keys.len() as u64, USER_INDEX_SHARDS);
        let all = user_index_keys(7);
        assert!(
            keys.iter().all(|k| all.contains(k)),
            "{keys:?} not all read"
        );
        assert!(
            all.contains(&"user-orders:7".to_string()),
            "the unsharded index is read"
        );
        assert!(
            !all.iter().any(|k| k.starts_with("user-orders:70")),
            "{all:?}"
        );
    }

    #[test]
    fn index_records_merge_ascending_without_duplicates() {
        let merged = merge_index(vec![
            Some(vec![3, 19]),
            None,
            Some(vec![4, 20]),
            Some(vec![1, 3]),
        ]);
        assert_eq!(merged, [1, 3, 4, 19, 20]);
    }

    #[test]
    fn record_encoding_is_tagged() {
        let rec = Idempotency::Pending {
            request: CreateOrder {
                user_id: 1,
                items: vec![],
            },
            since_ms: 3,
        };
        let json = serde_json::to_value(&rec).expect("json");
        assert_eq!(json["state"], "pending");
        assert_eq!(
            serde_json::from_value::<Idempotency>(json).expect("back"),
            rec
        );
    }
}
