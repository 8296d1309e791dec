//! Values with rules, parsed at the edge: if one exists, it is valid.
//!
//! Identifiers keep a readable prefix (`prj_`, `cnv_`, `tok_`) like Stripe's do, and are opaque
//! everywhere else. Money is an integer amount in the currency's minor unit plus the currency.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Random lowercase hex of `bytes` random bytes.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source is available");
    hex::encode(buf)
}

/// Milliseconds since the Unix epoch, UTC.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new random id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_hex(10)))
            }

            /// Accepts any string with the right prefix and a short, plain body.
            pub fn parse(s: &str) -> Option<Self> {
                let body = s.strip_prefix($prefix)?;
                let plain = !body.is_empty()
                    && body.len() <= 64
                    && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                plain.then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A project of the app builder; payments belong to a project.
    ProjectId,
    "prj_"
);
prefixed_id!(
    /// The chat of a project (one per project).
    ConversationId,
    "cnv_"
);
prefixed_id!(
    /// An API token's public id (the secret part is only ever stored hashed).
    TokenId,
    "tok_"
);
prefixed_id!(
    /// A workspace: it owns projects, and its people, sessions and API tokens see all of them.
    WorkspaceId,
    "wsp_"
);
prefixed_id!(
    /// A person who signs in to the web page with an email and a password.
    PersonId,
    "per_"
);

/// A secret string (API key, webhook secret): usable, never printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Show the kind of key (sk_test_, whsec_) but none of its secret part.
        let kind: String = self.0.chars().take_while(|c| *c != '_').collect();
        write!(f, "Secret({kind}_…redacted)")
    }
}

/// Whether the connected account is a person or a company (Stripe's `business_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusinessType {
    Individual,
    Company,
}

impl BusinessType {
    pub fn as_str(self) -> &'static str {
        match self {
            BusinessType::Individual => "individual",
            BusinessType::Company => "company",
        }
    }

    pub fn parse(s: &str) -> Option<BusinessType> {
        match s {
            "individual" => Some(BusinessType::Individual),
            "company" => Some(BusinessType::Company),
            _ => None,
        }
    }
}

/// How a project's Stripe account came to be connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Created and onboarded through chatpay.
    Created,
    /// An existing account, connected through Stripe's OAuth page.
    Oauth,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Created => "created",
            Origin::Oauth => "oauth",
        }
    }

    pub fn parse(s: &str) -> Option<Origin> {
        match s {
            "created" => Some(Origin::Created),
            "oauth" => Some(Origin::Oauth),
            _ => None,
        }
    }
}

/// Whether a project talks to Stripe's test or live mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "test" => Some(Mode::Test),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }

    pub fn is_live(self) -> bool {
        self == Mode::Live
    }

    /// How a card says which mode it is about.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Test => "Test mode: no real money moves.",
            Mode::Live => "Live mode: real payments.",
        }
    }
}

/// An ISO 4217 currency code, lowercase as Stripe writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

/// Currencies whose minor unit is the unit itself (Stripe's zero-decimal list).
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];
/// Currencies with three decimals.
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

impl Currency {
    pub fn parse(s: &str) -> Option<Currency> {
        let b = s.as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        Some(Currency([
            b[0].to_ascii_lowercase(),
            b[1].to_ascii_lowercase(),
            b[2].to_ascii_lowercase(),
        ]))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ascii by construction")
    }

    /// Digits after the decimal point in the minor unit.
    pub fn exponent(&self) -> u32 {
        if ZERO_DECIMAL.contains(&self.as_str()) {
            0
        } else if THREE_DECIMAL.contains(&self.as_str()) {
            3
        } else {
            2
        }
    }

    fn symbol(&self) -> Option<&'static str> {
        Some(match self.as_str() {
            "usd" => "$",
            "eur" => "€",
            "gbp" => "£",
            "jpy" => "¥",
            "inr" => "₹",
            _ => return None,
        })
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).ok_or_else(|| serde::de::Error::custom("not a 3-letter currency code"))
    }
}

/// An amount of money: integer minor units (cents for USD, yen for JPY) and a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Parses a decimal amount as written by a person ("25", "25.5", "1,299.99") in `currency`.
    /// Refuses more decimals than the currency has; never goes through floating point.
    ///
    /// # Examples
    /// ```
    /// use chatpay_core::domain::{Currency, Money};
    /// let usd = Currency::parse("USD").unwrap();
    /// assert_eq!(Money::parse_decimal("1,299.99", usd).unwrap().minor, 129_999);
    /// assert_eq!(Money::parse_decimal("25", usd).unwrap().minor, 2_500);
    /// assert!(Money::parse_decimal("0.001", usd).is_none());
    /// ```
    pub fn parse_decimal(text: &str, currency: Currency) -> Option<Money> {
        let cleaned: String = text.chars().filter(|c| *c != ',' && *c != '_').collect();
        let (whole, frac) = match cleaned.split_once('.') {
            Some((w, f)) => (w, f),
            None => (cleaned.as_str(), ""),
        };
        let exp = currency.exponent() as usize;
        if whole.is_empty() && frac.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > exp
        {
            return None;
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut frac_val: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        for _ in frac.len()..exp {
            frac_val *= 10;
        }
        let minor = whole
            .checked_mul(10i64.pow(exp as u32))?
            .checked_add(frac_val)?;
        Some(Money { minor, currency })
    }
}

impl Money {
    /// The amount in the currency's units, without a symbol or sign: `25.00`, `500` (yen),
    /// `12.000` (dinars).
    ///
    /// # Examples
    /// ```
    /// use chatpay_core::domain::{Currency, Money};
    /// assert_eq!(Money::new(1250, Currency::parse("usd").unwrap()).units(), "12.50");
    /// assert_eq!(Money::new(500, Currency::parse("jpy").unwrap()).units(), "500");
    /// ```
    pub fn units(&self) -> String {
        let exp = self.currency.exponent();
        let abs = self.minor.unsigned_abs();
        let scale = 10u64.pow(exp);
        if exp == 0 {
            format!("{abs}")
        } else {
            format!(
                "{}.{:0width$}",
                abs / scale,
                abs % scale,
                width = exp as usize
            )
        }
    }

    /// [`Money::units`] with a `-` for a negative amount.
    pub fn decimal(&self) -> String {
        let sign = if self.minor < 0 { "-" } else { "" };
        format!("{sign}{}", self.units())
    }
}

impl fmt::Display for Money {
    /// `$25.00`, `€9.50`, `¥500`, `12.000 KWD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let number = self.units();
        match self.currency.symbol() {
            Some(sym) => write!(f, "{sign}{sym}{number}"),
            None => write!(
                f,
                "{sign}{number} {}",
                self.currency.as_str().to_ascii_uppercase()
            ),
        }
    }
}

/// What the statement descriptor rules say is wrong, one entry per broken rule.
pub type RuleViolations = Vec<&'static str>;

/// The text on a customer's card statement, checked against Stripe's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StatementDescriptor(String);

/// Words too generic to identify a business on a statement.
const GENERIC_DESCRIPTORS: &[&str] = &[
    "payment", "payments", "shop", "store", "online", "purchase", "order", "service", "services",
    "test", "business", "company", "website", "app",
];

impl StatementDescriptor {
    /// Checks every rule and reports each broken one.
    ///
    /// # Examples
    /// ```
    /// use chatpay_core::domain::StatementDescriptor;
    /// assert!(StatementDescriptor::parse("ACME COFFEE").is_ok());
    /// let errors = StatementDescriptor::parse("A*<").unwrap_err();
    /// assert!(errors.len() >= 2);
    /// ```
    pub fn parse(raw: &str) -> Result<StatementDescriptor, RuleViolations> {
        let s = raw.trim();
        let mut errors = Vec::new();
        let len = s.chars().count();
        if len < 5 {
            errors.push("must be at least 5 characters");
        }
        if len > 22 {
            errors.push("must be at most 22 characters");
        }
        if !s.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
            errors.push("may only use Latin characters (no accents, emoji or other scripts)");
        }
        if !s.chars().any(|c| c.is_ascii_alphabetic()) {
            errors.push("must contain at least one letter");
        }
        if s.chars()
            .any(|c| matches!(c, '<' | '>' | '\\' | '\'' | '"' | '*'))
        {
            errors.push("may not contain any of < > \\ ' \" *");
        }
        let lower = s.to_ascii_lowercase();
        if GENERIC_DESCRIPTORS.contains(&lower.as_str()) {
            errors.push("should be your recognizable business name, not a common word");
        }
        let looks_like_bare_url = (lower.starts_with("www.") || lower.starts_with("http"))
            && !lower.contains(' ')
            && lower.matches('.').count() >= 1
            && lower.len() <= 12;
        if looks_like_bare_url {
            errors.push("should be your business name rather than a generic web address");
        }
        if errors.is_empty() {
            Ok(StatementDescriptor(s.to_owned()))
        } else {
            Err(errors)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, checked for shape only (the provider checks the rest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Option<Email> {
        let s = raw.trim();
        let (local, domain) = s.split_once('@')?;
        let ok = !local.is_empty()
            && s.len() <= 254
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !s.chars().any(|c| c.is_whitespace() || c == ',');
        ok.then(|| Email(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A two-letter ISO 3166 country code, uppercase, among the countries Stripe supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Country(String);

/// Countries where Stripe accounts can be created (a subset is enough to validate input).
pub const SUPPORTED_COUNTRIES: &[&str] = &[
    "AE", "AT", "AU", "BE", "BG", "BR", "CA", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR",
    "GB", "GI", "GR", "HK", "HR", "HU", "IE", "IN", "IT", "JP", "LI", "LT", "LU", "LV", "MT", "MX",
    "MY", "NL", "NO", "NZ", "PL", "PT", "RO", "SE", "SG", "SI", "SK", "TH", "US",
];

impl Country {
    pub fn parse(raw: &str) -> Option<Country> {
        let upper = raw.trim().to_ascii_uppercase();
        let upper = match upper.as_str() {
            "UK" => "GB".to_owned(),
            "USA" => "US".to_owned(),
            _ => upper,
        };
        SUPPORTED_COUNTRIES
            .contains(&upper.as_str())
            .then_some(Country(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute `http(s)` URL a browser is sent to (a checkout's `success_url`, `cancel_url`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebUrl(String);

impl WebUrl {
    pub fn parse(raw: &str) -> Option<WebUrl> {
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let ok = !host.is_empty() && !raw.chars().any(char::is_whitespace) && raw.len() <= 2000;
        ok.then(|| WebUrl(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A web origin as browsers send it in `Origin`: `https://host` or `http://host:port`, lowercase,
/// nothing after (a trailing `/` is dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebOrigin(String);

impl WebOrigin {
    pub fn parse(raw: &str) -> Option<WebOrigin> {
        let raw = raw.trim_end_matches('/');
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"))?;
        // A host name, or an IPv6 address in brackets; then an optional port.
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (address, after) = v6.split_once(']')?;
                address.parse::<std::net::Ipv6Addr>().ok()?;
                (address, after)
            }
            None => match rest.split_once(':') {
                Some((host, _)) => (host, rest.get(host.len()..).unwrap_or_default()),
                None => (rest, ""),
            },
        };
        let port_ok = match port.strip_prefix(':') {
            Some(digits) => {
                (1..=5).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
            }
            None => port.is_empty(),
        };
        let ok = !host.is_empty()
            && rest.len() <= 253
            && port_ok
            && (rest.starts_with('[')
                || host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')));
        ok.then(|| WebOrigin(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_formats_per_currency_exponent() {
        let usd = Currency::parse("usd").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        let kwd = Currency::parse("kwd").unwrap();
        assert_eq!(Money::new(2500, usd).to_string(), "$25.00");
        assert_eq!(Money::new(-5, usd).to_string(), "-$0.05");
        assert_eq!(Money::new(500, jpy).to_string(), "¥500");
        assert_eq!(Money::new(12_000, kwd).to_string(), "12.000 KWD");
        assert_eq!(Money::parse_decimal("500", jpy).unwrap().minor, 500);
        assert!(Money::parse_decimal("5.5", jpy).is_none());
        assert_eq!(Money::parse_decimal("1.5", kwd).unwrap().minor, 1500);
        assert!(Money::parse_decimal("1.2.3", usd).is_none());
        assert!(Money::parse_decimal("", usd).is_none());
        assert!(Money::parse_decimal("99999999999999999999", usd).is_none());
    }

    #[test]
    fn statement_descriptor_names_each_broken_rule() {
        assert!(StatementDescriptor::parse("Bright Yoga Studio").is_ok());
        assert_eq!(
            StatementDescriptor::parse("abc").unwrap_err(),
            vec!["must be at least 5 characters"]
        );
        let long = StatementDescriptor::parse("ABCDEFGHIJKLMNOPQRSTUVWXYZ").unwrap_err();
        assert_eq!(long, vec!["must be at most 22 characters"]);
        assert!(
            StatementDescriptor::parse("12345")
                .unwrap_err()
                .contains(&"must contain at least one letter")
        );
        assert!(StatementDescriptor::parse("Café Crème").is_err());
        assert!(StatementDescriptor::parse("Joe's Shop").is_err());
        assert!(StatementDescriptor::parse("payments").is_err());
        assert!(StatementDescriptor::parse("www.x.com").is_err());
    }

    #[test]
    fn ids_keep_their_prefix() {
        let id = ProjectId::generate();
        assert!(id.as_str().starts_with("prj_"));
        assert_eq!(ProjectId::parse(id.as_str()), Some(id));
        assert_eq!(ProjectId::parse("cnv_abc"), None);
        assert_eq!(ProjectId::parse("prj_"), None);
        assert_eq!(ProjectId::parse("prj_a b"), None);
    }

    #[test]
    fn email_and_country() {
        assert!(Email::parse("ada@example.com").is_some());
        assert!(Email::parse("ada@example").is_none());
        assert!(Email::parse("a b@example.com").is_none());
        assert_eq!(Country::parse("uk").unwrap().as_str(), "GB");
        assert!(Country::parse("XX").is_none());
    }

    #[test]
    fn web_urls_and_origins() {
        assert!(WebUrl::parse("https://app.example/thanks?x=1").is_some());
        assert!(WebUrl::parse("http://127.0.0.1:8080/").is_some());
        for bad in [
            "javascript:alert(1)",
            "app.example/thanks",
            "https://",
            "https://a b.example",
        ] {
            assert!(WebUrl::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            WebOrigin::parse("https://Shop.Example/").unwrap().as_str(),
            "https://shop.example"
        );
        assert!(WebOrigin::parse("http://localhost:3000").is_some());
        assert!(WebOrigin::parse("http://[::1]:8080").is_some());
        for bad in [
            "shop.example",
            "https://shop.example/path",
            "ftp://shop.example",
            "https://",
            "http://[",
            "http://[]",
            "http://[e04ac:d.]",
            "http://a]",
            "http://shop.example:",
            "http://shop.example:80:80",
            "http://:80",
        ] {
            assert!(WebOrigin::parse(bad).is_none(), "{bad}");
        }
    }
}
