//! `mailroom keys`: the same as `/v1/keys`, from a shell with the deployment's settings.

use clap::Subcommand;

use super::{ApiKeyStore, DEFAULT_GRACE_SECS, KeyRecord, KeySpec, Scope};
use crate::config::Settings;
use crate::store::audit::{Action, AuditLog};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key; it is printed once.
    Create {
        /// What it is for.
        #[arg(long)]
        name: String,
        /// A scope it has (repeat for more): emails:send, emails:read, emails:read_all,
        /// verifications, validations, lists:read, lists:write, subscribers:erase, campaigns,
        /// suppressions, webhooks, keys, console.
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// A domain it may send from (repeat for more; none: any).
        #[arg(long = "from-domain")]
        from_domains: Vec<String>,
        /// Messages a second it may queue.
        #[arg(long)]
        rate_per_second: Option<u32>,
        /// Messages a UTC day it may queue.
        #[arg(long)]
        daily_quota: Option<u64>,
    },
    /// The keys, without their secrets.
    List,
    /// Revoke a key everywhere (within a second).
    Revoke { id: String },
    /// Give a key a new secret; the old one works for the grace period.
    Rotate {
        id: String,
        /// Seconds the old secret keeps working.
        #[arg(long, default_value_t = DEFAULT_GRACE_SECS)]
        grace_secs: u64,
    },
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    Scope::parse(text).ok_or_else(|| {
        let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        format!("not a scope; use one of {}", all.join(", "))
    })
}

/// Runs a `mailroom keys` command, printing to stdout.
///
/// # Errors
/// When Redis does not answer, or the key is not valid or not there.
pub async fn run(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    let conn = settings.redis_connection().await?;
    let keys = ApiKeyStore::new(conn.clone(), &settings.redis_prefix);
    let audit = AuditLog::new(conn, &settings.redis_prefix);
    match command {
        KeysCommand::Create {
            name,
            scopes,
            from_domains,
            rate_per_second,
            daily_quota,
        } => {
            let spec = KeySpec {
                name: Some(name),
                scopes: Some(scopes),
                from_domains: (!from_domains.is_empty())
                    .then(|| from_domains.into_iter().map(super::SenderDomain).collect()),
                rate_per_second,
                daily_quota,
                expires_at: None,
            };
            let issued = keys.create(spec, "cli").await?;
            audit
                .record("cli", Action::KeyCreated, &issued.record.id)
                .await;
            print_key(&issued.record);
            println!("key: {}", issued.key);
            println!("(shown only now: give it to the service and keep it secret)");
        }
        KeysCommand::List => {
            let all = keys.list().await?;
            if all.is_empty() {
                println!("no stored keys (operator keys of MAILROOM_API_KEYS are not listed)");
            }
            all.iter().for_each(print_key);
        }
        KeysCommand::Revoke { id } => {
            keys.revoke(&id).await?;
            audit.record("cli", Action::KeyRevoked, &id).await;
            println!("revoked {id}");
        }
        KeysCommand::Rotate { id, grace_secs } => {
            let issued = keys.rotate(&id, grace_secs).await?;
            audit.record("cli", Action::KeyRotated, &id).await;
            print_key(&issued.record);
            println!("key: {}", issued.key);
            println!("(the old secret works for {grace_secs} s more)");
        }
    }
    Ok(())
}

fn print_key(key: &KeyRecord) {
    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
    let used = key
        .last_used_at
        .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
    println!(
        "{}  {}  scopes: {}  created {} by {}  last used {}",
        key.id,
        key.name,
        scopes.join(" "),
        key.created_at.to_rfc3339(),
        key.created_by,
        used
    );
}
