//! The users bucket: key scheme and the operations that keep it consistent.
//!
//! | key | value |
//! | --- | --- |
//! | `user:{id}` | the [`User`] |
//! | `email:{address}` | [`EmailClaim`]: which user owns a lower-cased address |
//! | `seq:user` | counter for ids; user ids are `counter + 2` |
//! | `meta:seed` | [`SeedState`]: whether the original users were written |
//!
//! Ids 1 and 2 are reserved for the seeded users, so seeding never races
//! id allocation. An address is claimed with create-if-absent *before* the
//! user is written, so two concurrent creates can never both own it; a
//! claim whose user never appeared (the writer crashed) expires after
//! [`STALE_CLAIM_MS`].

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
        let records: Vec<(String, User)> =
            users.iter().map(|u| (user_key(u.id), u.clone())).collect();
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
        self.bucket.get(&user_key(id))?.ok_or_else(|| not_found(id))
    }

    pub fn create(&self, input: ValidUser) -> Result<User, ApiError> {
        let id = self.allocate_id()?;
        self.claim_email(&input.email, id)?;
        let user = User {
            id,
            name: input.name.into_inner(),
            email: input.email.into_inner(),
            created_at: clock::now_rfc3339(),
        };
        self.bucket.put(&user_key(id), &user)?;
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
        let updated = self.bucket.update(&user_key(id), |user: Option<User>| {
            let mut user = user.ok_or_else(|| not_found(id))?;
            if let Some(name) = &name {
                user.name = name.clone();
            }
            let old_email = email
                .as_ref()
                .map(|e| std::mem::replace(&mut user.email, e.clone()));
            Ok(Update::Put(user.clone(), (user, old_email)))
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

    pub fn delete(&self, id: u64) -> Result<(), ApiError> {
        let user = self.get(id)?;
        self.bucket.delete(&user_key(id))?;
        self.release_email(&user.email, id)
    }

    /// Users with ids above the cursor, ascending.
    pub fn list(&self, page: PageRequest) -> Result<(Vec<User>, Option<u64>), ApiError> {
        let max_id = self.max_id()?;
        collect_page(
            page.after.saturating_add(1)..=max_id,
            page.limit,
            |ids| self.bucket.get_by_ids(ids, user_key),
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
        // Taken, unless the claim is an orphan of a create that never finished.
        self.bucket
            .update(&key, |existing: Option<EmailClaim>| match existing {
                None => Ok(Update::Put(claim.clone(), ())),
                Some(old) if old.user_id == user_id => Ok(Update::Keep(())),
                Some(old) => {
                    let orphan = now.saturating_sub(old.claimed_at_ms) > STALE_CLAIM_MS
                        && !self.bucket.exists(&user_key(old.user_id))?;
                    if orphan {
                        Ok(Update::Put(claim.clone(), ()))
                    } else {
                        Err(email_taken(email.as_str()))
                    }
                }
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
    fn keys_do_not_collide_across_kinds() {
        assert_ne!(user_key(1), email_key("1"));
        assert!(email_key("a@b.co").starts_with("email:"));
    }
}
