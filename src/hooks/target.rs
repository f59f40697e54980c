//! Where an endpoint may point. A URL is checked when it is registered (scheme, no
//! credentials, an address literal that is not private); the address its name resolves to is
//! checked at every connection by [`GuardedResolver`], so a name that later resolves to a
//! private address (DNS rebinding) reaches nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest URL an endpoint may have.
pub const MAX_URL: usize = 2000;

/// What the operator lets endpoints reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    /// `MAILROOM_WEBHOOKS_ALLOW_HTTP`.
    pub http: bool,
    /// `MAILROOM_WEBHOOKS_ALLOW_PRIVATE`.
    pub private: bool,
}

/// Why an address may not be reached, if it may not: loopback, private, link-local (the cloud
/// metadata address among them), shared, multicast or otherwise not a public unicast address.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_private() {
        "a private address"
    } else if ip.is_link_local() {
        "a link-local address (the cloud metadata service among them)"
    } else if a == 100 && (64..128).contains(&b) {
        "a shared (carrier-grade NAT) address"
    } else if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || a == 0 || a >= 240 {
        "not a unicast address"
    } else {
        return None;
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unique_local() {
        "a private (unique local) address"
    } else if ip.is_unicast_link_local() {
        "a link-local address"
    } else if ip.is_unspecified() || ip.is_multicast() {
        "not a unicast address"
    } else if first == 0x64 && ip.segments()[1] == 0xff9b {
        // NAT64 embeds an IPv4 address: judge that one.
        let [.., c, d] = ip.segments();
        let v4 = Ipv4Addr::from((u32::from(c) << 16) | u32::from(d));
        return forbidden_v4(v4);
    } else {
        return None;
    })
}

/// The URL of an endpoint, checked as it is registered.
///
/// # Errors
/// Why it may not be one, for the API's answer.
pub fn check_url(text: &str, reach: Reach) -> Result<url::Url, String> {
    if text.len() > MAX_URL {
        return Err(format!("at most {MAX_URL} characters"));
    }
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if reach.http => {}
        "http" => {
            return Err("must be https:// (MAILROOM_WEBHOOKS_ALLOW_HTTP allows http://)".into());
        }
        other => return Err(format!("must be https://, not {other}://")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials: the signature proves who sends".into());
    }
    let ip = match url.host() {
        None => return Err("must name a host".into()),
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
    };
    if let Some(why) = ip.and_then(forbidden).filter(|_| !reach.private) {
        return Err(format!(
            "points at {why} (MAILROOM_WEBHOOKS_ALLOW_PRIVATE allows it)"
        ));
    }
    Ok(url)
}

/// Resolves names for the delivery client and keeps only the addresses endpoints may reach:
/// a name with none left fails to connect, naming why.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub reach: Reach,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let private = self.reach.private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut why = "no address";
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match forbidden(addr.ip()).filter(|_| !private) {
                    Some(reason) => {
                        why = reason;
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to {why}: not reached").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused_and_public_ones_pass() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "::",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(forbidden(ip).is_some(), "{refused}");
        }
        for allowed in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "64:ff9b::101:101",
        ] {
            let ip: IpAddr = allowed.parse().unwrap();
            assert_eq!(forbidden(ip), None, "{allowed}");
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_not_reached_without_the_setting() {
        use reqwest::dns::Resolve as _;
        let name = |text: &str| text.parse::<reqwest::dns::Name>().unwrap();
        let strict = GuardedResolver {
            reach: Reach::default(),
        };
        match strict.resolve(name("localhost")).await {
            Ok(_) => panic!("localhost was let through"),
            Err(error) => assert!(error.to_string().contains("loopback"), "{error}"),
        }
        let open = GuardedResolver {
            reach: Reach {
                http: true,
                private: true,
            },
        };
        let found: Vec<SocketAddr> = match open.resolve(name("localhost")).await {
            Ok(addrs) => addrs.collect(),
            Err(error) => panic!("{error}"),
        };
        assert!(found.iter().all(|a| a.ip().is_loopback()) && !found.is_empty());
    }

    #[test]
    fn urls_are_checked_for_scheme_credentials_and_address_literals() {
        let strict = Reach::default();
        assert!(check_url("https://hooks.example.com/mailroom", strict).is_ok());
        for (url, why) in [
            ("http://hooks.example.com/", "https://"),
            ("ftp://hooks.example.com/", "ftp://"),
            ("https://user:pw@hooks.example.com/", "credentials"),
            ("https://127.0.0.1/", "loopback"),
            ("https://[::1]:8443/", "loopback"),
            ("https://169.254.169.254/latest", "link-local"),
            ("not a url", "not a URL"),
        ] {
            let refused = check_url(url, strict).unwrap_err();
            assert!(refused.contains(why), "{url}: {refused}");
        }
        let open = Reach {
            http: true,
            private: true,
        };
        assert!(check_url("http://127.0.0.1:9000/hook", open).is_ok());
    }
}
