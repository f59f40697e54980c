//! The OpenAPI 3.1 document, generated from the handlers and types (utoipa), served at
//! `/openapi.json`, with Swagger UI at `/docs` served from the binary (no internet needed).

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{
    campaigns, emails, error, health, hooks, imports, inbound, keys, lists, metrics,
    openapi_hooks::Webhooks, render, subscribers, suppressions, validations, verify, webhooks,
};
use crate::store;

/// Declares the API's document with the schemas listed once, and [`schema_names`] with each
/// schema's component name: a test holds them unique, so two types never share a component.
macro_rules! api_doc {
    ($($schema:ty),* $(,)?) => {
        /// The API's description.
        #[derive(Debug, OpenApi)]
        #[openapi(
            info(title = "mailroom", description = "An email microservice: queue email over HTTP; workers send it."),
            paths(emails::send, emails::send_batch, emails::status, render::render, verify::issue, verify::address, verify::clear, validations::one, validations::batch, suppressions::list, suppressions::get, suppressions::put, suppressions::delete, suppressions::stats, webhooks::sendgrid::events, webhooks::postmark::receive, webhooks::mailgun::receive, webhooks::ses::receive, inbound::receive_basic, inbound::receive_secret, inbound::list, inbound::get, inbound::attachment, health::healthz, health::readyz, metrics::metrics, lists::create, lists::index, lists::get, lists::update, lists::delete, lists::members, lists::count, subscribers::upsert, subscribers::get, subscribers::update, subscribers::set_subscription, subscribers::delete, subscribers::export, imports::create, imports::get, imports::errors, campaigns::create, campaigns::index, campaigns::get, campaigns::schedule, campaigns::pause, campaigns::resume, campaigns::cancel, campaigns::test, keys::create, keys::index, keys::get, keys::update, keys::revoke, keys::rotate, keys::audit, hooks::create, hooks::index, hooks::get, hooks::update, hooks::delete, hooks::rotate, hooks::test, hooks::replay, hooks::deliveries),
            components(schemas($($schema),*)),
            modifiers(&BearerKeys, &Scopes, &Webhooks),
            tags((name = "emails", description = "Send email and follow it"), (name = "templates", description = "Render templates"), (name = "verification", description = "Verify addresses"), (name = "lists", description = "Lists, subscribers and imports"), (name = "keys", description = "API keys: each service its own, with scopes"), (name = "webhooks", description = "Endpoints of the services, and the events POSTed to them"), (name = "health", description = "Probes"))
        )]
        pub struct ApiDoc;

        /// The component name of every schema the document lists, in order.
        #[cfg(test)]
        fn schema_names() -> Vec<String> {
            vec![$(<$schema as utoipa::ToSchema>::name().into_owned()),*]
        }
    };
}

api_doc!(
    crate::keys::Scope,
    crate::keys::KeySpec,
    crate::keys::SenderDomain,
    crate::keys::KeyRecord,
    crate::keys::Issued,
    keys::KeyIndex,
    keys::Rotation,
    keys::AuditPage,
    crate::hooks::EventType,
    crate::hooks::EndpointSpec,
    crate::hooks::log::Delivery,
    crate::hooks::replay::ReplaySpec,
    crate::hooks::replay::Replayed,
    crate::hooks::replay::TestSpec,
    crate::hooks::replay::TestSent,
    crate::hooks::Endpoint,
    crate::hooks::WithSecret,
    hooks::EndpointIndex,
    hooks::DeliveryIndex,
    crate::store::audit::AuditEntry,
    crate::store::audit::Action,
    mailroom_jobs::EmailMessage,
    mailroom_jobs::Mailbox,
    mailroom_jobs::Attachment,
    mailroom_jobs::TemplateRef,
    mailroom_jobs::email::MailboxObject,
    mailroom_jobs::email::Recipients,
    mailroom_jobs::templates::TemplateName,
    mailroom_jobs::Tracking,
    emails::Accepted,
    crate::campaigns::check::NewCampaign,
    crate::campaigns::check::CampaignTemplate,
    campaigns::ScheduleRequest,
    campaigns::TestRequest,
    campaigns::TestQueued,
    campaigns::CampaignPage,
    crate::campaigns::Campaign,
    crate::campaigns::Spec,
    crate::campaigns::Content,
    crate::campaigns::TemplateContent,
    crate::campaigns::RawContent,
    crate::campaigns::State,
    crate::campaigns::model::Engagement,
    emails::EmailBatch,
    emails::BatchAccepted,
    emails::BatchItem,
    render::RenderRequest,
    verify::VerificationRequest,
    verify::VerificationIssued,
    validations::ValidationRequest,
    validations::ValidationBatch,
    validations::BatchResults,
    crate::validation::Validation,
    crate::validation::Verdict,
    crate::validation::Checks,
    crate::validation::DnsCheck,
    crate::validation::Reason,
    suppressions::PutSuppression,
    webhooks::EventsAccepted,
    inbound::InboundAccepted,
    crate::inbound::InboundEmail,
    crate::inbound::parse::Envelope,
    crate::inbound::parse::AttachmentInfo,
    crate::inbound::store::InboundSummary,
    crate::inbound::store::InboundPage,
    crate::store::Suppression,
    crate::store::suppressions::Reason,
    crate::store::suppressions::SuppressionPage,
    crate::store::stats::Stats,
    crate::store::stats::Day,
    crate::store::stats::Counters,
    crate::store::stats::Rates,
    crate::verification::AddressStatus,
    crate::render::Rendered,
    store::StatusRecord,
    store::ProviderTry,
    store::MessageStatus,
    error::ErrorBody,
    error::ErrorDetail,
    lists::NewList,
    lists::ListChanges,
    lists::ListView,
    lists::ListIndex,
    lists::Member,
    lists::MemberPage,
    lists::CountRequest,
    crate::lists::segment::SegmentCount,
    subscribers::NewSubscriber,
    subscribers::SubscriberChanges,
    subscribers::SubscriberView,
    crate::lists::subscribe::Notice,
    subscribers::SubscriptionChangeRequest,
    subscribers::Export,
    crate::lists::List,
    crate::lists::Counts,
    crate::lists::Optin,
    crate::lists::Visibility,
    crate::lists::Subscriber,
    crate::lists::SubscriberStatus,
    crate::lists::Subscription,
    crate::lists::SubscriptionStatus,
    crate::domain::StartingStatus,
    imports::Delimiter,
    crate::lists::Source,
    crate::lists::imports::ImportStatus,
    crate::lists::imports::ImportState,
    crate::lists::imports::RowReport,
    crate::lists::imports::Totals,
);

struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "postmark_basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// Names each `/v1` operation's scope in its security requirement (`api_key: [scope]`), from
/// the same rules the API enforces ([`crate::keys::RULES`]).
struct Scopes;

impl Modify for Scopes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        for (path, item) in &mut openapi.paths.paths {
            let operations = [
                ("GET", &mut item.get),
                ("POST", &mut item.post),
                ("PUT", &mut item.put),
                ("PATCH", &mut item.patch),
                ("DELETE", &mut item.delete),
            ];
            for (method, operation) in operations {
                let (Some(operation), Some(scope)) =
                    (operation.as_mut(), crate::keys::required(method, path))
                else {
                    continue;
                };
                operation.security =
                    Some(vec![SecurityRequirement::new("api_key", [scope.as_str()])]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every `/v1` operation of the document has exactly one scope rule, names it, and every
    /// rule names an operation: a route cannot be added without deciding its scope.
    #[test]
    fn every_v1_operation_has_one_scope_rule_and_every_rule_an_operation() {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut operations = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if !path.starts_with("/v1/") {
                    continue;
                }
                let method = method.to_ascii_uppercase();
                let scope = crate::keys::required(&method, path)
                    .unwrap_or_else(|| panic!("{method} {path} has no scope rule"));
                assert_eq!(
                    operation["security"],
                    serde_json::json!([{"api_key": [scope.as_str()]}]),
                    "{method} {path}"
                );
                operations.insert((method, path.clone()));
            }
        }
        for (method, path, _) in crate::keys::RULES {
            assert!(
                operations.contains(&((*method).to_owned(), (*path).to_owned())),
                "the rule for {method} {path} names no operation"
            );
        }
    }

    #[test]
    fn every_schema_has_a_component_of_its_own_and_the_document_lists_them_all() {
        let names = schema_names();
        let unique: BTreeSet<&String> = names.iter().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "two schemas share a name: {names:?}"
        );
        // Nothing the paths use is left for utoipa to add on its own, where a name could
        // silently replace a listed one.
        let document = ApiDoc::openapi();
        let components: BTreeSet<String> = document
            .components
            .map(|c| c.schemas.into_keys().collect())
            .unwrap_or_default();
        let listed: BTreeSet<String> = names.into_iter().collect();
        assert_eq!(
            components.difference(&listed).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "components the list does not name"
        );
    }
}
