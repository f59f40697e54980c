//! The ids that travel in jobs: a message's and a campaign's (each a UUID v7 mailroom hands out).
//!
//! On the wire and in Redis both are the UUID's hyphenated text, as before they had types.

use std::{fmt, str::FromStr};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            JsonSchema,
        )]
        #[serde(transparent)]
        // Described where it is used, as the UUID it was before it had a type.
        #[schemars(inline)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh id (time-ordered).
            pub fn fresh() -> Self {
                Self(Uuid::now_v7())
            }

            /// The UUID.
            pub fn get(self) -> Uuid {
                self.0
            }

            /// Parses a path, a token or a stored field (a UUID in any of its text forms).
            pub fn parse(text: &str) -> Option<Self> {
                Uuid::parse_str(text).ok().map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(text).map(Self)
            }
        }

        impl redis::ToRedisArgs for $name {
            fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
                out.write_arg_fmt(self.0.hyphenated());
            }
        }

        impl redis::ToSingleRedisArg for $name {}

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A message's id: also its send job's id and the key of its status record.
    MessageId
);

uuid_id!(
    /// A campaign's id.
    CampaignId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_uuid_text_on_the_wire_and_parses_back() {
        let id = CampaignId::fresh();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.get().hyphenated()));
        assert_eq!(serde_json::from_str::<CampaignId>(&json).unwrap(), id);
        assert_eq!(CampaignId::parse(&id.to_string()), Some(id));
        assert_eq!(MessageId::parse("not-an-id"), None);
        assert!(serde_json::from_str::<MessageId>("\"x\"").is_err());
    }
}
