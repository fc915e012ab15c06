//! RoadRunner's decoding rules, written down once. RoadRunner reads every section through viper
//! and mapstructure with `WeaklyTypedInput` and the hooks `StringToTimeDuration` and
//! `StringToSlice(",")`; PHP integrations rely on it (Laravel Octane passes
//! `-o server.command=/usr/bin/php,worker`, the Symfony bundle ships `server.env` as a list of
//! one-key maps). [`Weak`] deserializes a section of the tree with the same rules:
//!
//! | the type wants | and the file has | it reads |
//! |---|---|---|
//! | a list | a string | the string split on commas (`""` is an empty list) |
//! | a list | a number or boolean | a list of that one value |
//! | a map or struct | a list of maps | the maps merged, later keys winning |
//! | a map, a list | nothing (`key:`) or an empty list/map | empty |
//! | a number | a string | the string parsed (`0x` hex too) |
//! | a number | a boolean | 1 or 0 |
//! | a boolean | a string | Go's `ParseBool`: `1 t T TRUE true True`, `0 f F FALSE false False` |
//! | a boolean | a number | not zero |
//! | a string | a number or boolean | its text (`true` is `1`, as mapstructure writes it) |
//!
//! Go durations and commands have their own readers built on these (`duration`, `pool::Command`).
//! Structs also report the keys they do not know (`Unknown`), for the misspelt-key warnings.

use std::cell::RefCell;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

type Error = serde_json::Error;

/// What a section read learnt about its keys: the ones a struct took and the ones it ignored.
#[derive(Debug, Default)]
pub(super) struct Keys {
    pub taken: Vec<String>,
    /// Ignored key path, and the keys its struct knows.
    pub ignored: Vec<(String, &'static [&'static str])>,
}

pub(super) struct Weak<'a> {
    pub value: &'a Value,
    /// Dotted path of `value`, for `Keys`.
    pub path: String,
    pub keys: &'a RefCell<Keys>,
}

impl<'a> Weak<'a> {
    fn child<'b>(&'b self, value: &'b Value, key: &str) -> Weak<'b> {
        Weak { value, path: format!("{}.{key}", self.path), keys: self.keys }
    }

    fn with<'b>(&'b self, value: &'b Value) -> Weak<'b> {
        Weak { value, path: self.path.clone(), keys: self.keys }
    }
}

/// Go's `strconv.ParseBool`.
fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: decimal, `0x`, `0o`, `0b`, `_` separators.
fn go_int(s: &str) -> Option<Value> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = digits.replace('_', "");
    let (radix, digits) = match digits.get(..2) {
        Some("0x" | "0X") => (16, &digits[2..]),
        Some("0o" | "0O") => (8, &digits[2..]),
        Some("0b" | "0B") => (2, &digits[2..]),
        _ => (10, digits.as_str()),
    };
    let n = u64::from_str_radix(digits, radix).ok()?;
    Some(if negative { Value::from(-i64::try_from(n).ok()?) } else { Value::from(n) })
}

/// Lists and maps are read from these shapes; `None`: leave the value to the visitor's error.
fn as_list(value: &Value) -> Option<Value> {
    Some(match value {
        Value::Array(_) => return None,
        Value::String(s) if s.is_empty() => Value::Array(Vec::new()),
        Value::String(s) => Value::Array(s.split(',').map(|p| Value::String(p.to_string())).collect()),
        Value::Number(_) | Value::Bool(_) => Value::Array(vec![value.clone()]),
        Value::Null => Value::Array(Vec::new()),
        Value::Object(m) if m.is_empty() => Value::Array(Vec::new()),
        Value::Object(_) => return None,
    })
}

fn as_map(value: &Value) -> Option<Value> {
    match value {
        Value::Null => Some(Value::Object(Map::new())),
        Value::Array(items) if items.iter().all(Value::is_object) => {
            let mut merged = Map::new();
            items.iter().filter_map(Value::as_object).for_each(|m| merged.extend(m.clone()));
            Some(Value::Object(merged))
        }
        _ => None,
    }
}

fn as_number(value: &Value) -> Option<Value> {
    match value {
        Value::String(s) => go_int(s.trim()).or_else(|| s.trim().parse::<f64>().ok().and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))),
        Value::Bool(b) => Some(Value::from(u8::from(*b))),
        _ => None,
    }
}

macro_rules! number {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match as_number(self.value) {
                Some(n) => n.$method(visitor),
                None => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for Weak<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(items) => visitor.visit_seq(Items { items: items.iter(), parent: &self, index: 0 }),
            Value::Object(map) => visitor.visit_map(Entries { entries: map.iter(), parent: &self, value: None }),
            Value::String(s) => visitor.visit_str(s),
            scalar => scalar.clone().deserialize_any(visitor),
        }
    }

    number!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64);

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) if go_bool(s.trim()).is_some() => visitor.visit_bool(go_bool(s.trim()).unwrap_or_default()),
            Value::Number(n) => visitor.visit_bool(n.as_f64() != Some(0.0)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Number(n) => visitor.visit_string(n.to_string()),
            Value::Bool(b) => visitor.visit_str(if *b { "1" } else { "0" }),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match as_list(self.value) {
            Some(list) => self.with(&list).deserialize_any(visitor),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _name: &'static str, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match as_map(self.value) {
            Some(map) => self.with(&map).deserialize_any(visitor),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(self, _name: &'static str, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        if let Some(map) = as_map(self.value) {
            return self.with(&map).deserialize_struct(_name, fields, visitor);
        }
        if let Value::Object(map) = self.value {
            let mut keys = self.keys.borrow_mut();
            for key in map.keys() {
                let path = format!("{}.{key}", self.path);
                if fields.contains(&key.as_str()) {
                    keys.taken.push(path);
                } else {
                    keys.ignored.push((path, fields));
                }
            }
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(self, name: &'static str, variants: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        self.value.clone().deserialize_enum(name, variants, visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    serde::forward_to_deserialize_any! { bytes byte_buf unit unit_struct ignored_any }
}

struct Items<'p, 'a> {
    items: std::slice::Iter<'p, Value>,
    parent: &'p Weak<'a>,
    index: usize,
}

impl<'de> SeqAccess<'de> for Items<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        let Some(item) = self.items.next() else { return Ok(None) };
        self.index += 1;
        seed.deserialize(self.parent.child(item, &(self.index - 1).to_string())).map(Some)
    }
}

struct Entries<'p, 'a> {
    entries: serde_json::map::Iter<'p>,
    parent: &'p Weak<'a>,
    value: Option<(&'p String, &'p Value)>,
}

impl<'de> MapAccess<'de> for Entries<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        self.value = Some((key, value));
        seed.deserialize(key.as_str().into_deserializer()).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let (key, value) = self.value.take().ok_or_else(|| de::Error::custom("value without a key"))?;
        seed.deserialize(self.parent.child(value, key))
    }
}

#[cfg(test)]
mod tests {
    use super::go_int;
    use serde_json::json;

    #[test]
    fn go_integers() {
        assert_eq!(go_int("0x1F"), Some(json!(31)));
        assert_eq!(go_int("-12"), Some(json!(-12)));
        assert_eq!(go_int("1_000"), Some(json!(1000)));
        assert_eq!(go_int("1.5"), None);
    }
}
