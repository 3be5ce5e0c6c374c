//! A YAML document as a tree whose every value remembers where it came from (file line and
//! column, or the `-o` argument that set it), so that a validation error found long after parsing
//! can still point at the exact line of the experiment file.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Where a value was written.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// Line and column (1-based) in the experiment file.
    File { line: u64, column: u64 },
    /// A `-o key=value` argument on the command line.
    CommandLine(String),
    /// Filled in by mixsweep (e.g. the seed from `seeds:`).
    Implied,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { line, column } => write!(f, "line {line}, column {column}"),
            Origin::CommandLine(arg) => write!(f, "command line `-o {arg}`"),
            Origin::Implied => f.write_str("implied"),
        }
    }
}

/// A map key with its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub origin: Origin,
}

/// One YAML value with its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub origin: Origin,
}

/// The YAML data model, with located children. Map keys keep their written order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// One step of a path into a tree: a map key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Formats a path the way a user writes it: `train.milestones[1]`.
pub fn path_to_string(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Splits `train.epochs` or `grid[1].alpha` into steps.
pub fn parse_path(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in text.split('.') {
        let (name, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            steps.push(Step::Key(name.to_string()));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            match idx.trim_end_matches(']').parse::<usize>() {
                Ok(i) => steps.push(Step::Index(i)),
                Err(_) => steps.push(Step::Key(idx.trim_end_matches(']').to_string())),
            }
        }
    }
    steps
}

impl Node {
    pub fn new(value: Value, origin: Origin) -> Self {
        Node { value, origin }
    }

    /// Parses one YAML document. Syntax errors carry serde-saphyr's line and column.
    pub fn parse(text: &str) -> Result<Node, serde_saphyr::Error> {
        let spanned: Spanned<Node> = serde_saphyr::from_str(text)?;
        Ok(with_origin(spanned))
    }

    /// The child at `path`, if every step exists.
    pub fn get(&self, path: &[Step]) -> Option<&Node> {
        let mut node = self;
        for step in path {
            node = match (step, &node.value) {
                (Step::Key(k), Value::Map(entries)) => {
                    &entries.iter().find(|(key, _)| &key.name == k)?.1
                }
                (Step::Index(i), Value::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Where to point a user for `path`: the value itself when the whole path exists, else the
    /// deepest key that does (a misspelt key inside `train:` points at `train:`'s line).
    pub fn locate(&self, path: &[Step]) -> Origin {
        let mut node = self;
        let mut key_origin = self.origin.clone();
        for step in path {
            let next = match (step, &node.value) {
                (Step::Key(k), Value::Map(entries)) => entries
                    .iter()
                    .find(|(key, _)| &key.name == k)
                    .map(|(key, n)| {
                        key_origin = key.origin.clone();
                        n
                    }),
                (Step::Index(i), Value::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return key_origin,
            }
        }
        match node.origin {
            Origin::Implied => key_origin,
            _ => node.origin.clone(),
        }
    }

    /// Sets the value at a dotted path, creating maps on the way. Fails with the prefix that
    /// is not a map.
    pub fn set(&mut self, path: &[Step], value: Node) -> Result<(), String> {
        let Some((first, rest)) = path.split_first() else {
            *self = value;
            return Ok(());
        };
        let Step::Key(name) = first else {
            return Err("an index cannot be set with a dotted key".to_string());
        };
        if matches!(self.value, Value::Null) {
            self.value = Value::Map(Vec::new());
        }
        let Value::Map(entries) = &mut self.value else {
            return Err(format!(
                "`{name}` is set inside a value that is not a mapping"
            ));
        };
        let pos = match entries.iter().position(|(k, _)| &k.name == name) {
            Some(p) => p,
            None => {
                entries.push((
                    Key {
                        name: name.clone(),
                        origin: value.origin.clone(),
                    },
                    Node::new(Value::Null, value.origin.clone()),
                ));
                entries.len() - 1
            }
        };
        entries[pos].1.set(rest, value)
    }

    /// Converts to JSON for typed deserialization (keys in written order become a sorted map).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::String(f.to_string())),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A short rendering of the value for error messages: `2.0`, `[0, 1]`, `"erm"`.
    pub fn show(&self) -> String {
        match &self.value {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f:?}"),
            Value::Str(s) => s.clone(),
            Value::Seq(items) => {
                format!(
                    "[{}]",
                    items.iter().map(Node::show).collect::<Vec<_>>().join(", ")
                )
            }
            Value::Map(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.name, v.show()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Numeric equality for ints and floats (`2` matches `2.0`), structural otherwise; origins
    /// are ignored.
    pub fn same_value(&self, other: &Node) -> bool {
        match (&self.value, &other.value) {
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => *a as f64 == *b,
            (Value::Seq(a), Value::Seq(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_value(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter().all(|(k, v)| {
                        b.iter()
                            .any(|(k2, v2)| k.name == k2.name && v.same_value(v2))
                    })
            }
            (a, b) => a == b,
        }
    }
}

fn location_of<T>(s: &Spanned<T>) -> Origin {
    let line = s.referenced.line();
    if line == 0 {
        Origin::Implied
    } else {
        Origin::File {
            line,
            column: s.referenced.column(),
        }
    }
}

fn with_origin(s: Spanned<Node>) -> Node {
    let origin = location_of(&s);
    Node {
        value: s.value.value,
        origin,
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::new(Value::Null, Origin::Implied))
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::new(Value::Null, Origin::Implied))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::new(Value::Bool(v), Origin::Implied))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::new(Value::Int(v), Origin::Implied))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(|i| Node::new(Value::Int(i), Origin::Implied))
            .map_err(|_| E::custom(format!("integer {v} is too large")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::new(Value::Float(v), Origin::Implied))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::new(Value::Str(v.to_string()), Origin::Implied))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::new(Value::Str(v), Origin::Implied))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(with_origin(item));
        }
        Ok(Node::new(Value::Seq(items), Origin::Implied))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(Key, Node)> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let origin = location_of(&key);
            let value = with_origin(map.next_value::<Spanned<Node>>()?);
            if entries.iter().any(|(k, _)| k.name == key.value) {
                return Err(de::Error::custom(format!(
                    "duplicate key `{}` ({origin})",
                    key.value
                )));
            }
            entries.push((
                Key {
                    name: key.value,
                    origin,
                },
                value,
            ));
        }
        Ok(Node::new(Value::Map(entries), Origin::Implied))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_lines() {
        let n = Node::parse("a: 1\nb:\n  c: [1, 2.5]\n").unwrap();
        let c1 = n.get(&parse_path("b.c[1]")).unwrap();
        assert_eq!(c1.value, Value::Float(2.5));
        assert_eq!(
            c1.origin,
            Origin::File {
                line: 3,
                column: 10
            }
        );
        assert_eq!(
            n.locate(&parse_path("b.zz")),
            Origin::File { line: 2, column: 1 }
        );
    }

    #[test]
    fn set_creates_maps_and_ints_match_floats() {
        let mut n = Node::parse("train: {epochs: 3}").unwrap();
        let v = Node::new(Value::Int(2), Origin::CommandLine("train.lr=2".into()));
        n.set(&parse_path("train.lr"), v).unwrap();
        assert!(
            n.get(&parse_path("train.lr"))
                .unwrap()
                .same_value(&Node::new(Value::Float(2.0), Origin::Implied))
        );
        assert!(
            n.set(
                &parse_path("train.epochs.x"),
                Node::new(Value::Null, Origin::Implied)
            )
            .is_err()
        );
    }
}
