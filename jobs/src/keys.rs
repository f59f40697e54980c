//! The Redis key schema: every key mailroom writes is named here, and nowhere else.
//!
//! Everything sits under the deployment's prefix `P` (`MAILROOM_REDIS_PREFIX`), so several
//! deployments, or parallel tests, can share one server. On Redis Cluster a script or a
//! MULTI may touch one slot only, so keys that must change together share a hash tag (the part
//! in braces, which alone decides the slot), and otherwise keys spread over the cluster: one
//! tag per queue, per message, per inbound message, per day of stats. A script may build a key
//! it learns only from what it reads (a job id popped from a list, the address a token was
//! issued for); such a key always carries the tag of the script's declared keys, so it is in
//! the same slot.
//!
//! | key | type | holds | written by |
//! |---|---|---|---|
//! | `P:{Q}:…` | | one queue, see [`QueueKeys`] | the queue scripts |
//! | `P:timeline:{ID}` | list | message ID's events, oldest first, as JSON (the newest N kept) | event script |
//! | `P:tries:{ID}` | list | the providers message ID was handed to, each with its answer (JSON, the newest 20), when one failed | send worker |
//! | `P:delivery:{ID}` | hash | recipient → `rank:status`; field `""` the message's | event script |
//! | `P:evt:seen:{ID}:…` | string | dedupe marks of events about message ID (3 days) | event script |
//! | `P:evt:uniq:{ID}:open\|click:EMAIL` | string | first open / click of ID by EMAIL | event script |
//! | `P:sgmsg:X` | string | the mailroom id of SendGrid's `X-Message-Id` X | send worker |
//! | `P:stats:{DAY}` | hash | `{counter}\|{category}` → count, for one UTC day | stats script |
//! | `P:stats:{DAY}:seen:…` | string | which events that day's counters already hold | stats script |
//! | `P:{suppressions}` + `…:index` | hash + sorted set | address → suppression record; by time | API, event scripts |
//! | `P:{verify}:t:DIGEST` | hash | a verification token's request (SHA-256 of the token) | verification scripts |
//! | `P:{verify}:used:DIGEST` | hash | a spent token's way back | verification scripts |
//! | `P:{verify}:a:EMAIL` | string | the address's live token digest | verification scripts |
//! | `P:{verify}:addr:EMAIL` | hash | `verified_at` of a verified address | verification scripts |
//! | `P:{verify}:events` | stream | `email.verified` events for consumer services | confirm script |
//! | `P:inbound` | stream | one entry per received message | inbound |
//! | `P:apikey:ID` + `P:apikeys` | hash + set | a stored API key (its digest, scopes, limits, times); their ids | keys |
//! | `P:hook:ID` + `P:hooks` | hash + set | a webhook endpoint (URL, event types, owner, secret generation); their ids | hooks |
//! | `P:hook:ID:busy` | sorted set | deliveries under way to endpoint ID: a run's token → when its hold lapses (ms) | hook worker |
//! | `P:hook:ID:log` | list | endpoint ID's delivery attempts, newest first, with the bodies for a replay (1,000, 7 days) | hook worker |
//! | `P:notices` | stream | every event of mailroom's own told to the services (webhooks' bodies), consumer group `hooks` | hooks |
//! | `P:inbound:msg:{ID}` + `P:inbound:att:{ID}:N` | string | a received message, its attachments | inbound |
//! | `P:inbound:bytes:N` / `P:inbound:over_budget` | string | inbound bytes stored per time bucket / messages over budget | inbound |
//! | `P:dns:DOMAIN` | string | a cached DNS answer for address validation | validation |
//! | `P:rl:SCOPE:DIGEST` | string | a rate-limit window | HTTP API |
//! | `P:{lists}` + `…:seq` | hash + string | list id → the list's settings (JSON); the last list id | lists API |
//! | `P:{ls:S}:…` | | subscriber shard S, see [`ShardKeys`] | list scripts |
//! | `P:{import}:ID` + `…:errors` | hash + list | an import's state and counts; its reported rows | imports |
//! | `P:{import}:recent` | sorted set | the newest imports' ids by start time (the newest 100) | imports |
//! | `P:{campaigns}` | sorted set | campaign ids by creation time (ms) | campaigns API |
//! | `P:{cp:ID}:…` | | campaign ID, see [`CampaignKeys`] | campaign scripts |
//! | `P:{thr:SCOPE}` | string | a throttle's theoretical arrival time (GCRA, µs) | campaign workers |
//! | `P:{thr:SCOPE}:slots` | sorted set | connections to a domain in use: a send's token → its lease end (µs) | campaign workers |
//! | `P:{thr:SCOPE}:hold` | string | a throttle held back until a time (a provider's 429, an SMTP 421) | campaign workers |
//! | `P:trk:{ID}` | string | the one recipient of tracked message ID, for its open and click hits | send worker |
//! | `P:{provider:NAME}:health` | hash | provider NAME's circuit: state, failures in a row and in the window, next probe, rate-limited since | workers |
//! | `P:activity:{HOUR}` | hash | `{minute}\|{provider}\|{outcome}` → hand-overs that minute (kept 2 h), for the console | workers |
//! | `P:addrmsg:DIGEST` | list | the newest message ids sent to an address (SHA-256 of its case key), for export and erasure | send worker |
//!
//! Subscribers are spread over [`SUBSCRIBER_SHARDS`] shards by a hash of their address; a
//! subscriber's record, its address index entry, its subscriptions and their history share the
//! shard's tag, so one script changes them together, and a list is the union of its per-shard
//! parts (counted and streamed shard by shard).
//!
//! Verification keeps one tag for all its keys: confirming a link spends the token, marks the
//! address and appends the event in one script, and the address is known only from the token.

/// Every key outside the queues, under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys of `queue`.
    pub fn queue(&self, queue: &str) -> QueueKeys {
        QueueKeys::new(&self.prefix, queue)
    }

    /// Message `id`'s timeline.
    pub fn timeline(&self, id: &str) -> String {
        format!("{}:timeline:{{{id}}}", self.prefix)
    }

    /// The providers message `id` was handed to, with their answers.
    pub fn tries(&self, id: &str) -> String {
        format!("{}:tries:{{{id}}}", self.prefix)
    }

    /// Provider `name`'s health, shared by every worker.
    pub fn provider_health(&self, name: &str) -> String {
        format!("{}:{{provider:{name}}}:health", self.prefix)
    }

    /// Message `id`'s delivery status per recipient.
    pub fn delivery(&self, id: &str) -> String {
        format!("{}:delivery:{{{id}}}", self.prefix)
    }

    /// The dedupe mark of an event about message `owner` (`kind`: `id` for SendGrid's event
    /// id, `k` for the event's own identity).
    pub fn event_seen(&self, owner: &str, kind: &str, key: &str) -> String {
        format!("{}:evt:seen:{{{owner}}}:{kind}:{key}", self.prefix)
    }

    /// The mark of the first `kind` (`open`, `click`) of message `owner` by `email`.
    pub fn event_unique(&self, owner: &str, kind: &str, email: &str) -> String {
        format!("{}:evt:uniq:{{{owner}}}:{kind}:{email}", self.prefix)
    }

    /// The mark of a webhook token `provider` signed, by the token's digest: a token is
    /// accepted once.
    pub fn webhook_token(&self, provider: &str, digest: &str) -> String {
        format!("{}:hook:token:{provider}:{digest}", self.prefix)
    }

    /// A stored API key (hash: its digest, scopes, limits, times), by its public id.
    pub fn api_key(&self, id: &str) -> String {
        format!("{}:apikey:{id}", self.prefix)
    }

    /// The ids of the stored API keys.
    pub fn api_keys(&self) -> String {
        format!("{}:apikeys", self.prefix)
    }

    /// A webhook endpoint of a service (hash: its URL, event types, owner, secret generation).
    pub fn hook(&self, id: &str) -> String {
        format!("{}:hook:{id}", self.prefix)
    }

    /// The deliveries' log of webhook endpoint `id` (a list, newest first).
    pub fn hook_log(&self, id: &str) -> String {
        format!("{}:hook:{id}:log", self.prefix)
    }

    /// The deliveries under way to webhook endpoint `id` (a sorted set: token → hold end).
    pub fn hook_busy(&self, id: &str) -> String {
        format!("{}:hook:{id}:busy", self.prefix)
    }

    /// The ids of the webhook endpoints.
    pub fn hooks(&self) -> String {
        format!("{}:hooks", self.prefix)
    }

    /// SendGrid's message id `provider_id` → mailroom's.
    pub fn sendgrid_message(&self, provider_id: &str) -> String {
        format!("{}:sgmsg:{provider_id}", self.prefix)
    }

    /// The counters of `day` (`YYYY-MM-DD`).
    pub fn stats(&self, day: &str) -> String {
        format!("{}:stats:{{{day}}}", self.prefix)
    }

    /// The mark that `day`'s counters hold event `key`.
    pub fn stats_seen(&self, day: &str, key: &str) -> String {
        format!("{}:stats:{{{day}}}:seen:{key}", self.prefix)
    }

    /// The suppression list (address → record).
    pub fn suppressions(&self) -> String {
        format!("{}:{{suppressions}}", self.prefix)
    }

    /// The suppression list by time of suppression.
    pub fn suppressions_index(&self) -> String {
        format!("{}:{{suppressions}}:index", self.prefix)
    }

    /// What every verification token key starts with (scripts add the digest).
    pub fn verify_token_prefix(&self) -> String {
        format!("{}:{{verify}}:t:", self.prefix)
    }

    /// A verification token's request, by the token's digest.
    pub fn verify_token(&self, digest: &str) -> String {
        format!("{}{digest}", self.verify_token_prefix())
    }

    /// A spent token's way back, by the token's digest.
    pub fn verify_used(&self, digest: &str) -> String {
        format!("{}:{{verify}}:used:{digest}", self.prefix)
    }

    /// What every live-token pointer starts with (scripts add the address's key form).
    pub fn verify_live_prefix(&self) -> String {
        format!("{}:{{verify}}:a:", self.prefix)
    }

    /// The live token of an address, by its key form.
    pub fn verify_live(&self, address_key: &str) -> String {
        format!("{}{address_key}", self.verify_live_prefix())
    }

    /// What every verified-address key starts with (scripts add the address's key form).
    pub fn verified_prefix(&self) -> String {
        format!("{}:{{verify}}:addr:", self.prefix)
    }

    /// A verified address, by its key form.
    pub fn verified(&self, address_key: &str) -> String {
        format!("{}{address_key}", self.verified_prefix())
    }

    /// The stream of `email.verified` events.
    pub fn verify_events(&self) -> String {
        format!("{}:{{verify}}:events", self.prefix)
    }

    /// The audit log: who made, changed or revoked a key, erased a subscriber, cancelled a
    /// campaign, retried dead letters, changed a suppression.
    pub fn audit(&self) -> String {
        format!("{}:audit", self.prefix)
    }

    /// The stream of every event the services hear of (the bodies webhooks carry).
    pub fn notices(&self) -> String {
        format!("{}:notices", self.prefix)
    }

    /// The stream announcing received mail.
    pub fn inbound_stream(&self) -> String {
        format!("{}:inbound", self.prefix)
    }

    /// A received message.
    pub fn inbound_message(&self, id: &str) -> String {
        format!("{}:inbound:msg:{{{id}}}", self.prefix)
    }

    /// Attachment `n` (1-based) of a received message.
    pub fn inbound_attachment(&self, id: &str, n: usize) -> String {
        format!("{}:inbound:att:{{{id}}}:{n}", self.prefix)
    }

    /// Inbound bytes stored in time bucket `n`.
    pub fn inbound_bytes(&self, n: u64) -> String {
        format!("{}:inbound:bytes:{n}", self.prefix)
    }

    /// How many messages arrived past the inbound budget.
    pub fn inbound_over_budget(&self) -> String {
        format!("{}:inbound:over_budget", self.prefix)
    }

    /// A cached DNS answer for `ascii_domain`.
    pub fn dns(&self, ascii_domain: &str) -> String {
        format!("{}:dns:{ascii_domain}", self.prefix)
    }

    /// A rate-limit window of `scope` for a caller's digest.
    pub fn rate_limit(&self, scope: RateScope, digest: &str) -> String {
        format!("{}:rl:{}:{digest}", self.prefix, scope.as_str())
    }

    /// The lists (id → settings JSON).
    pub fn lists(&self) -> String {
        format!("{}:{{lists}}", self.prefix)
    }

    /// The last list id handed out.
    pub fn lists_seq(&self) -> String {
        format!("{}:{{lists}}:seq", self.prefix)
    }

    /// The keys of subscriber shard `shard` (below [`SUBSCRIBER_SHARDS`]).
    pub fn shard(&self, shard: u16) -> ShardKeys {
        ShardKeys {
            base: format!("{}:{{ls:{shard}}}", self.prefix),
        }
    }

    /// The newest message ids sent to the address whose SHA-256 digest (of its case key) is
    /// `digest`: the key does not name the address.
    pub fn address_messages(&self, digest: &str) -> String {
        format!("{}:addrmsg:{digest}", self.prefix)
    }

    /// The one recipient of tracked message `id` (its tracking links name the message only).
    pub fn tracked_recipient(&self, id: &str) -> String {
        format!("{}:trk:{{{id}}}", self.prefix)
    }

    /// An import's state and counts.
    pub fn import(&self, id: &str) -> String {
        format!("{}:{{import}}:{id}", self.prefix)
    }

    /// The newest imports' ids by start time (ms), for the console.
    pub fn recent_imports(&self) -> String {
        format!("{}:{{import}}:recent", self.prefix)
    }

    /// An import's reported rows (line and reason).
    pub fn import_errors(&self, id: &str) -> String {
        format!("{}:{{import}}:{id}:errors", self.prefix)
    }

    /// The campaigns, by creation time.
    pub fn campaigns(&self) -> String {
        format!("{}:{{campaigns}}", self.prefix)
    }

    /// The keys of campaign `id`.
    pub fn campaign(&self, id: crate::CampaignId) -> CampaignKeys {
        CampaignKeys {
            base: format!("{}:{{cp:{id}}}", self.prefix),
        }
    }

    /// Hand-overs per minute during `hour` (hours since the epoch).
    pub fn activity(&self, hour: u64) -> String {
        format!("{}:activity:{{{hour}}}", self.prefix)
    }

    /// A throttle's state.
    pub fn throttle(&self, scope: &ThrottleScope) -> String {
        format!("{}:{{thr:{scope}}}", self.prefix)
    }

    /// The connections to a domain in use, by lease end.
    pub fn throttle_slots(&self, scope: &ThrottleScope) -> String {
        format!("{}:{{thr:{scope}}}:slots", self.prefix)
    }

    /// When a throttle may send again after a provider asked it to wait.
    pub fn throttle_hold(&self, scope: &ThrottleScope) -> String {
        format!("{}:{{thr:{scope}}}:hold", self.prefix)
    }

    /// Keys an older mailroom wrote under other names, each with its name today: moved once,
    /// at start-up, on a single Redis (the `connection` module; a cluster never held them).
    pub fn renamed_since_cluster_support(&self, days: &[String]) -> Vec<(String, String)> {
        let p = &self.prefix;
        let mut moves = vec![
            (format!("{p}:suppressions"), self.suppressions()),
            (format!("{p}:suppressions:index"), self.suppressions_index()),
            (format!("{p}:events"), self.verify_events()),
        ];
        for day in days {
            moves.push((format!("{p}:stats:{day}"), self.stats(day)));
        }
        moves
    }
}

/// What a rate limit counts, per subject, in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    /// Verification emails per API key.
    VerifyKey,
    /// Verification emails per address.
    VerifyAddress,
    /// Public sign-ups per client IP.
    SubscribeIp,
    /// Public sign-ups per address.
    SubscribeAddress,
    /// Console sign-in attempts per client IP.
    ConsoleLogin,
}

impl RateScope {
    /// Its name in the key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyKey => "verify-key",
            Self::VerifyAddress => "verify-address",
            Self::SubscribeIp => "subscribe-ip",
            Self::SubscribeAddress => "subscribe-address",
            Self::ConsoleLogin => "console-login",
        }
    }
}

/// Who a campaign throttle holds back: the provider's whole account, one campaign, or one
/// receiving domain (lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleScope {
    Provider(String),
    Campaign(crate::CampaignId),
    Domain(String),
}

impl std::fmt::Display for ThrottleScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Provider(name) => write!(f, "provider:{name}"),
            Self::Campaign(id) => write!(f, "campaign:{id}"),
            Self::Domain(domain) => write!(f, "domain:{domain}"),
        }
    }
}

/// The suffix a queue record of the wrong type is renamed to (`…:malformed`): the fetch
/// script moves it aside rather than failing on it again.
pub const MALFORMED_SUFFIX: &str = ":malformed";

/// How many shards subscribers are spread over. Fixed: a subscriber's id and shard follow from
/// it, so changing it needs a migration of every subscriber.
pub const SUBSCRIBER_SHARDS: u16 = 64;

/// How many subscriber numbers share one record bucket (see [`ShardKeys::records`]).
pub const RECORDS_PER_BUCKET: u64 = 128;

/// The keys of one subscriber shard, all under the tag `{ls:S}`:
///
/// | key | type | holds |
/// |---|---|---|
/// | `P:{ls:S}:r:B` | hash | subscriber id → record, for the ids of bucket B (id ÷ (shards × [`RECORDS_PER_BUCKET`])) |
/// | `P:{ls:S}:email` | hash | address (case key) → subscriber id |
/// | `P:{ls:S}:seq` | string | the shard's last subscriber number |
/// | `P:{ls:S}:l:L` | hash | subscriber id → `status\|unix time\|source` of its subscription to list L |
/// | `P:{ls:S}:n:L` | hash | list L's subscriptions in this shard, counted per status |
/// | `P:{ls:S}:h:ID` | list | subscriber ID's superseded subscription states, newest first (bounded) |
#[derive(Debug, Clone)]
pub struct ShardKeys {
    base: String,
}

impl ShardKeys {
    /// The record bucket that holds subscriber `id`. Buckets rather than one hash per shard:
    /// a segment reads a bucket whole (`HVALS`, about half the work of `HSCAN` for Redis and no
    /// ids to send back), and a bucket is small enough that reading it never stalls Redis.
    pub fn records_of(&self, id: u64) -> String {
        self.records(bucket_of(id))
    }

    /// Record bucket `bucket`.
    pub fn records(&self, bucket: u64) -> String {
        format!("{}{bucket}", self.records_prefix())
    }

    /// What every record bucket key starts with (scripts add the bucket number).
    pub fn records_prefix(&self) -> String {
        format!("{}:r:", self.base)
    }

    /// The address index.
    pub fn emails(&self) -> String {
        format!("{}:email", self.base)
    }

    /// The subscriber number sequence.
    pub fn seq(&self) -> String {
        format!("{}:seq", self.base)
    }

    /// List `list`'s subscriptions in this shard.
    pub fn members(&self, list: u64) -> String {
        format!("{}:l:{list}", self.base)
    }

    /// List `list`'s counts per status in this shard.
    pub fn counts(&self, list: u64) -> String {
        format!("{}:n:{list}", self.base)
    }

    /// What every history key starts with (scripts add the subscriber id).
    pub fn history_prefix(&self) -> String {
        format!("{}:h:", self.base)
    }

    /// Subscriber `id`'s subscription history.
    pub fn history(&self, id: u64) -> String {
        format!("{}{id}", self.history_prefix())
    }
}

/// The keys of one campaign, all under the tag `{cp:ID}`:
///
/// | key | type | holds |
/// |---|---|---|
/// | `P:{cp:ID}` | hash | `spec` (the campaign as created, JSON), `state`, `run`, times, `audience` and the counters |
/// | `P:{cp:ID}:snap` | string | the audience: subscriber ids, 8 bytes each (little-endian), in send order |
/// | `P:{cp:ID}:done` | bitmap | bit N: recipient N (ordinal in the snapshot) is sent, skipped or failed |
/// | `P:{cp:ID}:try` | bitmap | bit N: recipient N's hand-over began (a crash leaves it set without `done`) |
/// | `P:{cp:ID}:why` | hash | `outcome:reason` → how many recipients were skipped or failed for it (bounded) |
#[derive(Debug, Clone)]
pub struct CampaignKeys {
    base: String,
}

impl CampaignKeys {
    /// The campaign's state and counters.
    pub fn state(&self) -> String {
        self.base.clone()
    }

    /// The audience snapshot.
    pub fn snapshot(&self) -> String {
        format!("{}:snap", self.base)
    }

    /// The recipients finished with.
    pub fn done(&self) -> String {
        format!("{}:done", self.base)
    }

    /// The recipients whose hand-over began.
    pub fn tried(&self) -> String {
        format!("{}:try", self.base)
    }

    /// Skip and failure reasons, counted.
    pub fn reasons(&self) -> String {
        format!("{}:why", self.base)
    }

    /// Every key of the campaign.
    pub fn all(&self) -> [String; 5] {
        [
            self.state(),
            self.snapshot(),
            self.done(),
            self.tried(),
            self.reasons(),
        ]
    }
}

/// How many subscriber ids one record bucket spans (ids of all shards interleave).
pub const BUCKET_SPAN: u64 = SUBSCRIBER_SHARDS as u64 * RECORDS_PER_BUCKET;

/// The record bucket of subscriber `id`: its number (id ÷ shards) ÷ [`RECORDS_PER_BUCKET`].
pub fn bucket_of(id: u64) -> u64 {
    id / BUCKET_SPAN
}

/// The keys of one queue. Every key of a queue carries the hash tag `{queue}` so that, on
/// Redis Cluster, all of them live in one slot and each queue script touches a single slot:
///
/// | key | type | holds |
/// |---|---|---|
/// | `P:{Q}:job:ID` | hash | one job: `payload`, `attempts`, `max_attempts`, `state`, times, errors, the handler's `output` |
/// | `P:{Q}:ready` | list | ids ready to run; producers `LPUSH`, workers pop from the right |
/// | `P:{Q}:delayed` | sorted set | ids waiting for a run-at time or a retry, scored by due time (ms) |
/// | `P:{Q}:inflight` | sorted set | ids leased to a worker, scored by lease deadline (ms) |
/// | `P:{Q}:dead` | sorted set | dead-lettered ids, scored by when they died (ms) |
/// | `P:{Q}:signal` | list | wake-up tokens that idle workers block on (at most 64) |
/// | `P:{Q}:idem:KEY` | string | first job id pushed with an idempotency key, expiring with its window |
/// | `P:{Q}:workers` | sorted set | live worker names, scored by last heartbeat (ms) |
/// | `P:{Q}:counts` | hash | running totals: `done`, `retried`, `dead` |
#[derive(Debug, Clone)]
pub struct QueueKeys {
    base: String,
    queue: String,
}

impl QueueKeys {
    /// Keys of `queue` under `prefix` (for example `mailroom` and `noop`).
    pub fn new(prefix: &str, queue: &str) -> Self {
        Self {
            base: format!("{prefix}:{{{queue}}}"),
            queue: queue.to_owned(),
        }
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The common beginning of every key of this queue, `P:{Q}`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The hash holding job `id`.
    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{id}", self.base)
    }

    /// What [`QueueKeys::job`] puts before the id; scripts build job keys from it.
    pub fn job_prefix(&self) -> String {
        format!("{}:job:", self.base)
    }

    /// The list of ids ready to run.
    pub fn ready(&self) -> String {
        format!("{}:ready", self.base)
    }

    /// The sorted set of ids waiting for their due time.
    pub fn delayed(&self) -> String {
        format!("{}:delayed", self.base)
    }

    /// The sorted set of leased ids, by lease deadline.
    pub fn inflight(&self) -> String {
        format!("{}:inflight", self.base)
    }

    /// The sorted set of dead-lettered ids, by time of death.
    pub fn dead(&self) -> String {
        format!("{}:dead", self.base)
    }

    /// The wake-up list idle workers block on.
    pub fn signal(&self) -> String {
        format!("{}:signal", self.base)
    }

    /// The key remembering the first job pushed with idempotency key `key`.
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}:idem:{key}", self.base)
    }

    /// What the keys of an owner's push limits (`rate:OWNER`, `day:OWNER:DAY`) begin with:
    /// in the queue's slot, so the push script takes them in the same call.
    pub fn limits_prefix(&self) -> String {
        format!("{}:lim:", self.base)
    }

    /// The sorted set of live workers, by last heartbeat.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.base)
    }

    /// The hash of running totals.
    pub fn counts(&self) -> String {
        format!("{}:counts", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    fn same_slot(keys: &[String]) -> bool {
        keys.iter()
            .all(|k| Slot::for_key(k) == Slot::for_key(&keys[0]))
    }

    #[test]
    fn keys_one_script_changes_together_share_a_slot() {
        let keys = Keys::new("mr");
        let message = [
            keys.timeline("m1"),
            keys.delivery("m1"),
            keys.tries("m1"),
            keys.event_seen("m1", "id", "sg1"),
            keys.event_seen("m1", "k", "m1|open|1|a@x"),
            keys.event_unique("m1", "open", "a@x"),
        ];
        let day = [
            keys.stats("2026-11-29"),
            keys.stats_seen("2026-11-29", "id:sg1"),
        ];
        let suppressions = [keys.suppressions(), keys.suppressions_index()];
        let verification = [
            keys.verify_token("d1"),
            keys.verify_used("d1"),
            keys.verify_live("a@x"),
            keys.verified("b@y"),
            keys.verify_events(),
        ];
        let inbound = [keys.inbound_message("i1"), keys.inbound_attachment("i1", 3)];
        let shard = keys.shard(7);
        let shard = [
            shard.records_of(7 + 64 * 9),
            shard.emails(),
            shard.seq(),
            shard.members(3),
            shard.counts(3),
            shard.history(7 + 64 * 9),
        ];
        let lists = [keys.lists(), keys.lists_seq()];
        let import = [keys.import("x"), keys.import_errors("x")];
        let campaign = keys.campaign(crate::CampaignId::fresh()).all();
        for group in [
            &message[..],
            &day,
            &suppressions,
            &verification,
            &inbound,
            &shard,
            &lists,
            &import,
            &campaign,
        ] {
            assert!(same_slot(group), "{group:?}");
        }
    }

    #[test]
    fn messages_days_and_inbound_mail_spread_over_the_slots() {
        let keys = Keys::new("mr");
        let slots = |make: &dyn Fn(usize) -> String| {
            let mut slots: Vec<Slot> = (0..50).map(|i| Slot::for_key(make(i))).collect();
            slots.sort_by_key(|s| format!("{s:?}"));
            slots.dedup();
            slots.len()
        };
        assert!(slots(&|i| keys.timeline(&format!("0190-{i}"))) > 40);
        assert!(slots(&|i| keys.inbound_message(&format!("in-{i}"))) > 40);
        assert!(slots(&|i| keys.stats(&format!("2026-01-{i:02}"))) > 40);
        assert!(slots(&|i| keys.queue(&format!("q{i}")).ready()) > 40);
        assert!(slots(&|i| keys.shard(u16::try_from(i).unwrap()).records(0)) > 40);
    }

    #[test]
    fn every_key_shares_the_queue_hash_tag_and_prefix() {
        let keys = QueueKeys::new("mr-test", "email");
        for key in [
            keys.job("0190"),
            keys.ready(),
            keys.delayed(),
            keys.inflight(),
            keys.dead(),
            keys.signal(),
            keys.idempotency("k"),
            keys.workers(),
            keys.counts(),
        ] {
            assert!(key.starts_with("mr-test:{email}:"), "{key}");
        }
    }
}
