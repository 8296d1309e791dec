//! `GET /v1/{products,prices,customers,charges,payment_intents,invoices,subscriptions}/search`:
//! Stripe's Search Query Language over the objects as the API shows them, per account and mode.
//!
//! From Stripe's "Search" documentation: a query is clauses `field:value` joined by spaces or
//! `AND`, or by `OR` (never both); `-` negates a clause; `~` matches a substring of a string
//! field (3 characters at least); `>`, `<`, `>=`, `<=` compare numeric fields; `metadata['key']`
//! matches a metadata value and `null` a missing one; exact matches of strings ignore case. Each
//! resource searches only its documented fields. Results run newest first, `limit` (1–100) at a
//! time, with `page` set to the previous answer's `next_page`.

use serde_json::{Value, json};

use super::api::Call;
use super::error::{ApiError, ApiResult};
use super::form::{Form, Params};
use super::state::{Keyed, Tx};
use super::{billing_api, catalog, payments};

/// How a field is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Exact (ignoring case) or substring (`~`).
    String,
    /// Exact only.
    Token,
    /// Exact and comparisons.
    Numeric,
}

/// A resource with a search endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Searchable {
    Products,
    Prices,
    Customers,
    Charges,
    PaymentIntents,
    Invoices,
    Subscriptions,
}

impl Searchable {
    pub fn from_path(segment: &str) -> Option<Searchable> {
        Some(match segment {
            "products" => Searchable::Products,
            "prices" => Searchable::Prices,
            "customers" => Searchable::Customers,
            "charges" => Searchable::Charges,
            "payment_intents" => Searchable::PaymentIntents,
            "invoices" => Searchable::Invoices,
            "subscriptions" => Searchable::Subscriptions,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Searchable::Products => "products",
            Searchable::Prices => "prices",
            Searchable::Customers => "customers",
            Searchable::Charges => "charges",
            Searchable::PaymentIntents => "payment_intents",
            Searchable::Invoices => "invoices",
            Searchable::Subscriptions => "subscriptions",
        }
    }

    /// The query fields Stripe documents for the resource (besides `metadata`).
    fn fields(self) -> &'static [(&'static str, Kind)] {
        use Kind::{Numeric, String, Token};
        match self {
            Searchable::Products => &[
                ("active", Token),
                ("created", Numeric),
                ("description", String),
                ("name", String),
                ("shippable", Token),
                ("url", String),
            ],
            Searchable::Prices => &[
                ("active", Token),
                ("currency", Token),
                ("lookup_key", String),
                ("product", Token),
                ("type", Token),
            ],
            Searchable::Customers => &[
                ("created", Numeric),
                ("email", String),
                ("name", String),
                ("phone", String),
            ],
            Searchable::Charges => &[
                ("amount", Numeric),
                ("billing_details.address.postal_code", String),
                ("created", Numeric),
                ("currency", Token),
                ("customer", Token),
                ("disputed", Token),
                ("payment_method_details.card.last4", Token),
                ("refunded", Token),
                ("status", Token),
            ],
            Searchable::PaymentIntents => &[
                ("amount", Numeric),
                ("created", Numeric),
                ("currency", Token),
                ("customer", Token),
                ("status", Token),
            ],
            Searchable::Invoices => &[
                ("created", Numeric),
                ("currency", Token),
                ("customer", Token),
                ("number", String),
                ("receipt_number", String),
                ("status", Token),
                ("subscription", Token),
                ("total", Numeric),
            ],
            Searchable::Subscriptions => &[("created", Numeric), ("status", Token)],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Contains,
    Gt,
    Lt,
    Ge,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
enum Target {
    Field(String, Kind),
    Metadata(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Clause {
    negate: bool,
    target: Target,
    op: Op,
    /// `None`: `null`.
    value: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Query {
    clauses: Vec<Clause>,
    any: bool,
}

fn unparsable() -> ApiError {
    ApiError::bad_param(
        "query",
        "We were unable to parse your search query. Try using the format \
         `metadata[\"key\"]:\"value\"` to query for metadata or `key:\"value\"` to query for \
         other fields.",
    )
}

/// Reads a quoted string at `i` (`'…'` or `"…"`, with `\` escapes); returns it and the index
/// after the closing quote.
fn quoted(chars: &[char], i: usize) -> Option<(String, usize)> {
    let quote = *chars.get(i)?;
    if quote != '\'' && quote != '"' {
        return None;
    }
    let mut out = String::new();
    let mut j = i + 1;
    while let Some(&c) = chars.get(j) {
        match c {
            '\\' => {
                out.push(*chars.get(j + 1)?);
                j += 2;
            }
            c if c == quote => return Some((out, j + 1)),
            c => {
                out.push(c);
                j += 1;
            }
        }
    }
    None
}

fn parse(resource: Searchable, text: &str) -> ApiResult<Query> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut clauses = Vec::new();
    let (mut and, mut or) = (false, false);
    let skip_ws = |i: &mut usize| {
        while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        if !clauses.is_empty() {
            let rest: String = chars[i..].iter().take(4).collect::<String>().to_uppercase();
            let word_end = |n: usize| chars.get(i + n).is_none_or(|c| c.is_whitespace());
            if rest.starts_with("AND") && word_end(3) {
                and = true;
                i += 3;
                skip_ws(&mut i);
            } else if rest.starts_with("OR") && word_end(2) {
                or = true;
                i += 2;
                skip_ws(&mut i);
            } else {
                and = true;
            }
        }
        let negate = chars.get(i) == Some(&'-');
        if negate {
            i += 1;
        }
        let start = i;
        while chars
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        let target = if name == "metadata" {
            if chars.get(i) != Some(&'[') {
                return Err(unparsable());
            }
            let (key, after) = quoted(&chars, i + 1).ok_or_else(unparsable)?;
            if chars.get(after) != Some(&']') {
                return Err(unparsable());
            }
            i = after + 1;
            Target::Metadata(key)
        } else {
            let Some((_, kind)) = resource.fields().iter().find(|(f, _)| *f == name) else {
                if name.is_empty() {
                    return Err(unparsable());
                }
                return Err(ApiError::bad_param(
                    "query",
                    format!(
                        "Field `{name}` is an unsupported search field for resource `{}`. See \
                         https://stripe.com/docs/search#query-fields-for-{} for a list of \
                         supported fields.",
                        resource.name(),
                        resource.name().replace('_', "-")
                    ),
                ));
            };
            Target::Field(name, *kind)
        };
        let two: String = chars[i.min(chars.len())..].iter().take(2).collect();
        let (op, width) = match two.as_str() {
            ">=" => (Op::Ge, 2),
            "<=" => (Op::Le, 2),
            _ => match chars.get(i) {
                Some(':') => (Op::Eq, 1),
                Some('~') => (Op::Contains, 1),
                Some('>') => (Op::Gt, 1),
                Some('<') => (Op::Lt, 1),
                _ => return Err(unparsable()),
            },
        };
        i += width;
        let value = if let Some((v, after)) = quoted(&chars, i) {
            i = after;
            Some(v)
        } else if matches!(chars.get(i), Some('\'' | '"')) {
            return Err(unparsable());
        } else {
            let start = i;
            while chars.get(i).is_some_and(|c| !c.is_whitespace()) {
                i += 1;
            }
            let bare: String = chars[start..i].iter().collect();
            if bare.is_empty() {
                return Err(unparsable());
            }
            (bare != "null").then_some(bare)
        };
        check(&target, op, value.as_deref())?;
        clauses.push(Clause {
            negate,
            target,
            op,
            value,
        });
    }
    if clauses.is_empty() {
        return Err(unparsable());
    }
    if and && or {
        return Err(ApiError::bad_param(
            "query",
            "A search query can combine clauses with AND or with OR, not both.",
        ));
    }
    Ok(Query { clauses, any: or })
}

/// The operator must suit the field.
fn check(target: &Target, op: Op, value: Option<&str>) -> ApiResult<()> {
    let kind = match target {
        Target::Field(_, kind) => *kind,
        Target::Metadata(_) => Kind::Token,
    };
    match (op, kind) {
        (Op::Eq, _) => Ok(()),
        (Op::Contains, Kind::String) => match value {
            Some(v) if v.chars().count() >= 3 => Ok(()),
            _ => Err(ApiError::bad_param(
                "query",
                "Substring matching (`~`) needs a value of at least 3 characters.",
            )),
        },
        (Op::Contains, _) => Err(ApiError::bad_param(
            "query",
            "Substring matching (`~`) is only supported on string fields.",
        )),
        (_, Kind::Numeric) if value.is_some_and(|v| v.parse::<f64>().is_ok()) => Ok(()),
        _ => Err(ApiError::bad_param(
            "query",
            "Comparisons (`>`, `<`, `>=`, `<=`) are only supported on numeric fields, with a \
             number.",
        )),
    }
}

/// A field of the object as text (`true`, `1500`, `usd`), `None` when absent or null.
fn text_at(object: &Value, path: &str) -> Option<String> {
    let mut at = object;
    for part in path.split('.') {
        at = at.get(part)?;
    }
    match at {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn matches(object: &Value, clause: &Clause) -> bool {
    let found = match &clause.target {
        Target::Field(name, _) => text_at(object, name),
        Target::Metadata(key) => object
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let hit = match (&clause.value, &found) {
        (None, _) => found.is_none(),
        (Some(_), None) => false,
        (Some(want), Some(have)) => match clause.op {
            Op::Eq => match &clause.target {
                Target::Metadata(_) => have == want,
                Target::Field(..) => have.eq_ignore_ascii_case(want),
            },
            Op::Contains => have.to_lowercase().contains(&want.to_lowercase()),
            cmp => match (have.parse::<f64>(), want.parse::<f64>()) {
                (Ok(h), Ok(w)) => match cmp {
                    Op::Gt => h > w,
                    Op::Lt => h < w,
                    Op::Ge => h >= w,
                    _ => h <= w,
                },
                _ => false,
            },
        },
    };
    hit != clause.negate
}

/// The keys of the objects `mine` keeps.
fn keys_in<'a, T: Keyed + 'a>(
    items: impl Iterator<Item = &'a T>,
    mine: impl Fn(&T) -> bool,
) -> Vec<String> {
    items
        .filter(|x| mine(x))
        .map(|x| x.key().to_owned())
        .collect()
}

/// The ids of the resource's objects in scope, newest first.
fn candidates(tx: &mut Tx<'_>, scope: Option<&str>, resource: Searchable) -> Vec<String> {
    let ids = match resource {
        // A catalog is the account's own.
        Searchable::Products => keys_in(tx.catalog(scope).products.iter(), |_| true),
        Searchable::Prices => keys_in(tx.catalog(scope).prices.iter(), |_| true),
        Searchable::Customers => keys_in(tx.ms().billing.customers.iter(), |x| {
            x.account.as_deref() == scope
        }),
        Searchable::Charges => keys_in(tx.ms().sales.charges.iter(), |x| {
            x.account.as_deref() == scope
        }),
        Searchable::PaymentIntents => keys_in(tx.ms().sales.intents.iter(), |x| {
            x.account.as_deref() == scope
        }),
        Searchable::Invoices => keys_in(tx.ms().sales.invoices.iter(), |x| {
            x.account.as_deref() == scope
        }),
        Searchable::Subscriptions => keys_in(tx.ms().billing.subscriptions.iter(), |x| {
            x.account.as_deref() == scope
        }),
    };
    ids.into_iter().rev().collect()
}

fn render(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    resource: Searchable,
    id: &str,
    p: &Params<'_>,
) -> Option<Value> {
    match resource {
        Searchable::Products => catalog::retrieve_product(tx, call, id, p),
        Searchable::Prices => catalog::retrieve_price(tx, call, id, p),
        Searchable::Customers => billing_api::retrieve_customer(tx, call, id, p),
        Searchable::Charges => payments::retrieve_charge(tx, call, id, p),
        Searchable::PaymentIntents => payments::retrieve_payment_intent(tx, call, id, p),
        Searchable::Invoices => billing_api::retrieve_invoice(tx, call, id, p),
        Searchable::Subscriptions => billing_api::retrieve_subscription(tx, call, id, p),
    }
    .ok()
}

pub(crate) fn search(
    tx: &mut Tx<'_>,
    call: &Call<'_>,
    resource: Searchable,
    p: &Params<'_>,
) -> ApiResult<Value> {
    p.only(&["expand", "limit", "page", "query"])?;
    let query = parse(resource, p.required("query")?)?;
    let limit = match p.int("limit")? {
        None => 10,
        Some(n @ 1..=100) => usize::try_from(n).unwrap_or(10),
        Some(_) => {
            return Err(ApiError::bad_param(
                "limit",
                "Invalid integer: limit must be between 1 and 100.",
            ));
        }
    };
    let offset = match p.str("page")? {
        None => 0,
        Some(page) => page
            .strip_prefix("page_")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::bad_param("page", "Invalid page: not a `next_page` value."))?,
    };
    let empty = Form::parse(b"")?;
    let bare = empty.params();
    let mut found = Vec::new();
    for id in candidates(tx, call.scope, resource) {
        let Some(object) = render(tx, call, resource, &id, &bare) else {
            continue;
        };
        let hit = if query.any {
            query.clauses.iter().any(|c| matches(&object, c))
        } else {
            query.clauses.iter().all(|c| matches(&object, c))
        };
        if hit {
            found.push(object);
        }
    }
    let total = found.len();
    let data: Vec<Value> = found.into_iter().skip(offset).take(limit).collect();
    let has_more = offset + data.len() < total;
    let mut out = json!({
        "object": "search_result",
        "data": data,
        "has_more": has_more,
        "next_page": has_more.then(|| format!("page_{}", offset + limit)),
        "url": format!("/v1/{}/search", resource.name()),
    });
    // `total_count` is included only when asked for (`expand[]=total_count`).
    if p.strings("expand")?
        .unwrap_or_default()
        .iter()
        .any(|e| e == "total_count")
    {
        out["total_count"] = json!(total);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> ApiResult<Query> {
        parse(Searchable::Products, text)
    }

    #[test]
    fn queries_parse_as_stripe_documents_them() {
        let query = q("active:'true' AND metadata['order_id']:'6735'").unwrap();
        assert_eq!(query.clauses.len(), 2);
        assert!(!query.any);
        assert_eq!(query.clauses[1].target, Target::Metadata("order_id".into()));
        let query = q(r#"name~"yoga" OR -description:"mat""#).unwrap();
        assert!(query.any);
        assert!(query.clauses[1].negate);
        assert_eq!(query.clauses[0].op, Op::Contains);
        assert_eq!(q("created>=1700000000").unwrap().clauses[0].op, Op::Ge);
        assert_eq!(q("url:null").unwrap().clauses[0].value, None);
        assert!(q("").is_err());
        assert!(q("name:'a' AND active:'true' OR url:'x'").is_err());
        assert!(q("name~'ab'").is_err());
        assert!(q("active~'tru'").is_err());
        assert!(q("name>3").is_err());
        let e = q("email:'a@b.co'").unwrap_err();
        assert!(
            e.message.contains("unsupported search field"),
            "{}",
            e.message
        );
        assert!(q("metadata[x]:'y'").is_err());
        assert!(q("name:'unterminated").is_err());
    }

    #[test]
    fn clauses_match_the_rendered_object() {
        let product = json!({
            "name": "Yoga Mat", "active": true, "created": 100, "url": null,
            "metadata": {"color": "Blue"},
        });
        let hits = |text: &str| {
            let query = q(text).unwrap();
            query.clauses.iter().all(|c| matches(&product, c))
        };
        assert!(hits("name:'yoga mat'"));
        assert!(hits("name~'OGA'"));
        assert!(hits("active:'true'"));
        assert!(hits("created>99 created<=100"));
        assert!(hits("metadata['color']:'Blue'"));
        assert!(
            !hits("metadata['color']:'blue'"),
            "metadata values are exact"
        );
        assert!(hits("-metadata['size']:'L'"));
        assert!(hits("url:null"));
        assert!(!hits("-name:'Yoga Mat'"));
    }
}
