//! Sample data for every template, in each language mailroom speaks: the previews
//! (`/dev/preview`, `mailroom render`) and the tests render these. A preview in Arabic with
//! English sample sentences reads as broken punctuation, so each locale has its own words.

use serde_json::{Value, json};

/// The words of one language's samples.
struct Words {
    name: &'static str,
    title: &'static str,
    body: &'static str,
    button: &'static str,
    newsletter: &'static str,
    /// A mailing list's name.
    list: &'static str,
    first_heading: &'static str,
    first_body: &'static str,
    second_heading: &'static str,
    second_body: &'static str,
}

const ENGLISH: Words = Words {
    name: "Ada",
    title: "Your export is ready",
    body: "The CSV export you asked for is ready to download.",
    button: "Download",
    newsletter: "What's new in May",
    list: "Product news",
    first_heading: "Faster search",
    first_body: "Search results now arrive twice as fast.",
    second_heading: "Dark mode",
    second_body: "The app follows your system's colour scheme.",
};

/// The samples' words for `locale` (by its language; English for any other).
///
/// Long on purpose: a table of words per language.
fn words(locale: &str) -> &'static Words {
    const GERMAN: Words = Words {
        name: "Jonas",
        title: "Ihr Export ist fertig",
        body: "Der angeforderte CSV-Export steht zum Herunterladen bereit.",
        button: "Herunterladen",
        newsletter: "Neu im Mai",
        list: "Produktneuigkeiten",
        first_heading: "Schnellere Suche",
        first_body: "Suchergebnisse erscheinen jetzt doppelt so schnell.",
        second_heading: "Dunkelmodus",
        second_body: "Die App folgt dem Farbschema Ihres Systems.",
    };
    const SPANISH: Words = Words {
        name: "Lucía",
        title: "Tu exportación está lista",
        body: "La exportación CSV que pediste ya se puede descargar.",
        button: "Descargar",
        newsletter: "Novedades de mayo",
        list: "Novedades del producto",
        first_heading: "Búsqueda más rápida",
        first_body: "Los resultados de búsqueda llegan ahora el doble de rápido.",
        second_heading: "Modo oscuro",
        second_body: "La aplicación sigue el esquema de colores de tu sistema.",
    };
    const FRENCH: Words = Words {
        name: "Marie",
        title: "Votre export est prêt",
        body: "L’export CSV que vous avez demandé est prêt à être téléchargé.",
        button: "Télécharger",
        newsletter: "Les nouveautés de mai",
        list: "Actualités produit",
        first_heading: "Recherche plus rapide",
        first_body: "Les résultats de recherche arrivent deux fois plus vite.",
        second_heading: "Mode sombre",
        second_body: "L’application suit le thème de couleurs de votre système.",
    };
    const PORTUGUESE: Words = Words {
        name: "João",
        title: "Sua exportação está pronta",
        body: "A exportação CSV que você pediu está pronta para download.",
        button: "Baixar",
        newsletter: "Novidades de maio",
        list: "Novidades do produto",
        first_heading: "Busca mais rápida",
        first_body: "Os resultados da busca agora chegam duas vezes mais rápido.",
        second_heading: "Modo escuro",
        second_body: "O aplicativo segue o esquema de cores do seu sistema.",
    };
    const ARABIC: Words = Words {
        name: "ليلى",
        title: "ملف التصدير جاهز",
        body: "ملف CSV الذي طلبته جاهز للتنزيل.",
        button: "تنزيل",
        newsletter: "الجديد في مايو",
        list: "أخبار المنتج",
        first_heading: "بحث أسرع",
        first_body: "تصل نتائج البحث الآن بضعف السرعة.",
        second_heading: "الوضع الداكن",
        second_body: "يتبع التطبيق نظام ألوان جهازك.",
    };
    const JAPANESE: Words = Words {
        name: "花子",
        title: "エクスポートの準備ができました",
        body: "ご依頼の CSV エクスポートをダウンロードできます。",
        button: "ダウンロード",
        newsletter: "5月の新着情報",
        list: "製品ニュース",
        first_heading: "検索がより速く",
        first_body: "検索結果が2倍の速さで表示されるようになりました。",
        second_heading: "ダークモード",
        second_body: "アプリがシステムの配色に合わせて表示されます。",
    };
    match locale.split('-').next().unwrap_or_default() {
        "de" => &GERMAN,
        "es" => &SPANISH,
        "fr" => &FRENCH,
        "pt" => &PORTUGUESE,
        "ar" => &ARABIC,
        "ja" => &JAPANESE,
        _ => &ENGLISH,
    }
}

/// `(template, data)` for every template, with English words.
pub fn all() -> Vec<(&'static str, Value)> {
    all_in("en")
}

/// `(template, data)` for every template, in `locale`'s language.
pub fn all_in(locale: &str) -> Vec<(&'static str, Value)> {
    let w = words(locale);
    vec![
        (
            "verification",
            json!({"name": w.name, "link": "https://app.example.com/verify?token=abc123", "expires_in_minutes": 60}),
        ),
        (
            "welcome",
            json!({"name": w.name, "link": "https://app.example.com/start"}),
        ),
        (
            "password_reset",
            json!({"name": w.name, "link": "https://app.example.com/reset?token=xyz789", "expires_in_minutes": 30}),
        ),
        (
            "notification",
            json!({"title": w.title, "body": w.body, "button": {"label": w.button, "link": "https://app.example.com/exports/42"}}),
        ),
        (
            "newsletter",
            json!({
                "title": w.newsletter,
                "sections": [
                    {"heading": w.first_heading, "body": w.first_body, "link": "https://example.com/blog/search"},
                    {"heading": w.second_heading, "body": w.second_body}
                ],
                "unsubscribe_link": "https://app.example.com/unsubscribe?list=news&u=7"
            }),
        ),
        (
            "subscription_confirm",
            json!({"name": w.name, "list": w.list, "link": "https://app.example.com/subscribe/confirm?token=def456", "expires_in_days": 7}),
        ),
    ]
}

/// The sample data of `template`, with English words.
pub fn of(template: &str) -> Option<Value> {
    of_in(template, "en")
}

/// The sample data of `template`, in `locale`'s language.
pub fn of_in(template: &str, locale: &str) -> Option<Value> {
    all_in(locale)
        .into_iter()
        .find(|(name, _)| *name == template)
        .map(|(_, data)| data)
}
