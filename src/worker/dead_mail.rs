//! `email.failed`: a message mailroom gave up on (its attempts used up, or a failure that no
//! retry mends) is told to the services, with what they gave it to find it by.

use std::sync::Arc;

use chrono::Utc;
use mailroom_jobs::{Job as _, QueueKeys, RedisConnection, SendEmail};

use crate::{
    domain::{EventType, Notice},
    queue::{DeadJob, OnDead},
    store::notices::Notices,
};

/// The `email` queue's [`OnDead`]: reads the dead letter's payload and owner and appends the
/// event. A failure to do so is logged; the dead letter itself is kept either way.
pub fn tell_services(conn: RedisConnection, prefix: &str) -> OnDead {
    let notices = Notices::new(conn.clone(), prefix);
    let queue = QueueKeys::new(prefix, SendEmail::QUEUE);
    OnDead(Arc::new(move |dead: DeadJob| {
        let (conn, notices, key) = (conn.clone(), notices.clone(), queue.job(&dead.id));
        Box::pin(async move {
            let told = async {
                let (owner, payload): (Option<String>, Option<String>) = redis::cmd("HMGET")
                    .arg(&key)
                    .arg(&["owner", "payload"])
                    .query_async(&mut conn.clone())
                    .await?;
                let job = payload.and_then(|p| serde_json::from_str::<SendEmail>(&p).ok());
                let owner = owner.filter(|o| !o.is_empty());
                notices.append(&[failed(&dead, job.as_ref(), owner)]).await
            };
            if let Err(error) = told.await {
                tracing::warn!(job_id = %dead.id, %error, "could not tell the services of a dead-lettered email");
            }
        })
    }))
}

fn failed(dead: &DeadJob, job: Option<&SendEmail>, owner: Option<String>) -> Notice {
    let message = job.map(|job| &job.message);
    let to: Vec<&str> = (message.iter())
        .flat_map(|m| m.to.iter().map(|mailbox| mailbox.email.as_str()))
        .collect();
    let data = serde_json::json!({
        "message_id": dead.id,
        "to": to,
        "reason": dead.reason,
        "error": dead.error,
        "categories": message.map(|m| &m.categories),
        "metadata": message.map(|m| &m.metadata),
        "key": owner,
    });
    Notice::new(EventType::EmailFailed, &dead.id, Utc::now(), owner, data)
}
