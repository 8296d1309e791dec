//! Stripe's form encoding: `business_profile[name]=x`, `metadata[k]=v`, `expand[]=a`,
//! `expand[0]=a`, decoded into a tree, with typed accessors that answer Stripe's error messages.

use std::collections::BTreeMap;

use super::error::{ApiError, ApiResult};

/// One decoded parameter: a string, a hash (`a[b]=`) or an array (`a[]=`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Value(String),
    Map(BTreeMap<String, Node>),
    List(Vec<Node>),
}

/// A decoded request: the parameter tree plus the flat pairs (for idempotency fingerprints).
#[derive(Debug, Clone, Default)]
pub(crate) struct Form {
    root: BTreeMap<String, Node>,
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Decodes `application/x-www-form-urlencoded` text (a body or a query string).
    pub fn parse(raw: &[u8]) -> ApiResult<Form> {
        let mut form = Form::default();
        for (key, value) in form_urlencoded::parse(raw) {
            let path = split_key(&key)?;
            insert(&mut form.root, &path, value.to_string(), &key)?;
            form.pairs.push((key.into_owned(), value.into_owned()));
        }
        Ok(form)
    }

    /// The top level as a parameter view.
    pub fn params(&self) -> Params<'_> {
        Params {
            map: &self.root,
            path: String::new(),
        }
    }

    /// The pairs in a canonical order: equal requests give equal fingerprints.
    pub fn canonical(&self) -> String {
        let mut pairs = self.pairs.clone();
        pairs.sort();
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }
}

/// Deepest nesting accepted (`a[b][c][d][e][f][g][h]`).
const MAX_DEPTH: usize = 8;

/// `a[b][]` -> `["a", "b", ""]`.
fn split_key(key: &str) -> ApiResult<Vec<String>> {
    let invalid = || ApiError::invalid(format!("Invalid parameter name: {key}"));
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if head.is_empty() {
        return Err(invalid());
    }
    let mut path = vec![head.to_owned()];
    while !rest.is_empty() {
        // Stripe nests a few levels at most; a bound also keeps recursion shallow.
        if path.len() >= MAX_DEPTH {
            return Err(ApiError::invalid(format!(
                "Invalid parameter name: {key} is nested too deeply"
            )));
        }
        let inner = rest.strip_prefix('[').ok_or_else(invalid)?;
        let end = inner.find(']').ok_or_else(invalid)?;
        path.push(inner[..end].to_owned());
        rest = &inner[end + 1..];
    }
    Ok(path)
}

fn insert(
    map: &mut BTreeMap<String, Node>,
    path: &[String],
    value: String,
    key: &str,
) -> ApiResult<()> {
    let conflict = || ApiError::invalid(format!("Invalid value for {key}: conflicting types"));
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    let Some(next) = rest.first() else {
        return match map.get(first) {
            Some(Node::Map(_) | Node::List(_)) if !value.is_empty() => Err(conflict()),
            _ => {
                map.insert(first.clone(), Node::Value(value));
                Ok(())
            }
        };
    };
    let append = next.is_empty();
    let child = map.entry(first.clone()).or_insert_with(|| {
        if append {
            Node::List(Vec::new())
        } else {
            Node::Map(BTreeMap::new())
        }
    });
    // `metadata=` (empty: "unset all") followed by `metadata[k]=v`: the hash wins.
    if matches!(child, Node::Value(v) if v.is_empty()) {
        *child = if append {
            Node::List(Vec::new())
        } else {
            Node::Map(BTreeMap::new())
        };
    }
    match child {
        Node::List(items) if append => {
            if rest.len() == 1 {
                items.push(Node::Value(value));
            } else {
                let mut inner = BTreeMap::new();
                insert(&mut inner, &rest[1..], value, key)?;
                items.push(Node::Map(inner));
            }
            Ok(())
        }
        Node::Map(inner) if !append => insert(inner, rest, value, key),
        _ => Err(conflict()),
    }
}

/// A view of one level of the tree; remembers its path for error messages (`a[b][c]`).
#[derive(Debug, Clone)]
pub(crate) struct Params<'a> {
    map: &'a BTreeMap<String, Node>,
    path: String,
}

/// The result of a `metadata` parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MetadataUpdate {
    /// `metadata=`: remove every key.
    Clear,
    /// Set these keys; an empty value removes its key.
    Set(Vec<(String, String)>),
}

impl MetadataUpdate {
    /// Applies the update (Stripe's rules: at most 50 keys, key 40 chars, value 500 chars).
    pub fn apply(self, target: &mut BTreeMap<String, String>, param: &str) -> ApiResult<()> {
        match self {
            MetadataUpdate::Clear => target.clear(),
            MetadataUpdate::Set(pairs) => {
                for (k, v) in pairs {
                    if k.chars().count() > 40 {
                        return Err(ApiError::bad_param(
                            &format!("{param}[{k}]"),
                            "Metadata keys can have up to 40 characters.",
                        ));
                    }
                    if v.chars().count() > 500 {
                        return Err(ApiError::bad_param(
                            &format!("{param}[{k}]"),
                            "Metadata values can have up to 500 characters.",
                        ));
                    }
                    if v.is_empty() {
                        target.remove(&k);
                    } else {
                        target.insert(k, v);
                    }
                }
            }
        }
        if target.len() > 50 {
            return Err(ApiError::bad_param(
                param,
                "You can have up to 50 metadata keys on an object.",
            ));
        }
        Ok(())
    }
}

/// A text parameter of an update: absent, emptied (`x=` unsets), or set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Patch<T> {
    Keep,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    /// Validates or converts a value being set.
    pub fn try_map<U>(self, f: impl FnOnce(T) -> ApiResult<U>) -> ApiResult<Patch<U>> {
        Ok(match self {
            Patch::Keep => Patch::Keep,
            Patch::Clear => Patch::Clear,
            Patch::Set(v) => Patch::Set(f(v)?),
        })
    }

    pub fn apply(self, target: &mut Option<T>) {
        match self {
            Patch::Keep => {}
            Patch::Clear => *target = None,
            Patch::Set(v) => *target = Some(v),
        }
    }
}

impl<'a> Params<'a> {
    /// The full name of a parameter at this level: `business_profile[name]`.
    pub fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}[{key}]", self.path)
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Rejects any parameter not in `allowed`, as Stripe does.
    pub fn only(&self, allowed: &[&str]) -> ApiResult<()> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(unknown) => Err(ApiError::unknown_param(&self.name(unknown))),
            None => Ok(()),
        }
    }

    /// A string parameter.
    pub fn str(&self, key: &str) -> ApiResult<Option<&'a str>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Node::Value(v)) => Ok(Some(v.as_str())),
            Some(_) => Err(ApiError::bad_param(
                &self.name(key),
                format!("Invalid string: {} must be a string", self.name(key)),
            )),
        }
    }

    /// A string parameter that must be present and non-empty.
    pub fn required(&self, key: &str) -> ApiResult<&'a str> {
        match self.str(key)? {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::missing(&self.name(key))),
        }
    }

    /// A non-empty string, `None` when absent; an empty string is an error.
    pub fn text(&self, key: &str) -> ApiResult<Option<String>> {
        match self.str(key)? {
            None => Ok(None),
            Some("") => Err(ApiError::bad_param(
                &self.name(key),
                format!(
                    "You passed an empty string for '{}'. We assume empty values are an attempt \
                     to unset a parameter; however '{}' cannot be unset. You should remove '{}' \
                     from your request or supply a non-empty value.",
                    self.name(key),
                    self.name(key),
                    self.name(key)
                ),
            )
            .code("parameter_invalid_empty")),
            Some(v) => Ok(Some(v.to_owned())),
        }
    }

    /// An optional text field of an update: an empty string unsets it.
    pub fn patch_text(&self, key: &str) -> ApiResult<Patch<String>> {
        Ok(match self.str(key)? {
            None => Patch::Keep,
            Some("") => Patch::Clear,
            Some(v) => Patch::Set(v.to_owned()),
        })
    }

    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.str(key)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad_param(
                &self.name(key),
                format!("Invalid boolean: {other}"),
            )),
        }
    }

    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.str(key)? {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_param(&self.name(key), format!("Invalid integer: {v}"))
                    .code("parameter_invalid_integer")
            }),
        }
    }

    /// A time filter as Stripe's list endpoints take it (`created`, `arrival_date`): an exact
    /// timestamp, or a range hash (`created[gte]=…`; `gt`, `gte`, `lt`, `lte`), as the inclusive
    /// bounds it allows.
    pub fn range(&self, key: &str) -> ApiResult<Option<(i64, i64)>> {
        if !matches!(self.map.get(key), Some(Node::Map(_))) {
            return Ok(self.int(key)?.map(|t| (t, t)));
        }
        let Some(r) = self.map(key, &["gt", "gte", "lt", "lte"])? else {
            return Ok(None);
        };
        let lo = [r.int("gt")?.map(|v| v.saturating_add(1)), r.int("gte")?];
        let hi = [r.int("lt")?.map(|v| v.saturating_sub(1)), r.int("lte")?];
        Ok(Some((
            lo.into_iter().flatten().fold(i64::MIN, i64::max),
            hi.into_iter().flatten().fold(i64::MAX, i64::min),
        )))
    }

    /// A nested hash (`key[...]`), checked against the names it may hold.
    pub fn map(&self, key: &str, allowed: &[&str]) -> ApiResult<Option<Params<'a>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Node::Map(inner)) => {
                let params = Params {
                    map: inner,
                    path: self.name(key),
                };
                params.only(allowed)?;
                Ok(Some(params))
            }
            Some(_) => Err(ApiError::bad_param(
                &self.name(key),
                format!("Invalid object: {} must be a hash", self.name(key)),
            )),
        }
    }

    /// A hash whose keys are free-form (capabilities): each key with its own view.
    pub fn entries(&self, key: &str) -> ApiResult<Vec<(&'a str, Params<'a>)>> {
        match self.map.get(key) {
            None => Ok(Vec::new()),
            Some(Node::Map(inner)) => inner
                .iter()
                .map(|(k, node)| match node {
                    Node::Map(m) => Ok((
                        k.as_str(),
                        Params {
                            map: m,
                            path: format!("{}[{k}]", self.name(key)),
                        },
                    )),
                    _ => Err(ApiError::bad_param(
                        &format!("{}[{k}]", self.name(key)),
                        "Invalid object",
                    )),
                })
                .collect(),
            Some(_) => Err(ApiError::bad_param(&self.name(key), "Invalid object")),
        }
    }

    /// An array of hashes: `k[0][a]=x&k[1][a]=y` (each with its own view, in index order).
    pub fn items(&self, key: &str) -> ApiResult<Option<Vec<Params<'a>>>> {
        let invalid = || ApiError::bad_param(&self.name(key), "Invalid array");
        let numbered: Vec<(usize, &'a Node)> = match self.map.get(key) {
            None => return Ok(None),
            Some(Node::List(items)) => items.iter().enumerate().collect(),
            Some(Node::Map(indexed)) => {
                let mut numbered = indexed
                    .iter()
                    .map(|(k, v)| k.parse::<usize>().map(|i| (i, v)).map_err(|_| invalid()))
                    .collect::<ApiResult<Vec<_>>>()?;
                numbered.sort_by_key(|(i, _)| *i);
                numbered
            }
            Some(Node::Value(v)) if v.is_empty() => Vec::new(),
            Some(Node::Value(_)) => return Err(invalid()),
        };
        numbered
            .into_iter()
            .enumerate()
            .map(|(pos, (_, node))| match node {
                Node::Map(m) => Ok(Params {
                    map: m,
                    path: format!("{}[{pos}]", self.name(key)),
                }),
                _ => Err(invalid()),
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some)
    }

    /// An array of strings: `k[]=a&k[]=b` or `k[0]=a&k[1]=b`.
    pub fn strings(&self, key: &str) -> ApiResult<Option<Vec<String>>> {
        let invalid = || ApiError::bad_param(&self.name(key), "Invalid array");
        let nodes: Vec<&Node> = match self.map.get(key) {
            None => return Ok(None),
            Some(Node::List(items)) => items.iter().collect(),
            Some(Node::Map(indexed)) => {
                let mut numbered = indexed
                    .iter()
                    .map(|(k, v)| k.parse::<usize>().map(|i| (i, v)).map_err(|_| invalid()))
                    .collect::<ApiResult<Vec<_>>>()?;
                numbered.sort_by_key(|(i, _)| *i);
                numbered.into_iter().map(|(_, v)| v).collect()
            }
            // `k=` sends an empty array.
            Some(Node::Value(v)) if v.is_empty() => Vec::new(),
            Some(Node::Value(_)) => return Err(invalid()),
        };
        nodes
            .into_iter()
            .map(|n| match n {
                Node::Value(v) => Ok(v.clone()),
                _ => Err(invalid()),
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some)
    }

    /// `metadata[k]=v` pairs, or `metadata=` to clear.
    pub fn metadata(&self, key: &str) -> ApiResult<Option<MetadataUpdate>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Node::Value(v)) if v.is_empty() => Ok(Some(MetadataUpdate::Clear)),
            Some(Node::Map(inner)) => inner
                .iter()
                .map(|(k, v)| match v {
                    Node::Value(v) => Ok((k.clone(), v.clone())),
                    _ => Err(ApiError::bad_param(
                        &format!("{}[{k}]", self.name(key)),
                        "Invalid metadata value: must be a string",
                    )),
                })
                .collect::<ApiResult<Vec<_>>>()
                .map(|pairs| Some(MetadataUpdate::Set(pairs))),
            Some(_) => Err(ApiError::bad_param(
                &self.name(key),
                "Invalid metadata: must be a hash of keys and values",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(s: &str) -> Form {
        Form::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn a_time_filter_is_an_exact_timestamp_or_a_range() {
        let range = |q: &str| form(q).params().range("created");
        assert_eq!(range("created=100").unwrap(), Some((100, 100)));
        assert_eq!(range("limit=3").unwrap(), None);
        assert_eq!(
            range("created[gt]=100&created[lte]=200").unwrap(),
            Some((101, 200))
        );
        assert_eq!(range("created[gte]=100").unwrap(), Some((100, i64::MAX)));
        assert!(range("created=soon").is_err());
        assert!(range("created[after]=1").is_err());
    }

    #[test]
    fn brackets_nest() {
        let f = form(
            "business_profile%5Bname%5D=Bright+Yoga&metadata[a]=1&metadata[b]=&\
             capabilities[card_payments][requested]=true&expand[]=x&expand[]=y&ids[1]=b&ids[0]=a",
        );
        let p = f.params();
        let bp = p.map("business_profile", &["name"]).unwrap().unwrap();
        assert_eq!(bp.str("name").unwrap(), Some("Bright Yoga"));
        assert_eq!(
            p.metadata("metadata").unwrap(),
            Some(MetadataUpdate::Set(vec![
                ("a".into(), "1".into()),
                ("b".into(), String::new())
            ]))
        );
        let caps = p.entries("capabilities").unwrap();
        assert_eq!(caps[0].0, "card_payments");
        assert_eq!(caps[0].1.bool("requested").unwrap(), Some(true));
        assert_eq!(p.strings("expand").unwrap().unwrap(), vec!["x", "y"]);
        assert_eq!(p.strings("ids").unwrap().unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn bad_input_is_a_stripe_error_not_a_panic() {
        assert!(Form::parse(b"a[b=1").is_err());
        assert!(Form::parse(b"[x]=1").is_err());
        assert!(Form::parse(b"a=1&a[b]=2").is_err());
        let deep = format!("a{}=1", "[x]".repeat(10_000));
        assert!(Form::parse(deep.as_bytes()).is_err());
        let f = form("active=maybe&limit=ten&name[x]=1&x=1");
        let p = f.params();
        assert_eq!(
            p.bool("active").unwrap_err().message,
            "Invalid boolean: maybe"
        );
        assert_eq!(
            p.int("limit").unwrap_err().code,
            Some("parameter_invalid_integer")
        );
        assert!(p.str("name").is_err());
        let e = p.only(&["active", "limit", "name"]).unwrap_err();
        assert_eq!(e.code, Some("parameter_unknown"));
        assert_eq!(e.param.as_deref(), Some("x"));
        assert_eq!(
            p.required("missing").unwrap_err().code,
            Some("parameter_missing")
        );
    }

    #[test]
    fn metadata_rules() {
        let mut m = BTreeMap::from([("keep".to_owned(), "1".to_owned())]);
        MetadataUpdate::Set(vec![("k".into(), "v".into())])
            .apply(&mut m, "metadata")
            .unwrap();
        assert_eq!(m.len(), 2);
        MetadataUpdate::Set(vec![("k".into(), String::new())])
            .apply(&mut m, "metadata")
            .unwrap();
        assert_eq!(m.len(), 1);
        MetadataUpdate::Clear.apply(&mut m, "metadata").unwrap();
        assert!(m.is_empty());
        let long = "k".repeat(41);
        assert!(
            MetadataUpdate::Set(vec![(long, "v".into())])
                .apply(&mut m, "metadata")
                .is_err()
        );
    }

    #[test]
    fn canonical_ignores_order() {
        assert_eq!(form("a=1&b=2").canonical(), form("b=2&a=1").canonical());
        assert_ne!(form("a=1&b=2").canonical(), form("a=1&b=3").canonical());
    }
}
