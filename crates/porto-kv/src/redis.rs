//! The Redis backend: one hash per bucket.
//!
//! A bucket is the hash `porto:{namespace}:{bucket}` and a key is a field
//! of it, so isolation needs no key escaping: no field of one hash can be
//! reached through another. Counters use `HINCRBY` on decimal text (what
//! `get` then reads); compare-and-swap is a Lua script, atomic on the
//! server. Connections come from a deadpool pool shared by all instances;
//! every operation has a deadline, so an unreachable server is a fast
//! error, and the pool reconnects by itself when the server returns.

use std::num::NonZeroUsize;

use async_trait::async_trait;
use deadpool_redis::{Config, Pool, PoolConfig, Runtime, Timeouts};
use redis::{AsyncCommands, Script};

use crate::network::{OP_TIMEOUT, batch, within_deadline};
use crate::{ConnectError, KeyPage, KvBackend, KvError};

const LIST_PAGE: usize = 1000;

/// `ARGV[1]` field, `ARGV[2]` "1" if a value is expected, `ARGV[3]` the
/// expected value, `ARGV[4]` the new value. Returns 1 if it swapped.
const CAS_SCRIPT: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  if current ~= ARGV[3] then return 0 end
elseif current then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
return 1
";

pub struct RedisBackend {
    pool: Pool,
    prefix: String,
    cas: Script,
}

impl RedisBackend {
    /// A pool of at most `pool_size` connections to `url` (no `namespace`
    /// parameter); connects lazily, so an unreachable server shows on the
    /// first operation.
    pub fn connect(
        url: &str,
        namespace: &str,
        pool_size: NonZeroUsize,
    ) -> Result<Self, ConnectError> {
        let mut config = Config::from_url(url);
        config.pool = Some(PoolConfig {
            max_size: pool_size.get(),
            timeouts: Timeouts {
                wait: Some(OP_TIMEOUT),
                create: Some(OP_TIMEOUT),
                recycle: Some(OP_TIMEOUT),
            },
            ..PoolConfig::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| ConnectError::server("redis", url, e))?;
        Ok(Self {
            pool,
            prefix: format!("porto:{namespace}:"),
            cas: Script::new(CAS_SCRIPT),
        })
    }

    fn hash(&self, bucket: &str) -> String {
        format!("{}{bucket}", self.prefix)
    }

    async fn connection(&self) -> Result<deadpool_redis::Connection, KvError> {
        self.pool
            .get()
            .await
            .map_err(|e| KvError::Unavailable(format!("redis: {e}")))
    }
}

fn failed(err: redis::RedisError) -> KvError {
    KvError::Unavailable(format!("redis: {err}"))
}

#[async_trait]
impl KvBackend for RedisBackend {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        within_deadline("redis", async {
            self.connection()
                .await?
                .hget(self.hash(bucket), key)
                .await
                .map_err(failed)
        })
        .await
    }

    async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        within_deadline("redis", async {
            let _: i64 = self
                .connection()
                .await?
                .hset(self.hash(bucket), key, value)
                .await
                .map_err(failed)?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), KvError> {
        within_deadline("redis", async {
            let _: i64 = self
                .connection()
                .await?
                .hdel(self.hash(bucket), key)
                .await
                .map_err(failed)?;
            Ok(())
        })
        .await
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, KvError> {
        within_deadline("redis", async {
            self.connection()
                .await?
                .hexists(self.hash(bucket), key)
                .await
                .map_err(failed)
        })
        .await
    }

    async fn list_keys(&self, bucket: &str, cursor: Option<String>) -> Result<KeyPage, KvError> {
        within_deadline("redis", async {
            let start = cursor.as_deref().unwrap_or("0");
            let (next, pairs): (String, Vec<Vec<u8>>) = redis::cmd("HSCAN")
                .arg(self.hash(bucket))
                .arg(start)
                .arg("COUNT")
                .arg(LIST_PAGE)
                .query_async(&mut self.connection().await?)
                .await
                .map_err(failed)?;
            // HSCAN returns field, value, field, value…
            let keys = pairs
                .chunks(2)
                .filter_map(|pair| String::from_utf8(pair[0].clone()).ok())
                .collect();
            Ok(KeyPage {
                keys,
                cursor: (next != "0").then_some(next),
            })
        })
        .await
    }

    async fn increment(&self, bucket: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        within_deadline("redis", async {
            let result: Result<i64, redis::RedisError> = self
                .connection()
                .await?
                .hincr(self.hash(bucket), key, delta)
                .await;
            result.map_err(|e| {
                let text = e.to_string();
                if text.contains("not an integer") {
                    KvError::NotACounter {
                        key: key.to_string(),
                    }
                } else if text.contains("overflow") {
                    KvError::Overflow {
                        key: key.to_string(),
                    }
                } else {
                    failed(e)
                }
            })
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
        within_deadline("redis", async {
            let swapped: i64 = self
                .cas
                .key(self.hash(bucket))
                .arg(key)
                .arg(if expected.is_some() { "1" } else { "0" })
                .arg(expected.unwrap_or_default())
                .arg(new)
                .invoke_async(&mut self.connection().await?)
                .await
                .map_err(failed)?;
            Ok(swapped == 1)
        })
        .await
    }

    async fn get_many(
        &self,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        batch("redis", keys.is_empty(), async {
            redis::cmd("HMGET")
                .arg(self.hash(bucket))
                .arg(&keys)
                .query_async(&mut self.connection().await?)
                .await
                .map_err(failed)
        })
        .await
    }

    async fn set_many(&self, bucket: &str, entries: Vec<(String, Vec<u8>)>) -> Result<(), KvError> {
        batch("redis", entries.is_empty(), async {
            let () = self
                .connection()
                .await?
                .hset_multiple(self.hash(bucket), &entries)
                .await
                .map_err(failed)?;
            Ok(())
        })
        .await
    }

    async fn delete_many(&self, bucket: &str, keys: Vec<String>) -> Result<(), KvError> {
        batch("redis", keys.is_empty(), async {
            let _: i64 = self
                .connection()
                .await?
                .hdel(self.hash(bucket), keys)
                .await
                .map_err(failed)?;
            Ok(())
        })
        .await
    }
}

/// A store for tests: a namespace no other test or run shares.
#[cfg(test)]
pub(crate) fn test_backend() -> Option<RedisBackend> {
    let namespace = format!("t{}_{}", std::process::id(), crate::unique_suffix());
    RedisBackend::connect(
        "redis://127.0.0.1:6379",
        &namespace,
        NonZeroUsize::new(8).expect("non-zero"),
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conforms() {
        let store = super::test_backend().expect("pool");
        crate::conformance::run_all(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_fast() {
        // Nothing listens on port 1.
        let store = super::RedisBackend::connect("redis://127.0.0.1:1", "x", NonZeroUsize::MIN)
            .expect("pool");
        let started = std::time::Instant::now();
        let err = crate::KvBackend::get(&store, "b", "k")
            .await
            .expect_err("down");
        assert!(matches!(err, crate::KvError::Unavailable(_)), "{err}");
        assert!(started.elapsed() < super::OP_TIMEOUT + std::time::Duration::from_secs(1));
    }
}
