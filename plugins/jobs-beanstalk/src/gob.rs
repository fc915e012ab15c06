//! The job body RoadRunner puts into beanstalkd: a Go `encoding/gob` stream of one `Item`
//! `{Job, Ident, Payload, Options *{Priority, Pipeline, Delay, AutoAck, Queue}}`, and since v6 an
//! exported `Hdrs map[string][]string`. gob matches fields by name and skips unknown ones, so a
//! job without headers is written exactly as v5 writes it (readable by both) and `Hdrs` is
//! declared only when there are headers. The decoder reads any gob stream of a struct, so it
//! also accepts other field orders and type ids.

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    pub job: String,
    pub ident: String,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, Vec<String>>,
    pub options: Option<Options>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub priority: i64,
    pub pipeline: String,
    pub delay: i64,
    pub auto_ack: bool,
    pub queue: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GobError {
    #[error("gob: data ends early")]
    Truncated,
    #[error("gob: {0}")]
    Invalid(String),
}

// Type ids gob predefines, and the ones this encoder assigns (user types start at 65).
const BOOL: i64 = 1;
const INT: i64 = 2;
const BYTES: i64 = 5;
const STRING: i64 = 6;
const ITEM: i64 = 65;
const OPTIONS: i64 = 66;
const HEADERS: i64 = 67;
const STRINGS: i64 = 68;

pub fn encode(item: &Item) -> Vec<u8> {
    let mut out = Vec::new();
    let mut item_fields = vec![("Job", STRING), ("Ident", STRING), ("Payload", BYTES), ("Options", OPTIONS)];
    if !item.headers.is_empty() {
        item_fields.push(("Hdrs", HEADERS));
    }
    message(&mut out, |b| struct_type(b, "Item", ITEM, &item_fields));
    let options = [("Priority", INT), ("Pipeline", STRING), ("Delay", INT), ("AutoAck", BOOL), ("Queue", STRING)];
    message(&mut out, |b| struct_type(b, "Options", OPTIONS, &options));
    if !item.headers.is_empty() {
        message(&mut out, |b| {
            int(b, -HEADERS);
            uint(b, 4); // wireType.MapT
            common_type(b, "map[string][]string", HEADERS);
            uint(b, 1);
            int(b, STRING);
            uint(b, 1);
            int(b, STRINGS);
            uint(b, 0);
            uint(b, 0);
        });
        message(&mut out, |b| {
            int(b, -STRINGS);
            uint(b, 2); // wireType.SliceT
            common_type(b, "[]string", STRINGS);
            uint(b, 1);
            int(b, STRING);
            uint(b, 0);
            uint(b, 0);
        });
    }
    message(&mut out, |b| {
        int(b, ITEM);
        let mut fields = Fields::default();
        fields.string(b, 0, &item.job);
        fields.string(b, 1, &item.ident);
        fields.bytes(b, 2, &item.payload);
        if let Some(o) = &item.options {
            fields.at(b, 3);
            let mut inner = Fields::default();
            inner.int(b, 0, o.priority);
            inner.string(b, 1, &o.pipeline);
            inner.int(b, 2, o.delay);
            if o.auto_ack {
                inner.at(b, 3);
                uint(b, 1);
            }
            inner.string(b, 4, &o.queue);
            uint(b, 0);
        }
        if !item.headers.is_empty() {
            fields.at(b, 4);
            uint(b, item.headers.len() as u64);
            for (k, values) in &item.headers {
                string(b, k);
                uint(b, values.len() as u64);
                for v in values {
                    string(b, v);
                }
            }
        }
        uint(b, 0);
    });
    out
}

/// One gob message: its length, then the body.
fn message(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let mut b = Vec::new();
    body(&mut b);
    uint(out, b.len() as u64);
    out.extend_from_slice(&b);
}

fn struct_type(b: &mut Vec<u8>, name: &str, id: i64, fields: &[(&str, i64)]) {
    int(b, -id);
    uint(b, 3); // wireType.StructT
    common_type(b, name, id);
    uint(b, 1);
    uint(b, fields.len() as u64);
    for (name, id) in fields {
        uint(b, 1);
        string(b, name);
        uint(b, 1);
        int(b, *id);
        uint(b, 0);
    }
    uint(b, 0);
    uint(b, 0);
}

fn common_type(b: &mut Vec<u8>, name: &str, id: i64) {
    uint(b, 1);
    uint(b, 1);
    string(b, name);
    uint(b, 1);
    int(b, id);
    uint(b, 0);
}

/// Struct fields are sent as deltas from the previous one; zero values are left out.
#[derive(Default)]
struct Fields(i64);

impl Fields {
    fn at(&mut self, b: &mut Vec<u8>, field: i64) {
        uint(b, (field - self.0 + 1) as u64);
        self.0 = field + 1;
    }
    fn string(&mut self, b: &mut Vec<u8>, field: i64, s: &str) {
        self.bytes(b, field, s.as_bytes());
    }
    fn bytes(&mut self, b: &mut Vec<u8>, field: i64, v: &[u8]) {
        if !v.is_empty() {
            self.at(b, field);
            uint(b, v.len() as u64);
            b.extend_from_slice(v);
        }
    }
    fn int(&mut self, b: &mut Vec<u8>, field: i64, v: i64) {
        if v != 0 {
            self.at(b, field);
            int(b, v);
        }
    }
}

fn uint(b: &mut Vec<u8>, v: u64) {
    if v < 128 {
        b.push(v as u8);
        return;
    }
    let bytes = v.to_be_bytes();
    let skip = (v.leading_zeros() / 8) as usize;
    b.push((256 - (8 - skip)) as u8);
    b.extend_from_slice(&bytes[skip..]);
}

fn int(b: &mut Vec<u8>, v: i64) {
    uint(b, if v < 0 { (!(v as u64)) << 1 | 1 } else { (v as u64) << 1 });
}

fn string(b: &mut Vec<u8>, s: &str) {
    uint(b, s.len() as u64);
    b.extend_from_slice(s.as_bytes());
}

/// A decoded gob value.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(i64),
    Uint(u64),
    Bool(bool),
    Float(f64),
    Bytes(Vec<u8>),
    Struct(Vec<(String, Value)>),
    List(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

/// A type a stream defined.
enum Wire {
    Struct(Vec<(String, i64)>),
    List(i64),
    Map(i64, i64),
}

pub fn decode(data: &[u8]) -> Result<Item, GobError> {
    let mut r = Reader { buf: data, pos: 0 };
    let mut types = HashMap::new();
    while r.pos < data.len() {
        let len = r.uint()? as usize;
        let end = r.pos.checked_add(len).filter(|&e| e <= data.len()).ok_or(GobError::Truncated)?;
        let mut m = Reader { buf: &data[..end], pos: r.pos };
        r.pos = end;
        let id = m.int()?;
        if id < 0 {
            let wire = m.wire_type()?;
            types.insert(-id, wire);
            continue;
        }
        if !matches!(types.get(&id), Some(Wire::Struct(_))) {
            return Err(GobError::Invalid(format!("expected a struct, found type {id}")));
        }
        return item(m.value(id, &types)?);
    }
    Err(GobError::Invalid("no value in the stream".into()))
}

fn item(v: Value) -> Result<Item, GobError> {
    let Value::Struct(fields) = v else { unreachable!("checked by decode") };
    let mut item = Item::default();
    for (name, v) in fields {
        match (name.as_str(), v) {
            ("Job", Value::Bytes(b)) => item.job = text(b)?,
            ("Ident", Value::Bytes(b)) => item.ident = text(b)?,
            ("Payload", Value::Bytes(b)) => item.payload = b,
            ("Hdrs", Value::Map(entries)) => {
                for (k, v) in entries {
                    let (Value::Bytes(k), Value::List(values)) = (k, v) else { return Err(GobError::Invalid("Hdrs is not a map[string][]string".into())) };
                    let values = values.into_iter().map(|v| if let Value::Bytes(b) = v { text(b) } else { Err(GobError::Invalid("a header value is not a string".into())) });
                    item.headers.insert(text(k)?, values.collect::<Result<_, _>>()?);
                }
            }
            ("Options", Value::Struct(opts)) => {
                let mut o = Options::default();
                for (name, v) in opts {
                    match (name.as_str(), v) {
                        ("Priority", Value::Int(n)) => o.priority = n,
                        ("Delay", Value::Int(n)) => o.delay = n,
                        ("Pipeline", Value::Bytes(b)) => o.pipeline = text(b)?,
                        ("Queue", Value::Bytes(b)) => o.queue = text(b)?,
                        ("AutoAck", Value::Bool(b)) => o.auto_ack = b,
                        _ => {}
                    }
                }
                item.options = Some(o);
            }
            _ => {}
        }
    }
    Ok(item)
}

fn text(b: Vec<u8>) -> Result<String, GobError> {
    String::from_utf8(b).map_err(|_| GobError::Invalid("a string is not UTF-8".into()))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, GobError> {
        let b = *self.buf.get(self.pos).ok_or(GobError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], GobError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(GobError::Truncated)?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self) -> Result<u64, GobError> {
        let b = self.byte()?;
        if b < 128 {
            return Ok(b as u64);
        }
        let n = 256 - b as usize;
        if n > 8 {
            return Err(GobError::Invalid(format!("an unsigned integer of {n} bytes")));
        }
        Ok(self.take(n)?.iter().fold(0u64, |acc, &x| acc << 8 | x as u64))
    }

    fn int(&mut self) -> Result<i64, GobError> {
        let u = self.uint()?;
        Ok(if u & 1 == 1 { !(u >> 1) as i64 } else { (u >> 1) as i64 })
    }

    fn bytes(&mut self) -> Result<Vec<u8>, GobError> {
        let n = self.uint()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    /// Visit the fields of a struct sent as deltas, up to the closing 0.
    fn fields(&mut self, mut f: impl FnMut(&mut Self, u64) -> Result<(), GobError>) -> Result<(), GobError> {
        let mut field = 0u64;
        loop {
            let delta = self.uint()?;
            if delta == 0 {
                return Ok(());
            }
            field = field.checked_add(delta).ok_or_else(|| GobError::Invalid("field number overflows".into()))?;
            f(self, field - 1)?;
        }
    }

    /// A `wireType`: one of ArrayT, SliceT, StructT, MapT set.
    fn wire_type(&mut self) -> Result<Wire, GobError> {
        let mut wire = None;
        self.fields(|r, f| {
            wire = Some(match f {
                0 => {
                    let mut elem = 0;
                    r.fields(|r, f| match f {
                        0 => r.common_type(),
                        1 => r.int().map(|id| elem = id),
                        _ => r.int().map(drop),
                    })?;
                    Wire::List(elem)
                }
                1 => {
                    let mut elem = 0;
                    r.fields(|r, f| if f == 0 { r.common_type() } else { r.int().map(|id| elem = id) })?;
                    Wire::List(elem)
                }
                2 => {
                    let mut fields = Vec::new();
                    r.fields(|r, f| {
                        if f == 0 {
                            return r.common_type();
                        }
                        for _ in 0..r.uint()? {
                            let (mut name, mut id) = (String::new(), 0);
                            r.fields(|r, f| if f == 0 { text(r.bytes()?).map(|s| name = s) } else { r.int().map(|i| id = i) })?;
                            fields.push((name, id));
                        }
                        Ok(())
                    })?;
                    Wire::Struct(fields)
                }
                3 => {
                    let (mut key, mut elem) = (0, 0);
                    r.fields(|r, f| match f {
                        0 => r.common_type(),
                        1 => r.int().map(|id| key = id),
                        _ => r.int().map(|id| elem = id),
                    })?;
                    Wire::Map(key, elem)
                }
                _ => return Err(GobError::Invalid("GobEncoder/BinaryMarshaler types are not supported".into())),
            });
            Ok(())
        })?;
        wire.ok_or_else(|| GobError::Invalid("an empty type definition".into()))
    }

    fn common_type(&mut self) -> Result<(), GobError> {
        self.fields(|r, f| if f == 0 { r.bytes().map(drop) } else { r.int().map(drop) })
    }

    fn value(&mut self, id: i64, types: &HashMap<i64, Wire>) -> Result<Value, GobError> {
        Ok(match id {
            1 => Value::Bool(self.uint()? != 0),
            2 => Value::Int(self.int()?),
            3 => Value::Uint(self.uint()?),
            4 => Value::Float(f64::from_bits(self.uint()?.swap_bytes())),
            5 | 6 => Value::Bytes(self.bytes()?),
            _ => match types.get(&id) {
                Some(Wire::Struct(fields)) => {
                    let mut out = Vec::new();
                    self.fields(|r, f| {
                        let (name, id) = fields.get(f as usize).ok_or_else(|| GobError::Invalid(format!("field {f} of type {id} is not defined")))?;
                        out.push((name.clone(), r.value(*id, types)?));
                        Ok(())
                    })?;
                    Value::Struct(out)
                }
                Some(Wire::List(elem)) => Value::List((0..self.uint()?).map(|_| self.value(*elem, types)).collect::<Result<_, _>>()?),
                Some(Wire::Map(k, v)) => Value::Map((0..self.uint()?).map(|_| Ok((self.value(*k, types)?, self.value(*v, types)?))).collect::<Result<_, _>>()?),
                None => return Err(GobError::Invalid(format!("type {id} is not supported or not defined"))),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `gob.NewEncoder(w).Encode(Item{"App\\Job", "id-1", []byte("{}"), &Options{10, "p", 5, true, ""}})`
    /// with RoadRunner's v5 types, written by Go 1.19 (JOBS-DRIVERS.md §3).
    const GOLDEN_V5: &str = "3dff81030101044974656d01ff8200010401034a6f62010c0001054964656e74010c0001075061796c6f6164010a0001074f7074696f6e7301ff840000004fff83030101074f7074696f6e7301ff8400010501085072696f726974790104000108506970656c696e65010c00010544656c617901040001074175746f41636b01020001055175657565010c00000021ff8201074170705c4a6f62010469642d3101027b7d010114010170010a01010000";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn golden_item() -> Item {
        Item {
            job: "App\\Job".into(),
            ident: "id-1".into(),
            payload: b"{}".to_vec(),
            headers: BTreeMap::new(),
            options: Some(Options { priority: 10, pipeline: "p".into(), delay: 5, auto_ack: true, queue: String::new() }),
        }
    }

    #[test]
    fn encodes_and_decodes_the_go_golden_vector() {
        assert_eq!(encode(&golden_item()), unhex(GOLDEN_V5));
        assert_eq!(decode(&unhex(GOLDEN_V5)).unwrap(), golden_item());
    }

    #[test]
    fn headers_round_trip_in_the_v6_field() {
        let mut item = golden_item();
        item.headers.insert("attempt".into(), vec!["1".into(), "2".into()]);
        item.headers.insert("trace".into(), vec!["t".into()]);
        item.payload = vec![7; 300];
        item.options.as_mut().unwrap().priority = -3;
        let bytes = encode(&item);
        assert!(bytes.windows(4).any(|w| w == b"Hdrs"));
        assert_eq!(decode(&bytes).unwrap(), item);
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        let golden = unhex(GOLDEN_V5);
        for cut in 0..golden.len() {
            assert!(decode(&golden[..cut]).is_err(), "prefix of {cut} bytes");
        }
        assert!(decode(b"{\"job\":\"x\"}").is_err());
        assert!(decode(&[0x03, 0xff, 0x81, 0x09]).is_err());
    }
}
