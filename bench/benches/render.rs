//! Rendering speed: subject, HTML (CSS already inlined) and text part of a typical template.
//! `cargo bench --bench render`; the README records the figure (target: 20,000 emails/s on
//! one core).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailroom::render::{Brand, Renderer, samples};
use mailroom_jobs::TemplateRef;

fn render(c: &mut Criterion) {
    let brand = Brand {
        name: "Acme".to_owned(),
        logo_url: Some("https://acme.example/logo.png".to_owned()),
        postal_address: "1 Main St, Springfield".to_owned(),
    };
    let renderer = Renderer::new(brand, "en").expect("renderer");
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    for (template, locale) in [("verification", "fr-CA"), ("newsletter", "ar")] {
        let reference = TemplateRef {
            name: template.to_owned(),
            locale: Some(locale.to_owned()),
            data: samples::of(template).expect("sample"),
        };
        group.bench_function(format!("{template}/{locale}"), |b| {
            b.iter(|| {
                renderer
                    .render(std::hint::black_box(&reference))
                    .expect("render")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
