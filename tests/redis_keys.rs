//! The key schema across versions: keys an older mailroom named without hash tags are moved
//! to their tagged names when mailroom starts, once, without losing what they hold.

mod common;

use common::TestRedis;
use mailroom::store::{StatsStore, Suppressions, migrate::rename_old_keys, stats::Filter};
use mailroom_jobs::Keys;
use redis::AsyncCommands;

#[tokio::test]
async fn keys_named_before_cluster_support_move_once_to_their_tagged_names() {
    let redis = TestRedis::new().await;
    let prefix = redis.prefix.clone();
    let keys = Keys::new(&prefix);
    let conn = redis.conn();
    if redis.is_cluster() {
        // A cluster never held the old names, and could not rename across slots.
        assert_eq!(rename_old_keys(&conn, &prefix).await.unwrap(), 0);
        return;
    }
    let mut c = redis.conn();
    let today = chrono::Utc::now().date_naive();
    let day = today.format("%Y-%m-%d").to_string();
    let record = r#"{"email":"gone@example.org","reason":"bounce","source":"sendgrid:bounce","created_at":"2026-11-01T10:00:00Z"}"#;
    let _: () = c
        .hset(format!("{prefix}:suppressions"), "gone@example.org", record)
        .await
        .unwrap();
    let _: () = c
        .zadd(
            format!("{prefix}:suppressions:index"),
            "gone@example.org",
            1,
        )
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(format!("{prefix}:events"))
        .arg("*")
        .arg("type")
        .arg("email.verified")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(format!("{prefix}:events"))
        .arg("crm")
        .arg("0")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = c
        .hset(format!("{prefix}:stats:{day}"), "delivered|", 5)
        .await
        .unwrap();

    assert_eq!(rename_old_keys(&conn, &prefix).await.unwrap(), 4);

    let suppression = Suppressions::new(conn.clone(), &prefix)
        .get("gone@example.org")
        .await
        .unwrap()
        .expect("the suppression survives the move");
    assert_eq!(suppression.source, "sendgrid:bounce");
    let indexed: Option<f64> = c
        .zscore(keys.suppressions_index(), "gone@example.org")
        .await
        .unwrap();
    assert_eq!(indexed, Some(1.0));
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(keys.verify_events())
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1, "the stream keeps its consumer group");
    let stats = StatsStore::new(conn.clone(), &prefix)
        .read(Filter::default(), today, today)
        .await
        .unwrap();
    assert_eq!(stats.totals.delivered, 5);
    let left: Vec<String> = redis
        .all_keys()
        .await
        .into_iter()
        .filter(|k| !k.contains('{'))
        .collect();
    assert!(left.is_empty(), "nothing left under an old name: {left:?}");

    // Once done, a restart moves nothing, and never writes over a key that exists.
    assert_eq!(rename_old_keys(&conn, &prefix).await.unwrap(), 0);
    let _: () = c
        .hset(
            format!("{prefix}:suppressions"),
            "stale@example.org",
            record,
        )
        .await
        .unwrap();
    assert_eq!(rename_old_keys(&conn, &prefix).await.unwrap(), 0);
    let still: Option<String> = c
        .hget(keys.suppressions(), "gone@example.org")
        .await
        .unwrap();
    assert!(still.is_some(), "the tagged list was not replaced");
}
