//! PHP-style data trees from form field names (PROTOCOL.md §3.4): `a[b][c]` nests, `a[]` makes a
//! list, a plain name keeps the last value.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid multiple values to key '{0}' in tree")]
pub struct TreeError(pub String);

/// Split `a[b][]` into `["a", "b", ""]`; spaces are ignored. `None` past 127 keys (dropped).
pub fn keys(name: &str) -> Option<Vec<String>> {
    let name: String = name.chars().filter(|c| *c != ' ').collect();
    let (head, mut rest) = match name.find('[') {
        Some(i) => (name[..i].to_string(), &name[i..]),
        None => (name.clone(), ""),
    };
    let mut keys = vec![head];
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(end) = stripped.find(']') else { break };
        keys.push(stripped[..end].to_string());
        rest = &stripped[end + 1..];
    }
    (keys.len() <= 127).then_some(keys)
}

/// A tree under construction.
#[derive(Debug, Default)]
pub struct Tree(Map<String, Value>);

impl Tree {
    /// Add one submitted value under a field name.
    pub fn push(&mut self, name: &str, value: Value) -> Result<(), TreeError> {
        let Some(keys) = keys(name) else { return Ok(()) };
        insert(&mut self.0, &keys, value)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

fn is_empty_value(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.is_empty())
}

fn insert(map: &mut Map<String, Value>, keys: &[String], value: Value) -> Result<(), TreeError> {
    let key = &keys[0];
    match keys.len() {
        1 => {
            if matches!(map.get(key), Some(Value::Object(_))) {
                if is_empty_value(&value) {
                    return Ok(());
                }
                return Err(TreeError(key.clone()));
            }
            map.insert(key.clone(), value);
            Ok(())
        }
        2 if keys[1].is_empty() => {
            match map.entry(key.clone()).or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(list) => list.push(value),
                _ if is_empty_value(&value) => {}
                _ => return Err(TreeError(key.clone())),
            }
            Ok(())
        }
        _ => {
            let slot = map.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
            match slot {
                Value::Object(inner) => insert(inner, &keys[1..], value),
                Value::String(s) if s.is_empty() => {
                    *slot = Value::Object(Map::new());
                    let Value::Object(inner) = slot else { unreachable!() };
                    insert(inner, &keys[1..], value)
                }
                _ => Err(TreeError(key.clone())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tree(fields: &[(&str, &str)]) -> Result<Value, TreeError> {
        let mut t = Tree::default();
        for (k, v) in fields {
            t.push(k, json!(v))?;
        }
        Ok(t.into_value())
    }

    #[test]
    fn names_split_into_keys() {
        assert_eq!(keys("a[b][c]").unwrap(), ["a", "b", "c"]);
        assert_eq!(keys("a[]").unwrap(), ["a", ""]);
        assert_eq!(keys("a [ b ]").unwrap(), ["a", "b"]);
        assert_eq!(keys("plain").unwrap(), ["plain"]);
    }

    #[test]
    fn php_style_trees() {
        let t = tree(&[("a", "1"), ("a", "2"), ("list[]", "x"), ("list[]", "y"), ("n[b][c]", "v"), ("n[0]", "z"), ("n[b][l][]", "q")]).unwrap();
        assert_eq!(t, json!({"a": "2", "list": ["x", "y"], "n": {"b": {"c": "v", "l": ["q"]}, "0": "z"}}));
    }

    #[test]
    fn scalar_and_branch_conflict() {
        assert_eq!(tree(&[("a[b]", "2"), ("a", "1")]).unwrap_err().to_string(), "invalid multiple values to key 'a' in tree");
        assert_eq!(tree(&[("a", "1"), ("a[b]", "2")]).unwrap_err(), TreeError("a".into()));
        // Empty values are tolerated in conflicts.
        assert_eq!(tree(&[("a[b]", "2"), ("a", "")]).unwrap(), json!({"a": {"b": "2"}}));
    }

    #[test]
    fn too_deep_names_are_dropped() {
        let name = format!("a{}", "[x]".repeat(127));
        assert_eq!(tree(&[(&name, "v"), ("b", "1")]).unwrap(), json!({"b": "1"}));
    }
}
