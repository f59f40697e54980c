//! Domain typo suggestions: `gmial.com` → `gmail.com`.
//!
//! The core is mailcheck's algorithm: the closest popular domain within an edit distance of 2;
//! failing that, the second-level and top-level parts corrected separately. The distance is the
//! optimal-string-alignment distance (Damerau–Levenshtein without repeated edits), so a swapped
//! pair of letters counts as one typo.
//!
//! [`Suggester::mailroom`] adds rules learned from the email_inquire suite for what plain edit
//! distance misses: a doubled suffix (`gmail.com.com`), a well-known provider name under the
//! wrong TLD (`gmail.fr`, `free.com`), a country's commercial second level mistyped or missing
//! (`domain.co.br`, `hotmail.uk`, `domainco.jp`). A TLD is only "corrected" when the Public
//! Suffix List does not know it, so `domain.adm.br` or `example.io` are left alone.

/// Domains people actually have, most common first (ties go to the earlier one).
const POPULAR_DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "icloud.com",
    "msn.com",
    "bellsouth.net",
    "telus.net",
    "comcast.net",
    "optusnet.com.au",
    "earthlink.net",
    "qq.com",
    "sky.com",
    "mac.com",
    "sympatico.ca",
    "googlemail.com",
    "att.net",
    "xtra.co.nz",
    "web.de",
    "cox.net",
    "ymail.com",
    "aim.com",
    "rogers.com",
    "verizon.net",
    "rocketmail.com",
    "google.com",
    "optonline.net",
    "sbcglobal.net",
    "aol.com",
    "me.com",
    "btinternet.com",
    "charter.net",
    "shaw.ca",
    "hotmail.fr",
    "hotmail.co.uk",
    "live.com",
    "live.fr",
    "live.co.uk",
    "outlook.fr",
    "yahoo.fr",
    "yahoo.co.uk",
    "aol.co.uk",
    "blueyonder.co.uk",
    "orange.fr",
    "free.fr",
    "sfr.fr",
    "laposte.net",
    "wanadoo.fr",
    "numericable.fr",
    "aliceadsl.fr",
    "gmx.com",
    "gmx.de",
    "proton.me",
    "protonmail.com",
];

/// Second-level names for mailcheck's split correction.
const SECOND_LEVEL: &[&str] = &["yahoo", "hotmail", "mail", "live", "outlook", "gmx"];

/// Top-level domains (and public suffixes) a typo is corrected towards.
const TOP_LEVEL: &[&str] = &[
    "com", "com.au", "com.tw", "ca", "co.nz", "co.uk", "de", "fr", "it", "ru", "net", "org", "edu",
    "gov", "jp", "nl", "kr", "se", "eu", "ie", "co.il", "us", "at", "be", "dk", "hk", "es", "gr",
    "ch", "no", "cz", "in", "net.au", "info", "biz", "mil", "co.jp", "sg", "hu", "uk", "com.br",
    "br", "io", "me",
];

/// Domains that are misremembered rather than mistyped.
const ALIASES: &[(&str, &str)] = &[("google.fr", "gmail.com"), ("windowslive.com", "live.com")];

/// Country TLDs whose commercial registrations live under one second-level name.
const COMMERCIAL_SECOND_LEVEL: &[(&str, &str)] = &[
    ("au", "com"),
    ("br", "com"),
    ("il", "co"),
    ("jp", "co"),
    ("nz", "co"),
    ("uk", "co"),
    ("za", "co"),
];

/// mailcheck's default threshold: at most two edits away.
const THRESHOLD: usize = 2;

/// Finds likely typos in a domain.
#[derive(Clone, Debug)]
pub struct Suggester {
    domains: Vec<String>,
    second_level: Vec<String>,
    top_level: Vec<String>,
    extra_rules: bool,
}

impl Default for Suggester {
    fn default() -> Self {
        Self::mailroom()
    }
}

impl Suggester {
    /// mailroom's suggester: its lists and every rule.
    pub fn mailroom() -> Self {
        let owned = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        Self {
            domains: owned(POPULAR_DOMAINS),
            second_level: owned(SECOND_LEVEL),
            top_level: owned(TOP_LEVEL),
            extra_rules: true,
        }
    }

    /// Plain mailcheck with the given lists, as its own tests call it.
    pub fn mailcheck(
        domains: Vec<String>,
        second_level: Vec<String>,
        top_level: Vec<String>,
    ) -> Self {
        Self {
            domains,
            second_level,
            top_level,
            extra_rules: false,
        }
    }

    /// A corrected address for `email`, or `None` when nothing looks mistyped.
    pub fn suggest_address(&self, email: &str) -> Option<String> {
        let email = email.trim().to_lowercase();
        let (local, domain) = email.rsplit_once('@')?;
        if local.is_empty() || domain.is_empty() {
            return None;
        }
        self.suggest_domain(domain).map(|d| format!("{local}@{d}"))
    }

    /// A corrected domain for `domain` (lower-case), or `None`.
    pub fn suggest_domain(&self, domain: &str) -> Option<String> {
        if self.extra_rules {
            if self.domains.iter().any(|d| d == domain) {
                return None;
            }
            if let Some(fixed) = self.before_distance(domain) {
                return Some(fixed);
            }
        }
        self.mailcheck_suggest(domain)
    }

    /// mailcheck's `findClosestDomain`: the input itself on an exact match, else the closest
    /// entry within the threshold.
    pub fn closest<'a>(&self, input: &'a str, candidates: &'a [String]) -> Option<&'a str> {
        if input.is_empty() || candidates.is_empty() {
            return None;
        }
        let mut best: Option<(&str, usize)> = None;
        for candidate in candidates {
            if candidate == input {
                return Some(input);
            }
            // The distance is at least the difference in length: skip hopeless candidates
            // without computing it (most candidates, for most inputs).
            let floor = input.len().abs_diff(candidate.len());
            if floor > THRESHOLD || best.is_some_and(|(_, d)| floor >= d) {
                continue;
            }
            // Each edit changes the byte histogram by at most 2: another cheap lower bound.
            let floor = histogram_distance(input, candidate).div_ceil(2);
            if floor > THRESHOLD || best.is_some_and(|(_, d)| floor >= d) {
                continue;
            }
            let distance = strsim::osa_distance(input, candidate);
            if best.is_none_or(|(_, d)| distance < d) {
                best = Some((candidate, distance));
            }
        }
        best.filter(|&(_, d)| d <= THRESHOLD).map(|(c, _)| c)
    }

    /// The lists, for the mailcheck replay of `findClosestDomain`.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// See [`Suggester::domains`].
    pub fn second_level(&self) -> &[String] {
        &self.second_level
    }

    /// See [`Suggester::domains`].
    pub fn top_level(&self) -> &[String] {
        &self.top_level
    }

    fn mailcheck_suggest(&self, domain: &str) -> Option<String> {
        // mailcheck splits at the first dot: "mail.example.co.uk" is second level "mail",
        // top level "example.co.uk".
        let (second, top) = match domain.split_once('.') {
            Some((second, top)) => (second, top),
            None => ("", domain),
        };
        if self.second_level.iter().any(|s| s == second) && self.top_level.iter().any(|t| t == top)
        {
            return None;
        }
        if let Some(closest) = self.closest(domain, &self.domains) {
            return (closest != domain).then(|| closest.to_owned());
        }
        if self.extra_rules && psl::suffix(top.as_bytes()).is_some_and(|s| s.is_known()) {
            // A suffix the Public Suffix List knows is not a typo, whatever it is close to.
            let fixed_second = self.closest(second, &self.second_level)?;
            return (fixed_second != second).then(|| format!("{fixed_second}.{top}"));
        }
        let fixed_second = self
            .closest(second, &self.second_level)
            .filter(|s| *s != second);
        let fixed_top = self
            .closest(top, &self.top_level)
            .filter(|t| *t != top && !second.is_empty());
        if fixed_second.is_none() && fixed_top.is_none() {
            return None;
        }
        Some(format!(
            "{}.{}",
            fixed_second.unwrap_or(second),
            fixed_top.unwrap_or(top)
        ))
    }

    /// Rules tried before edit distance: these read the domain's structure.
    fn before_distance(&self, domain: &str) -> Option<String> {
        if let Some((_, to)) = ALIASES.iter().find(|(from, _)| *from == domain) {
            return Some((*to).to_owned());
        }
        // "gmail.com.com", "domain.com.com": the last label repeated.
        let labels: Vec<&str> = domain.split('.').collect();
        if let [.., a, b] = labels[..]
            && labels.len() >= 3
            && a == b
        {
            let shorter = &domain[..domain.len() - b.len() - 1];
            return Some(
                self.suggest_domain(shorter)
                    .unwrap_or_else(|| shorter.to_owned()),
            );
        }
        self.commercial_second_level(&labels)
            .or_else(|| self.provider_elsewhere(&labels))
    }

    /// `domain.xo.br` → `domain.com.br`, `domainco.jp` → `domain.co.jp`, `domain.combr` →
    /// `domain.com.br`, `hotmail.uk` → `hotmail.co.uk`.
    fn commercial_second_level(&self, labels: &[&str]) -> Option<String> {
        let tld = *labels.last()?;
        for (cc, commercial) in COMMERCIAL_SECOND_LEVEL {
            if tld == format!("{commercial}{cc}") && labels.len() >= 2 {
                let head = labels[..labels.len() - 1].join(".");
                return Some(format!("{head}.{commercial}.{cc}"));
            }
            if tld != *cc {
                continue;
            }
            match labels {
                [name, _] => {
                    let with_commercial = format!("{name}.{commercial}.{cc}");
                    if self.domains.contains(&with_commercial) {
                        return Some(with_commercial);
                    }
                    let stem = name.strip_suffix(commercial).filter(|s| s.len() >= 3)?;
                    return Some(format!("{stem}.{commercial}.{cc}"));
                }
                [head @ .., second, _] => {
                    let registered = psl::suffix(format!("{second}.{cc}").as_bytes())
                        .is_some_and(|s| s.is_known() && s.as_bytes().contains(&b'.'));
                    // Real second levels are in the Public Suffix List, and the few that are not
                    // (mod.uk, nic.uk, nom.br) are longer than the two-letter typos of co/com.
                    if registered || *second == *commercial || second.len() > 2 {
                        return None;
                    }
                    return Some(format!("{}.{commercial}.{cc}", head.join(".")));
                }
                _ => return None,
            }
        }
        None
    }

    /// A provider's name under a TLD it does not use (`gmail.fr`, `free.com`, `gmail.comcomm`):
    /// only for a provider with a single domain, which makes the correction unambiguous.
    fn provider_elsewhere(&self, labels: &[&str]) -> Option<String> {
        let [name, _] = labels else {
            return None;
        };
        if name.len() < 3 {
            return None;
        }
        let mut theirs = self
            .domains
            .iter()
            .filter(|d| d.split_once('.').is_some_and(|(n, _)| n == *name));
        let only = theirs.next()?;
        theirs.next().is_none().then(|| only.clone())
    }
}

/// The L1 distance between the byte histograms of `a` and `b` (bytes folded into 64 buckets).
fn histogram_distance(a: &str, b: &str) -> usize {
    let mut counts = [0i16; 64];
    for byte in a.bytes() {
        counts[usize::from(byte & 63)] += 1;
    }
    for byte in b.bytes() {
        counts[usize::from(byte & 63)] -= 1;
    }
    counts.iter().map(|c| c.unsigned_abs() as usize).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_examples() {
        let s = Suggester::mailroom();
        assert_eq!(s.suggest_domain("gmial.com").as_deref(), Some("gmail.com"));
        assert_eq!(
            s.suggest_domain("hotmial.com").as_deref(),
            Some("hotmail.com")
        );
        assert_eq!(s.suggest_domain("yahoo.con").as_deref(), Some("yahoo.com"));
        assert_eq!(s.suggest_domain("gmail.com"), None);
        assert_eq!(s.suggest_domain("example.io"), None);
    }

    #[test]
    fn popular_domains_have_no_duplicates() {
        let mut sorted = POPULAR_DOMAINS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), POPULAR_DOMAINS.len());
    }
}
