//! Misspelt keys (`http.pool.num_wrokers`): RoadRunner ignores them silently; we warn, naming
//! the nearest key the section knows. A key one section ignores may be another's (`http.static`
//! is ignored by the http plugin and read by the static one), so a key is reported only when no
//! read took it or anything under it.

use std::collections::{BTreeMap, BTreeSet};

use super::weak::Keys;

#[derive(Debug, Default)]
pub(super) struct Reads {
    /// Dotted paths a read took: struct fields present in the file, and every `value`/`section` key.
    pub taken: BTreeSet<String>,
    /// Dotted paths a struct ignored, with the keys the struct(s) at that place know.
    ignored: BTreeMap<String, BTreeSet<&'static str>>,
}

impl Reads {
    pub fn record(&mut self, keys: Keys) {
        self.taken.extend(keys.taken);
        for (path, fields) in keys.ignored {
            self.ignored.entry(path).or_default().extend(fields);
        }
    }

    pub fn unknown(&self) -> Vec<String> {
        let taken = |path: &str| self.taken.iter().any(|t| t.strip_prefix(path).is_some_and(|rest| rest.is_empty() || rest.starts_with('.')));
        self.ignored
            .iter()
            .filter(|(path, _)| !taken(path))
            .map(|(path, fields)| {
                let key = path.rsplit('.').next().unwrap_or(path);
                let hint = match nearest(key, fields) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None if fields.is_empty() => "this section takes no keys".to_string(),
                    None => format!("the keys here are {}", fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")),
                };
                format!("`{path}` is not read by this server (misspelt?): {hint}")
            })
            .collect()
    }
}

/// The most similar known key, if it is similar enough to be a likely typo.
fn nearest<'a>(key: &str, fields: &BTreeSet<&'a str>) -> Option<&'a str> {
    fields
        .iter()
        .map(|f| (strsim::jaro_winkler(key, f), *f))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, f)| f)
}
