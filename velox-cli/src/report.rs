//! Progress for people (indicatif) or machines (`--json`: one JSON object per line on stdout).

use indicatif::{ProgressBar, ProgressStyle};

pub struct Reporter {
    json: bool,
    bar: Option<ProgressBar>,
}

impl Reporter {
    pub fn new(json: bool) -> Self {
        let bar = (!json).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").unwrap());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Reporter { json, bar }
    }

    /// A named pipeline step started.
    pub fn step(&self, step: &str, detail: &str) {
        if self.json {
            println!("{}", serde_json::json!({"event": "step", "step": step, "detail": detail}));
        } else if let Some(bar) = &self.bar {
            bar.println(format!("  {step:>9} {detail}"));
            bar.set_message(format!("{step} {detail}"));
        }
    }

    pub fn compiled(&self, count: usize, name: &str, fresh: bool) {
        if self.json {
            println!("{}", serde_json::json!({"event": "artifact", "count": count, "crate": name, "fresh": fresh}));
        } else if let Some(bar) = &self.bar {
            bar.set_message(format!("compiling: {count} crates done, last {name}"));
        }
    }

    pub fn warn(&self, text: &str) {
        if self.json {
            println!("{}", serde_json::json!({"event": "warning", "message": text}));
        } else if let Some(bar) = &self.bar {
            bar.println(format!("warning: {text}"));
        }
    }

    pub fn finish(&self, result: &serde_json::Value) {
        if self.json {
            println!("{}", serde_json::json!({"event": "done", "result": result}));
        } else if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
