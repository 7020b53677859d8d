//! One behavioural suite every [`KvBackend`] must pass.
//!
//! Backends differ in how they store things, never in what a guest can
//! observe; each backend's test module calls [`run_all`] on a fresh store.

use std::collections::HashSet;
use std::sync::Arc;

use crate::{KvBackend, KvError};

pub async fn run_all(store: Arc<dyn KvBackend>) {
    get_set_delete_exists(&*store).await;
    buckets_are_isolated_whatever_the_key(&*store).await;
    increment_counts_and_refuses_garbage(&*store).await;
    compare_and_swap_semantics(&*store).await;
    batch_operations(&*store).await;
    list_keys_pages_through_everything(&*store).await;
    concurrent_increments_lose_nothing(store.clone()).await;
    concurrent_cas_admits_one_winner(store.clone()).await;
    a_failing_operation_fails_alone(store.clone()).await;
    increments_and_cas_races_interleave(store.clone()).await;
}

async fn get_set_delete_exists(s: &dyn KvBackend) {
    assert_eq!(s.get("b", "k").await.ok(), Some(None));
    assert_eq!(s.exists("b", "k").await.ok(), Some(false));
    s.set("b", "k", b"v1".to_vec()).await.expect("set");
    assert_eq!(s.get("b", "k").await.ok(), Some(Some(b"v1".to_vec())));
    assert_eq!(s.exists("b", "k").await.ok(), Some(true));
    s.set("b", "k", Vec::new())
        .await
        .expect("overwrite with empty");
    assert_eq!(
        s.get("b", "k").await.ok(),
        Some(Some(Vec::new())),
        "empty values exist"
    );
    s.delete("b", "k").await.expect("delete");
    assert_eq!(s.get("b", "k").await.ok(), Some(None));
    s.delete("b", "k")
        .await
        .expect("deleting an absent key is not an error");
}

async fn buckets_are_isolated_whatever_the_key(s: &dyn KvBackend) {
    let keys = [
        "",
        ":",
        "a:b",
        "users:1",
        "ü/ñ\u{0}x",
        "\u{1F600}",
        "b\u{0}k",
        "%",
        "*",
        "'; DROP TABLE kv; --",
    ];
    for (i, key) in keys.iter().enumerate() {
        s.set("iso-a", key, vec![i as u8]).await.expect("set a");
    }
    for key in keys {
        assert_eq!(
            s.get("iso-b", key).await.ok(),
            Some(None),
            "{key:?} leaked into iso-b"
        );
        assert_eq!(
            s.get("iso-a:", key).await.ok(),
            Some(None),
            "{key:?} leaked via a prefix bucket"
        );
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            s.get("iso-a", key).await.ok(),
            Some(Some(vec![i as u8])),
            "{key:?}"
        );
    }
    let listed: HashSet<String> = s
        .list_keys("iso-a", None)
        .await
        .expect("list")
        .keys
        .into_iter()
        .collect();
    assert_eq!(listed, keys.iter().map(|k| k.to_string()).collect());
    assert!(
        s.list_keys("iso-b", None)
            .await
            .expect("list")
            .keys
            .is_empty()
    );
}

async fn increment_counts_and_refuses_garbage(s: &dyn KvBackend) {
    assert_eq!(s.increment("c", "n", 1).await.ok(), Some(1));
    assert_eq!(s.increment("c", "n", 41).await.ok(), Some(42));
    assert_eq!(
        s.increment("c", "n", 0).await.ok(),
        Some(42),
        "0 reads the counter"
    );
    assert_eq!(s.increment("c", "n", -50).await.ok(), Some(-8));
    s.set("c", "text", b"hello".to_vec()).await.expect("set");
    assert!(s.increment("c", "text", 1).await.is_err());
    s.set("c", "max", i64::MAX.to_string().into_bytes())
        .await
        .expect("set");
    assert!(s.increment("c", "max", 1).await.is_err());
}

async fn compare_and_swap_semantics(s: &dyn KvBackend) {
    assert_eq!(
        s.compare_and_swap("x", "k", None, b"a".to_vec()).await.ok(),
        Some(true),
        "create if absent"
    );
    assert_eq!(
        s.compare_and_swap("x", "k", None, b"b".to_vec()).await.ok(),
        Some(false),
        "exists now"
    );
    assert_eq!(
        s.compare_and_swap("x", "k", Some(b"z".to_vec()), b"b".to_vec())
            .await
            .ok(),
        Some(false)
    );
    assert_eq!(
        s.compare_and_swap("x", "k", Some(b"a".to_vec()), b"b".to_vec())
            .await
            .ok(),
        Some(true)
    );
    assert_eq!(s.get("x", "k").await.ok(), Some(Some(b"b".to_vec())));
    assert_eq!(
        s.compare_and_swap("y", "k", Some(b"b".to_vec()), b"c".to_vec())
            .await
            .ok(),
        Some(false),
        "other bucket"
    );
}

async fn batch_operations(s: &dyn KvBackend) {
    let entries = vec![
        ("1".to_string(), b"one".to_vec()),
        ("2".to_string(), b"two".to_vec()),
    ];
    s.set_many("m", entries).await.expect("set_many");
    let got = s
        .get_many("m", vec!["2".into(), "3".into(), "1".into()])
        .await
        .expect("get_many");
    assert_eq!(
        got,
        vec![Some(b"two".to_vec()), None, Some(b"one".to_vec())],
        "in request order"
    );
    assert_eq!(s.get_many("m", Vec::new()).await.ok(), Some(Vec::new()));
    s.delete_many("m", vec!["1".into(), "missing".into()])
        .await
        .expect("delete_many");
    assert_eq!(s.get("m", "1").await.ok(), Some(None));
    assert_eq!(s.get("m", "2").await.ok(), Some(Some(b"two".to_vec())));
}

async fn list_keys_pages_through_everything(s: &dyn KvBackend) {
    let expected: HashSet<String> = (0..2500).map(|i| format!("key-{i:05}")).collect();
    let entries: Vec<(String, Vec<u8>)> =
        expected.iter().map(|k| (k.clone(), Vec::new())).collect();
    s.set_many("list", entries).await.expect("set_many");
    let mut seen = HashSet::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = s.list_keys("list", cursor).await.expect("list");
        pages += 1;
        for key in page.keys {
            assert!(seen.insert(key), "a key was listed twice");
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 100, "cursor does not advance");
    }
    assert_eq!(seen, expected);
}

async fn concurrent_increments_lose_nothing(s: Arc<dyn KvBackend>) {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut values = Vec::new();
                for _ in 0..25 {
                    values.push(s.increment("race", "counter", 1).await.expect("increment"));
                }
                values
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        400,
        "every increment returned a distinct value"
    );
    assert_eq!(s.increment("race", "counter", 0).await.ok(), Some(400));
}

async fn concurrent_cas_admits_one_winner(s: Arc<dyn KvBackend>) {
    // Many writers race to create one key; then to bump a versioned value.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.compare_and_swap("race", "claim", None, vec![i])
                    .await
                    .expect("cas")
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.expect("task"));
    }
    assert_eq!(winners, 1);

    s.set("race", "version", b"0".to_vec()).await.expect("set");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    loop {
                        let seen = s.get("race", "version").await.expect("get");
                        let n: u64 = std::str::from_utf8(seen.as_deref().unwrap_or(b"0"))
                            .ok()
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0);
                        let next = (n + 1).to_string().into_bytes();
                        if s.compare_and_swap("race", "version", seen, next)
                            .await
                            .expect("cas")
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(
        s.get("race", "version").await.ok(),
        Some(Some(b"80".to_vec())),
        "no lost update"
    );
}

/// Operations that fail on their own terms, racing with ones that succeed
/// (a store that commits several operations together must not fail or
/// undo the batch-mates of a failed one).
async fn a_failing_operation_fails_alone(s: Arc<dyn KvBackend>) {
    s.set("alone", "garbage", b"not a number".to_vec())
        .await
        .expect("set");
    let tasks: Vec<_> = (0..48u8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                match i % 3 {
                    0 => assert!(matches!(
                        s.increment("alone", "garbage", 1).await,
                        Err(KvError::NotACounter { .. })
                    )),
                    1 => assert_eq!(
                        s.compare_and_swap("alone", "garbage", Some(b"other".to_vec()), vec![i])
                            .await
                            .ok(),
                        Some(false)
                    ),
                    _ => s
                        .set("alone", &format!("kept-{i}"), vec![i])
                        .await
                        .expect("set beside failing operations"),
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    for i in (0..48u8).filter(|i| i % 3 == 2) {
        assert_eq!(
            s.get("alone", &format!("kept-{i}")).await.ok(),
            Some(Some(vec![i]))
        );
    }
    assert_eq!(
        s.get("alone", "garbage").await.ok(),
        Some(Some(b"not a number".to_vec()))
    );
}

/// Increments and CAS races on the same keys at once, as concurrent
/// creates make them (an id counter and address claims): a store that
/// batches writes must keep both linearisable together.
async fn increments_and_cas_races_interleave(s: Arc<dyn KvBackend>) {
    const TASKS: u8 = 24;
    const RACES: u8 = 10;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut won = Vec::new();
                for race in 0..RACES {
                    s.increment("mixed", "counter", 1).await.expect("increment");
                    let claim = format!("claim-{race}");
                    if s.compare_and_swap("mixed", &claim, None, vec![task])
                        .await
                        .expect("cas")
                    {
                        won.push(race);
                    }
                    s.increment("mixed", &format!("seen-{race}"), 1)
                        .await
                        .expect("increment");
                }
                (task, won)
            })
        })
        .collect();
    let mut winners = std::collections::BTreeMap::new();
    for t in tasks {
        let (task, won) = t.await.expect("task");
        for race in won {
            assert!(
                winners.insert(race, task).is_none(),
                "two winners of race {race}"
            );
        }
    }
    assert_eq!(winners.len(), usize::from(RACES), "a race without a winner");
    for (race, task) in winners {
        assert_eq!(
            s.get("mixed", &format!("claim-{race}")).await.ok(),
            Some(Some(vec![task])),
            "race {race} stored another value than its winner's"
        );
        assert_eq!(
            s.increment("mixed", &format!("seen-{race}"), 0).await.ok(),
            Some(i64::from(TASKS))
        );
    }
    assert_eq!(
        s.increment("mixed", "counter", 0).await.ok(),
        Some(i64::from(TASKS) * i64::from(RACES))
    );
}
