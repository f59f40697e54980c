//! The queue's Lua scripts, loaded once per connection and then invoked by SHA.

use mailroom_jobs::RedisConnection;
use redis::Script;

/// Every script a worker runs.
#[derive(Debug)]
pub(super) struct Scripts {
    pub(super) fetch: Script,
    pub(super) settle: Script,
    pub(super) heartbeat: Script,
    pub(super) requeue_dead: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Self {
            fetch: Script::new(include_str!("lua/fetch.lua")),
            settle: Script::new(include_str!("lua/settle.lua")),
            heartbeat: Script::new(include_str!("lua/heartbeat.lua")),
            requeue_dead: Script::new(include_str!("lua/requeue_dead.lua")),
        }
    }
}

impl Scripts {
    /// Loads every script so that a broken one fails at start-up, not on the first job.
    /// (`invoke_async` reloads a script by itself should Redis restart and forget it.)
    pub(super) async fn load(&self, conn: &mut RedisConnection) -> redis::RedisResult<()> {
        for script in [
            &self.fetch,
            &self.settle,
            &self.heartbeat,
            &self.requeue_dead,
        ] {
            script.prepare_invoke().load_async(conn).await?;
        }
        Ok(())
    }
}
