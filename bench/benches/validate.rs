//! Address checks without DNS: syntax and normalization, disposable, role, free provider and
//! typo suggestion, over a mix of addresses like a sign-up form sees.
//! `cargo bench --bench validate`; the README records the figure (target: 200,000 addresses/s
//! on one core).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailroom::validation::Validator;

fn addresses() -> Vec<String> {
    let domains = [
        "gmail.com",
        "outlook.com",
        "acme-widgets.co.uk",
        "bücher.example.org",
        "gmial.com",
        "hotmail.con",
        "mailinator.com",
        "mail.northwind-traders.com",
        "yahoo.fr",
        "startup.io",
    ];
    let locals = [
        "ada.lovelace",
        "grace+news",
        "support",
        "j.doe-1990",
        "Émile",
    ];
    let mut all: Vec<String> = domains
        .iter()
        .flat_map(|d| locals.iter().map(move |l| format!("{l}@{d}")))
        .collect();
    all.extend(
        [
            "not an address",
            "\"quoted\"@example.com",
            "a..b@example.com",
            "x@[192.0.2.1]",
        ]
        .map(str::to_owned),
    );
    all
}

fn validate(c: &mut Criterion) {
    let validator = Validator::default();
    let addresses = addresses();
    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Elements(addresses.len() as u64));
    group.bench_function("offline mix", |b| {
        b.iter(|| {
            for address in &addresses {
                std::hint::black_box(
                    validator
                        .offline(std::hint::black_box(address))
                        .finish_offline(),
                );
            }
        });
    });
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
