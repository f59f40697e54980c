//! Schemas of fields whose rules come from constants elsewhere (utoipa's attributes take only
//! literals), for `#[schema(schema_with = …)]`.

use utoipa::openapi::{Object, ObjectBuilder, Type, schema::SchemaType};

use crate::{
    domain::Locale,
    lists::model::{MAX_NAME_CHARS, NAME_PATTERN},
};

/// A locale field that may be absent, null or empty (none), else [`Locale::PATTERN`].
pub(super) fn optional_locale() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(Locale::OPTIONAL_PATTERN))
        .description(Some(
            "A language tag such as `fr-CA`: a language, an optional script and an optional \
             region. Empty or null: none.",
        ))
        .build()
}

/// A person's name that may be absent or null: [`NAME_PATTERN`], at most [`MAX_NAME_CHARS`].
pub(super) fn person_name() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(NAME_PATTERN))
        .max_length(Some(MAX_NAME_CHARS))
        .description(Some(
            "The person's name: no control characters, at most 200 characters; spaces around \
             it are dropped.",
        ))
        .build()
}
