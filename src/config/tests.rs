use super::*;

#[test]
fn without_a_public_url_links_go_to_the_listen_address_on_loopback() {
    assert_eq!(local_url_of("127.0.0.1:18555"), "http://127.0.0.1:18555");
    assert_eq!(local_url_of("0.0.0.0:3000"), "http://127.0.0.1:3000");
    assert_eq!(local_url_of("[::]:3000"), "http://[::1]:3000");
    assert_eq!(local_url_of("localhost:8080"), "http://localhost:8080");
    // The default listen address gives the default that was documented before.
    assert_eq!(
        local_url_of(&Settings::default().listen),
        Settings::default().public_url
    );
}

#[test]
fn a_workers_metrics_listener_is_an_address_or_nothing() {
    let mut settings = Settings::default();
    assert_eq!(settings.metrics_address().unwrap(), None);
    settings.metrics_listen = Some(" ".to_owned());
    assert_eq!(settings.metrics_address().unwrap(), None);
    settings.metrics_listen = Some("0.0.0.0:9090".to_owned());
    assert_eq!(
        settings.metrics_address().unwrap(),
        Some("0.0.0.0:9090".parse().unwrap())
    );
    settings.metrics_listen = Some("localhost".to_owned());
    let error = settings.metrics_address().unwrap_err().to_string();
    assert!(error.contains("MAILROOM_METRICS_LISTEN"), "{error}");
}

#[test]
fn every_variable_the_configuration_page_documents_is_a_setting_and_a_typo_is_caught() {
    let documented: Vec<String> = include_str!("../../docs/configuration.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.starts_with("MAILROOM_"))
        .map(str::to_owned)
        .collect();
    assert!(documented.len() > 40, "{documented:?}");
    assert_eq!(Settings::unknown_among(documented.into_iter()), []);
    assert_eq!(
        Settings::unknown_among(
            [
                "MAILROOM_PROVDER",
                "MAILROOM_ZZZ_NOTHING",
                "PATH",
                "MAILROOM_BIN"
            ]
            .map(String::from)
            .into_iter()
        ),
        [
            (
                "MAILROOM_PROVDER".to_owned(),
                Some("MAILROOM_PROVIDER".to_owned())
            ),
            ("MAILROOM_ZZZ_NOTHING".to_owned(), None),
        ]
    );
}

#[test]
fn every_setting_is_on_the_configuration_page() {
    let page = include_str!("../../docs/configuration.md");
    let missing: Vec<String> = serde_aux::serde_introspection::serde_introspect::<Settings>()
        .iter()
        .map(|field| env_name(field))
        .filter(|name| !page.contains(&format!("`{name}`")))
        .collect();
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "document these in docs/configuration.md"
    );
}

#[test]
fn provider_and_log_format_take_any_case_and_a_wrong_one_lists_the_choices() {
    assert_eq!(
        ProviderKind::try_from("SMTP".to_owned()),
        Ok(ProviderKind::Smtp)
    );
    assert_eq!(
        ProviderKind::try_from("SendGrid".to_owned()),
        Ok(ProviderKind::Sendgrid)
    );
    assert_eq!(LogFormat::try_from("Json".to_owned()), Ok(LogFormat::Json));
    assert_eq!(
        ProviderKind::try_from("sendgird".to_owned())
            .unwrap_err()
            .to_string(),
        "`sendgird` is not a provider: use one of sendgrid, postmark, mailgun, ses, smtp, outbox"
    );
}

#[test]
fn a_setting_is_named_as_its_environment_variable() {
    assert_eq!(env_name("provider"), "MAILROOM_PROVIDER");
    assert_eq!(env_name("redis_url"), "REDIS_URL");
    assert_eq!(env_name("smtp_url"), "SMTP_URL");
}
