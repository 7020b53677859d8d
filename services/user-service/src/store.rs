//! The users bucket: key scheme and the operations that keep it consistent.
//!
//! | key | value |
//! | --- | --- |
//! | `user:{id}` | the [`User`], as a [`Record`] (marked while being deleted) |
//! | `email:{address}` | [`EmailClaim`]: which user owns a lower-cased address |
//! | `seq:user` | counter for ids; user ids are `counter + 2` |
//! | `meta:seed` | [`SeedState`]: whether the original users were written |
//!
//! Ids 1 and 2 are reserved for the seeded users, so seeding never races
//! id allocation. An address is claimed with create-if-absent *before* the
//! user is written, so two concurrent creates can never both own it; a
//! claim whose user never appeared (the writer crashed) expires after
//! [`STALE_CLAIM_MS`]. A delete first marks the record with CAS, so of
//! concurrent deletes exactly one wins; a marked record reads as absent.

use serde::{Deserialize, Serialize};
use service_kit::kv::{Bucket, Update};
use service_kit::pagination::{PageRequest, collect_page};
use service_kit::{ApiError, clock};

use crate::domain::{Email, User, ValidPatch, ValidUser};

pub const BUCKET: &str = "users";
const SEQ_KEY: &str = "seq:user";
const SEED_KEY: &str = "meta:seed";
const RESERVED_IDS: i64 = 2;
const STALE_CLAIM_MS: u64 = 30_000;
const STALE_SEED_MS: u64 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmailClaim {
    pub user_id: u64,
    pub claimed_at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SeedState {
    Seeding { since_ms: u64 },
    Done,
}

/// A user as stored: the user, or the mark the one delete that won the
/// record leaves while it releases the address. A marked record reads as
/// absent, also if that delete died before removing it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Record {
    Deleting { deleting_since_ms: u64 },
    Live(User),
}

impl Record {
    fn live(self) -> Option<User> {
        match self {
            Record::Live(user) => Some(user),
            Record::Deleting { .. } => None,
        }
    }
}

fn user_key(id: u64) -> String {
    format!("user:{id}")
}

fn email_key(email: &str) -> String {
    format!("email:{email}")
}

pub fn seed_users(created_at: &str) -> [User; 2] {
    [
        User {
            id: 1,
            name: "Alice Johnson".into(),
            email: "alice@example.com".into(),
            created_at: created_at.into(),
        },
        User {
            id: 2,
            name: "Bob Smith".into(),
            email: "bob@example.com".into(),
            created_at: created_at.into(),
        },
    ]
}

pub struct Users {
    bucket: Bucket,
}

impl Users {
    /// Opens the bucket and makes sure the original users exist.
    pub async fn open() -> Result<Self, ApiError> {
        let users = Self {
            bucket: Bucket::open(BUCKET)?,
        };
        users.ensure_seeded().await?;
        Ok(users)
    }

    /// Writes the two original users exactly once per store.
    ///
    /// One request wins the `meta:seed` CAS and writes them; concurrent
    /// first requests wait for it to finish rather than read an empty
    /// store. A winner that died mid-way leaves a stale marker that the
    /// next request takes over (the writes are idempotent).
    async fn ensure_seeded(&self) -> Result<(), ApiError> {
        for _ in 0..100 {
            let now = clock::now_ms();
            let won = self.bucket.update(SEED_KEY, |state: Option<SeedState>| {
                Ok(match state {
                    Some(SeedState::Done) => Update::Keep(None),
                    Some(SeedState::Seeding { since_ms })
                        if now.saturating_sub(since_ms) < STALE_SEED_MS =>
                    {
                        Update::Keep(Some(false))
                    }
                    _ => Update::Put(SeedState::Seeding { since_ms: now }, Some(true)),
                })
            })?;
            match won {
                None => return Ok(()),
                Some(true) => return self.write_seed(now),
                Some(false) => {
                    wstd::task::sleep(wstd::time::Duration::from_millis(10)).await;
                }
            }
        }
        Err(ApiError::store_unavailable(
            "The store is still being initialised; retry shortly.",
        ))
    }

    fn write_seed(&self, now: u64) -> Result<(), ApiError> {
        let users = seed_users(&clock::now_rfc3339());
        let records: Vec<(String, Record)> = users
            .iter()
            .map(|u| (user_key(u.id), Record::Live(u.clone())))
            .collect();
        let claims: Vec<(String, EmailClaim)> = users
            .iter()
            .map(|u| {
                (
                    email_key(&u.email),
                    EmailClaim {
                        user_id: u.id,
                        claimed_at_ms: now,
                    },
                )
            })
            .collect();
        self.bucket.put_many(&records)?;
        self.bucket.put_many(&claims)?;
        self.bucket.put(SEED_KEY, &SeedState::Done)
    }

    pub fn get(&self, id: u64) -> Result<User, ApiError> {
        self.bucket
            .get::<Record>(&user_key(id))?
            .and_then(Record::live)
            .ok_or_else(|| not_found(id))
    }

    pub fn create(&self, input: ValidUser) -> Result<User, ApiError> {
        // A taken address is refused before an id is spent on it, so
        // failed creates leave no gaps for listings to walk.
        if self.claim_is_live(&input.email)? {
            return Err(email_taken(input.email.as_str()));
        }
        let id = self.allocate_id()?;
        self.claim_email(&input.email, id)?;
        let user = User {
            id,
            name: input.name.into_inner(),
            email: input.email.into_inner(),
            created_at: clock::now_rfc3339(),
        };
        self.bucket
            .put(&user_key(id), &Record::Live(user.clone()))?;
        Ok(user)
    }

    pub fn update(&self, id: u64, patch: ValidPatch) -> Result<User, ApiError> {
        let current = self.get(id)?;
        let new_email = patch.email.filter(|e| e.as_str() != current.email);
        if let Some(email) = &new_email {
            self.claim_email(email, id)?;
        }
        let name = patch.name.map(|n| n.into_inner());
        let email = new_email.as_ref().map(|e| e.as_str().to_string());
        let updated = self.bucket.update(&user_key(id), |record: Option<Record>| {
            let mut user = record.and_then(Record::live).ok_or_else(|| not_found(id))?;
            if let Some(name) = &name {
                user.name = name.clone();
            }
            let old_email = email
                .as_ref()
                .map(|e| std::mem::replace(&mut user.email, e.clone()));
            Ok(Update::Put(Record::Live(user.clone()), (user, old_email)))
        });
        match updated {
            Ok((user, old_email)) => {
                if let Some(old) = old_email {
                    self.release_email(&old, id)?;
                }
                Ok(user)
            }
            Err(e) => {
                if let Some(email) = &new_email {
                    self.release_email(email.as_str(), id)?;
                }
                Err(e)
            }
        }
    }

    /// Deletes user `id`; of concurrent deletes, exactly one succeeds and
    /// the others find no user.
    pub fn delete(&self, id: u64) -> Result<(), ApiError> {
        let key = user_key(id);
        let user = self.bucket.update(&key, |record: Option<Record>| {
            let user = record.and_then(Record::live).ok_or_else(|| not_found(id))?;
            let marked = Record::Deleting {
                deleting_since_ms: clock::now_ms(),
            };
            Ok(Update::Put(marked, user))
        })?;
        self.release_email(&user.email, id)?;
        self.bucket.delete(&key)
    }

    /// Users with ids above the cursor, ascending.
    pub fn list(&self, page: PageRequest) -> Result<(Vec<User>, Option<u64>), ApiError> {
        let max_id = self.max_id()?;
        collect_page(
            page.after.saturating_add(1)..=max_id,
            page.limit,
            |ids| {
                let records = self.bucket.get_by_ids::<Record>(ids, user_key)?;
                Ok(records
                    .into_iter()
                    .map(|r| r.and_then(Record::live))
                    .collect())
            },
            |_| true,
        )
    }

    pub fn healthy(&self) -> Result<(), ApiError> {
        self.bucket.exists(SEED_KEY).map(|_| ())
    }

    fn allocate_id(&self) -> Result<u64, ApiError> {
        let n = self.bucket.increment(SEQ_KEY, 1)?;
        u64::try_from(n + RESERVED_IDS)
            .map_err(|_| ApiError::internal("The id counter is corrupt."))
    }

    fn max_id(&self) -> Result<u64, ApiError> {
        let n = self.bucket.increment(SEQ_KEY, 0)?;
        Ok(u64::try_from(n + RESERVED_IDS).unwrap_or(RESERVED_IDS as u64))
    }

    /// Claims `email` for `user_id`, or fails with 409 `email_taken`.
    fn claim_email(&self, email: &Email, user_id: u64) -> Result<(), ApiError> {
        let key = email_key(email.as_str());
        let now = clock::now_ms();
        let claim = EmailClaim {
            user_id,
            claimed_at_ms: now,
        };
        if self.bucket.insert_new(&key, &claim)? {
            return Ok(());
        }
        // Taken, unless what made the claim died or moved on (is_live).
        self.bucket
            .update(&key, |existing: Option<EmailClaim>| match existing {
                None => Ok(Update::Put(claim.clone(), ())),
                Some(old) if old.user_id == user_id => Ok(Update::Keep(())),
                Some(old) => {
                    if !self.is_live(email.as_str(), &old, now)? {
                        Ok(Update::Put(claim.clone(), ()))
                    } else {
                        Err(email_taken(email.as_str()))
                    }
                }
            })
    }

    /// Whether someone holds `email` now (a claim whose user never
    /// appeared, or is being deleted, does not count once stale).
    fn claim_is_live(&self, email: &Email) -> Result<bool, ApiError> {
        match self.bucket.get::<EmailClaim>(&email_key(email.as_str()))? {
            Some(claim) => self.is_live(email.as_str(), &claim, clock::now_ms()),
            None => Ok(false),
        }
    }

    /// A claim on `email` holds while its user has that address, while the
    /// delete of its user is releasing it, and while the create or change
    /// that made it may still write its user; one left by a request that
    /// died expires after [`STALE_CLAIM_MS`].
    fn is_live(&self, email: &str, claim: &EmailClaim, now: u64) -> Result<bool, ApiError> {
        let fresh = |since: u64| now.saturating_sub(since) <= STALE_CLAIM_MS;
        Ok(match self.bucket.get::<Record>(&user_key(claim.user_id))? {
            Some(Record::Live(user)) => user.email == email || fresh(claim.claimed_at_ms),
            Some(Record::Deleting { deleting_since_ms }) => fresh(deleting_since_ms),
            None => fresh(claim.claimed_at_ms),
        })
    }

    /// Frees `email` if `user_id` still owns it.
    fn release_email(&self, email: &str, user_id: u64) -> Result<(), ApiError> {
        let key = email_key(email);
        match self.bucket.get::<EmailClaim>(&key)? {
            Some(claim) if claim.user_id == user_id => self.bucket.delete(&key),
            _ => Ok(()),
        }
    }
}

pub fn not_found(id: u64) -> ApiError {
    ApiError::not_found("user_not_found", format!("No user has id {id}."))
}

fn email_taken(email: &str) -> ApiError {
    ApiError::conflict(
        "email_taken",
        "Another user already has this email address.",
    )
    .with_detail("email", email.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_matches_the_original_design() {
        let [alice, bob] = seed_users("2026-01-01T00:00:00.000Z");
        assert_eq!(
            (alice.id, alice.name.as_str(), alice.email.as_str()),
            (1, "Alice Johnson", "alice@example.com")
        );
        assert_eq!(
            (bob.id, bob.name.as_str(), bob.email.as_str()),
            (2, "Bob Smith", "bob@example.com")
        );
    }

    #[test]
    fn seed_state_encoding_is_stable() {
        assert_eq!(
            serde_json::to_string(&SeedState::Done).expect("json"),
            r#"{"state":"done"}"#
        );
        assert_eq!(
            serde_json::to_string(&SeedState::Seeding { since_ms: 5 }).expect("json"),
            r#"{"state":"seeding","since_ms":5}"#
        );
    }

    #[test]
    fn records_read_as_users_and_marked_ones_as_absent() {
        let [alice, _] = seed_users("2026-01-01T00:00:00.000Z");
        let plain = serde_json::to_string(&alice).expect("json");
        let record: Record = serde_json::from_str(&plain).expect("record");
        assert_eq!(record.clone().live(), Some(alice));
        // A live record is stored exactly as a user always was.
        assert_eq!(serde_json::to_string(&record).expect("json"), plain);
        let marked: Record = serde_json::from_str(r#"{"deleting_since_ms":5}"#).expect("record");
        assert_eq!(marked.live(), None);
    }

    #[test]
    fn keys_do_not_collide_across_kinds() {
        assert_ne!(user_key(1), email_key("1"));
        assert!(email_key("a@b.co").starts_with("email:"));
    }
}
