//! The PostgreSQL backend: one table, `(bucket, key)` as its primary key.
//!
//! Bucket and key are `bytea` (text columns cannot hold NUL, which a key
//! may contain) and ordered bytewise, so `list-keys` pages by key. Every
//! operation is one statement, atomic on its own: `INSERT … ON CONFLICT`
//! for set and increment, a conditional `UPDATE`/`INSERT … DO NOTHING` for
//! compare-and-swap, `unnest` for batches. Counters are decimal text, as
//! in every backend. Connections come from a deadpool pool; each
//! operation has a deadline, and broken connections are replaced when the
//! server is back.

use std::num::NonZeroUsize;
use std::str::FromStr;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::network::{OP_TIMEOUT, batch, within_deadline};
use crate::{ConnectError, KeyPage, KvBackend, KvError};

const LIST_PAGE: i64 = 1000;

pub struct PostgresBackend {
    pool: Pool,
    table: String,
}

fn failed(err: impl std::fmt::Display) -> KvError {
    KvError::Unavailable(format!("postgres: {err}"))
}

impl PostgresBackend {
    /// Connects and creates the table if needed. `namespace` is validated
    /// by [`crate::url::split_namespace`] (`[a-z0-9_]`), so it is safe in
    /// an identifier.
    pub async fn connect(
        url: &str,
        namespace: &str,
        pool_size: NonZeroUsize,
    ) -> Result<Self, ConnectError> {
        let failed =
            |e: Box<dyn std::error::Error + Send + Sync>| ConnectError::server("postgres", url, e);
        let config = tokio_postgres::Config::from_str(url).map_err(|e| failed(e.into()))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.get())
            .timeouts(Timeouts {
                wait: Some(OP_TIMEOUT),
                create: Some(OP_TIMEOUT),
                recycle: Some(OP_TIMEOUT),
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| failed(e.into()))?;
        let table = if namespace == "default" {
            "porto_kv".to_string()
        } else {
            format!("porto_kv_{namespace}")
        };
        let backend = Self { pool, table };
        backend.create_table().await.map_err(failed)?;
        Ok(backend)
    }

    async fn create_table(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let client = self.pool.get().await?;
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {} (bucket bytea NOT NULL, key bytea NOT NULL, value bytea NOT NULL, PRIMARY KEY (bucket, key))",
            self.table
        );
        match client.batch_execute(&ddl).await {
            Ok(()) => Ok(()),
            // Two hosts creating the table at once: the other one won.
            Err(e)
                if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                    || e.code() == Some(&SqlState::DUPLICATE_TABLE) =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A pooled connection and `sql` (`{t}` standing for the table)
    /// prepared on it, from the connection's statement cache after the
    /// first time.
    async fn prepared(
        &self,
        sql: &str,
    ) -> Result<(deadpool_postgres::Client, tokio_postgres::Statement), KvError> {
        let client = self.pool.get().await.map_err(failed)?;
        let statement = client
            .prepare_cached(&sql.replace("{t}", &self.table))
            .await
            .map_err(failed)?;
        Ok((client, statement))
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, KvError> {
        let (client, statement) = self.prepared(sql).await?;
        client.query_opt(&statement, params).await.map_err(failed)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, KvError> {
        let (client, statement) = self.prepared(sql).await?;
        client.query(&statement, params).await.map_err(failed)
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, KvError> {
        let (client, statement) = self.prepared(sql).await?;
        client.execute(&statement, params).await.map_err(failed)
    }
}

#[async_trait]
impl KvBackend for PostgresBackend {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        within_deadline("postgres", async {
            let row = self
                .query_opt(
                    "SELECT value FROM {t} WHERE bucket = $1 AND key = $2",
                    &[&bucket.as_bytes(), &key.as_bytes()],
                )
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        within_deadline("postgres", async {
            self.execute(
                "INSERT INTO {t} (bucket, key, value) VALUES ($1, $2, $3) ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value",
                &[&bucket.as_bytes(), &key.as_bytes(), &value],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        within_deadline("postgres", async {
            self.execute(
                "DELETE FROM {t} WHERE bucket = $1 AND key = $2",
                &[&bucket.as_bytes(), &key.as_bytes()],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        Ok(self.get(bucket, key).await?.is_some())
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<String>) -> Result<KeyPage, KvError> {
        within_deadline("postgres", async {
            let after = cursor.unwrap_or_default();
            // A cursor of "" would skip the empty key; None starts before everything.
            let rows = self
                .query(
                    "SELECT key FROM {t} WHERE bucket = $1 AND ($3 OR key > $2) ORDER BY key LIMIT $4",
                    &[&bucket.as_bytes(), &after.as_bytes(), &after.is_empty(), &(LIST_PAGE + 1)],
                )
                .await?;
            let mut keys: Vec<String> = rows
                .iter()
                .filter_map(|r| String::from_utf8(r.get::<_, Vec<u8>>(0)).ok())
                .collect();
            let more = keys.len() > LIST_PAGE as usize;
            keys.truncate(LIST_PAGE as usize);
            let cursor = if more { keys.last().cloned() } else { None };
            Ok(KeyPage { keys, cursor })
        })
        .await
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        within_deadline("postgres", async {
            let (client, statement) = self
                .prepared(
                    "INSERT INTO {t} (bucket, key, value) VALUES ($1, $2, convert_to($3::bigint::text, 'UTF8')) \
                     ON CONFLICT (bucket, key) DO UPDATE SET value = \
                     convert_to((convert_from({t}.value, 'UTF8')::bigint + $3::bigint)::text, 'UTF8') \
                     RETURNING convert_from(value, 'UTF8')::bigint",
                )
                .await?;
            match client.query_one(&statement, &[&bucket.as_bytes(), &key.as_bytes(), &delta]).await {
                Ok(row) => Ok(row.get(0)),
                Err(e) => Err(match e.code() {
                    Some(c) if *c == SqlState::NUMERIC_VALUE_OUT_OF_RANGE => KvError::Overflow { key: key.to_string() },
                    Some(c)
                        if *c == SqlState::INVALID_TEXT_REPRESENTATION
                            || *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE =>
                    {
                        KvError::NotACounter { key: key.to_string() }
                    }
                    _ => failed(e),
                }),
            }
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool, KvError> {
        within_deadline("postgres", async {
            let changed = match expected {
                None => {
                    self.execute(
                        "INSERT INTO {t} (bucket, key, value) VALUES ($1, $2, $3) ON CONFLICT (bucket, key) DO NOTHING",
                        &[&bucket.as_bytes(), &key.as_bytes(), &new],
                    )
                    .await?
                }
                Some(expected) => {
                    self.execute(
                        "UPDATE {t} SET value = $3 WHERE bucket = $1 AND key = $2 AND value = $4",
                        &[&bucket.as_bytes(), &key.as_bytes(), &new, &expected],
                    )
                    .await?
                }
            };
            Ok(changed == 1)
        })
        .await
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        batch("postgres", keys.is_empty(), async {
            let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            let rows = self
                .query(
                    "SELECT key, value FROM {t} WHERE bucket = $1 AND key = ANY($2)",
                    &[&bucket.as_bytes(), &wanted],
                )
                .await?;
            let found: std::collections::HashMap<Vec<u8>, Vec<u8>> =
                rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
            Ok(keys
                .iter()
                .map(|k| found.get(k.as_bytes()).cloned())
                .collect())
        })
        .await
    }

    async fn set_many(&self, bucket: &str, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        batch("postgres", entries.is_empty(), async {
            let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_bytes()).collect();
            let values: Vec<&[u8]> = entries.iter().map(|(_, v)| v.as_slice()).collect();
            self.execute(
                "INSERT INTO {t} (bucket, key, value) SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS u(k, v) \
                 ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value",
                &[&bucket.as_bytes(), &keys, &values],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        batch("postgres", keys.is_empty(), async {
            let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            self.execute(
                "DELETE FROM {t} WHERE bucket = $1 AND key = ANY($2)",
                &[&bucket.as_bytes(), &keys],
            )
            .await
            .map(|_| ())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conforms() {
        let namespace = format!("t{}_{}", std::process::id(), crate::unique_suffix());
        let store = super::PostgresBackend::connect(
            "postgres://postgres@127.0.0.1:5432/test",
            &namespace,
            NonZeroUsize::new(8).expect("non-zero"),
        )
        .await
        .expect("connect to the test database");
        crate::conformance::run_all(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_fast() {
        let started = std::time::Instant::now();
        let result = super::PostgresBackend::connect(
            "postgres://postgres@127.0.0.1:1/test",
            "x",
            NonZeroUsize::new(2).expect("non-zero"),
        )
        .await;
        assert!(result.is_err());
        assert!(started.elapsed() < super::OP_TIMEOUT + std::time::Duration::from_secs(1));
    }
}
