//! Which tracking hits are machines', not people's. The data (address ranges, user agents,
//! headers) is `machines.json`, compiled in; the rules are here:
//!
//! - **Machine open**: the image was fetched by Apple Mail Privacy Protection (from Apple's
//!   network with its bare `Mozilla/5.0` agent: it fetches every image of every message as it
//!   arrives, read or not), or by a prefetch (a `Sec-Purpose`/`Purpose`/`X-Moz: prefetch`
//!   header). Recorded on the timeline as `machine_open`, not counted as an open.
//! - **Scanner click**: a `HEAD` request, a known link scanner's or HTTP library's agent, or a
//!   click within a few seconds of the hand-over (security gateways follow every link as the
//!   message arrives). Still redirected; recorded as `scanner_click`, not counted as a click.
//!
//! Gmail's and Yahoo's image proxies fetch when the person opens the message, so their opens
//! count as opens.

use std::{net::IpAddr, sync::LazyLock};

use axum::http::{HeaderMap, Method};
use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Rules {
    open_proxies: Vec<Proxy>,
    prefetch_headers: Vec<String>,
    scanner_agents: Vec<String>,
    scanner_window_secs: i64,
}

#[derive(Debug, Deserialize)]
struct Proxy {
    name: String,
    networks: Vec<IpNet>,
    user_agents: Vec<String>,
}

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    serde_json::from_str(include_str!("machines.json"))
        .unwrap_or_else(|e| unreachable!("machines.json is checked by its test: {e}"))
});

/// Why an open image fetch was a machine's, if it was.
pub fn machine_open(headers: &HeaderMap, ip: Option<IpAddr>) -> Option<String> {
    if let Some(header) = prefetch(headers) {
        return Some(format!("prefetch ({header})"));
    }
    let agent = user_agent(headers);
    RULES
        .open_proxies
        .iter()
        .find(|proxy| {
            ip.is_some_and(|ip| proxy.networks.iter().any(|n| n.contains(&ip)))
                && proxy.user_agents.iter().any(|a| agent.trim() == a)
        })
        .map(|proxy| proxy.name.clone())
}

/// Why a click was a scanner's, if it was; `age` is seconds since the hand-over.
pub fn scanner_click(method: &Method, headers: &HeaderMap, age: i64) -> Option<String> {
    if method == Method::HEAD {
        return Some("HEAD request".to_owned());
    }
    if let Some(header) = prefetch(headers) {
        return Some(format!("prefetch ({header})"));
    }
    let agent = user_agent(headers).to_ascii_lowercase();
    if let Some(known) = RULES
        .scanner_agents
        .iter()
        .find(|a| agent.contains(a.as_str()))
    {
        return Some(format!("scanner agent ({known})"));
    }
    (age < RULES.scanner_window_secs).then(|| format!("{age} s after the hand-over"))
}

fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn prefetch(headers: &HeaderMap) -> Option<&str> {
    RULES
        .prefetch_headers
        .iter()
        .map(String::as_str)
        .find(|name| {
            headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().contains("prefetch"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn apple_privacy_protection_and_prefetches_are_machine_opens_gmail_is_a_person() {
        let apple: IpAddr = "17.58.101.7".parse().unwrap();
        let other: IpAddr = "203.0.113.9".parse().unwrap();
        let bare = headers(&[("user-agent", "Mozilla/5.0")]);
        assert_eq!(
            machine_open(&bare, Some(apple)).as_deref(),
            Some("Apple Mail Privacy Protection")
        );
        assert_eq!(machine_open(&bare, Some(other)), None);
        let mail_app = headers(&[(
            "user-agent",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        )]);
        assert_eq!(machine_open(&mail_app, Some(apple)), None);
        let gmail = headers(&[(
            "user-agent",
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        )]);
        assert_eq!(machine_open(&gmail, Some(other)), None);
        let prefetching = headers(&[("sec-purpose", "prefetch;prerender")]);
        assert!(
            machine_open(&prefetching, Some(other))
                .unwrap()
                .contains("prefetch")
        );
    }

    #[test]
    fn head_requests_scanner_agents_and_instant_clicks_are_scanners() {
        let browser = headers(&[(
            "user-agent",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15",
        )]);
        assert_eq!(scanner_click(&Method::GET, &browser, 3600), None);
        assert!(scanner_click(&Method::HEAD, &browser, 3600).is_some());
        assert!(
            scanner_click(&Method::GET, &browser, 2)
                .unwrap()
                .contains("2 s")
        );
        let scanner = headers(&[("user-agent", "Mozilla/5.0 (compatible; Barracuda Sentinel)")]);
        assert!(
            scanner_click(&Method::GET, &scanner, 3600)
                .unwrap()
                .contains("barracuda")
        );
    }

    #[test]
    fn the_rules_file_parses() {
        assert!(!RULES.open_proxies.is_empty());
        assert!(RULES.scanner_window_secs > 0);
    }
}
