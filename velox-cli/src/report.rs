//! Progress for people or machines, so that no build is a silent minute:
//! - on a terminal, a spinner with the current step (indicatif);
//! - in a log (stderr not a terminal: a pipe, a CI job), a line per step on stderr and, while
//!   cargo runs, a line every `VELOX_PROGRESS_SECS` (default 10) with the crates compiled out of
//!   the total;
//! - with `--json`, one JSON object per line on stdout (`step`, `artifact`, `progress`,
//!   `warning`, `done`).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Reporter {
    mode: Mode,
    bar: Option<ProgressBar>,
    compile: Mutex<Compile>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Json,
    Terminal,
    Lines,
}

/// What cargo has done so far, from its progress line and its artifact messages.
#[derive(Default)]
struct Compile {
    started: Option<Instant>,
    /// Units done and in total, as cargo counts them (crates, build scripts and their runs).
    done: usize,
    total: Option<usize>,
    /// What cargo is building now, or its last status line (downloading, locking).
    now: String,
    artifacts: usize,
    fresh: usize,
}

impl Reporter {
    pub fn new(json: bool) -> Self {
        let mode = if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Lines
        };
        let bar = (mode == Mode::Terminal).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").unwrap());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Reporter { mode, bar, compile: Mutex::new(Compile::default()) }
    }

    /// A named pipeline step started.
    pub fn step(&self, step: &str, detail: &str) {
        match self.mode {
            Mode::Json => println!("{}", serde_json::json!({"event": "step", "step": step, "detail": detail})),
            Mode::Terminal => {
                if let Some(bar) = &self.bar {
                    bar.println(format!("  {step:>9} {detail}"));
                    bar.set_message(format!("{step} {detail}"));
                }
            }
            Mode::Lines => eprintln!("  {step:>9} {detail}"),
        }
    }

    /// Cargo starts; `tick` reports from now on.
    pub fn compile_started(&self) {
        *self.compile.lock().unwrap() = Compile { started: Some(Instant::now()), ..Compile::default() };
    }

    /// How often `tick` should run while cargo works.
    pub fn tick_interval(&self) -> Duration {
        let secs = std::env::var("VELOX_PROGRESS_SECS").ok().and_then(|s| s.parse::<f64>().ok()).filter(|s| *s > 0.0);
        Duration::from_secs_f64(secs.unwrap_or(10.0))
    }

    /// A crate (or build script) finished.
    pub fn compiled(&self, count: usize, name: &str, fresh: bool) {
        let mut c = self.compile.lock().unwrap();
        c.artifacts = count;
        c.fresh += usize::from(fresh);
        match self.mode {
            Mode::Json => println!("{}", serde_json::json!({"event": "artifact", "count": count, "crate": name, "fresh": fresh})),
            Mode::Terminal => {
                if let (Some(bar), None) = (&self.bar, c.total) {
                    bar.set_message(format!("compiling: {count} crates done, last {name}"));
                }
            }
            Mode::Lines => {}
        }
    }

    /// Cargo's own progress line: `done` of `total` units, `building` those in flight.
    pub fn cargo_progress(&self, done: usize, total: usize, building: &str) {
        let mut c = self.compile.lock().unwrap();
        (c.done, c.total, c.now) = (done, Some(total), building.to_string());
        if let Some(bar) = &self.bar {
            bar.set_message(format!("compiling {done}/{total}: {building}"));
        }
    }

    /// A status line of cargo's other than progress (`Downloading crates ...`, `Locking`).
    pub fn cargo_status(&self, line: &str) {
        let mut c = self.compile.lock().unwrap();
        if c.total.is_none() {
            c.now = line.trim().to_string();
            if let Some(bar) = &self.bar {
                bar.set_message(format!("compile: {}", c.now));
            }
        }
    }

    /// The periodic line while cargo works (a log never shows a silent minute).
    pub fn tick(&self) {
        let c = self.compile.lock().unwrap();
        let elapsed = c.started.map(|s| s.elapsed().as_secs()).unwrap_or(0);
        match self.mode {
            Mode::Json => println!(
                "{}",
                serde_json::json!({"event": "progress", "done": c.done, "total": c.total, "building": c.now, "elapsed_secs": elapsed})
            ),
            Mode::Lines => match c.total {
                Some(total) => eprintln!("  compiling {}/{total} crates compiled, {} elapsed; building {}", c.done, clock(elapsed), c.now),
                None => eprintln!("  compiling {} elapsed; {}", clock(elapsed), if c.now.is_empty() { "cargo is starting" } else { &c.now }),
            },
            Mode::Terminal => {}
        }
    }

    /// Cargo finished successfully.
    pub fn compile_finished(&self) {
        let c = self.compile.lock().unwrap();
        let elapsed = c.started.map(|s| s.elapsed().as_secs()).unwrap_or(0);
        let line = format!("{} crates ({} already fresh) in {}", c.artifacts, c.fresh, clock(elapsed));
        match self.mode {
            Mode::Json => {}
            Mode::Terminal => {
                if let Some(bar) = &self.bar {
                    bar.println(format!("  {:>9} {line}", "compiled"));
                }
            }
            Mode::Lines => eprintln!("  {:>9} {line}", "compiled"),
        }
    }

    pub fn warn(&self, text: &str) {
        match self.mode {
            Mode::Json => println!("{}", serde_json::json!({"event": "warning", "message": text})),
            Mode::Terminal => {
                if let Some(bar) = &self.bar {
                    bar.println(format!("warning: {text}"));
                }
            }
            Mode::Lines => eprintln!("warning: {text}"),
        }
    }

    pub fn finish(&self, result: &serde_json::Value) {
        if self.mode == Mode::Json {
            println!("{}", serde_json::json!({"event": "done", "result": result}));
        } else if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `1m 05s` or `42s`.
fn clock(secs: u64) -> String {
    if secs >= 60 { format!("{}m {:02}s", secs / 60, secs % 60) } else { format!("{secs}s") }
}

/// Cargo's progress line (`Building [===>  ] 12/345: a, b(build)`) as done, total and what is in
/// flight; cargo prints it when `term.progress.when` is `always`, even into a pipe.
pub fn parse_cargo_progress(line: &str) -> Option<(usize, usize, String)> {
    let rest = line.trim_start().strip_prefix("Building [")?;
    let rest = &rest[rest.find(']')? + 1..];
    let (counts, building) = rest.split_once(':').unwrap_or((rest, ""));
    let (done, total) = counts.trim().split_once('/')?;
    Some((done.parse().ok()?, total.parse().ok()?, building.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_progress_lines_parse() {
        assert_eq!(
            parse_cargo_progress("    Building [======>      ] 12/345: tokio, rr-http(build)   "),
            Some((12, 345, "tokio, rr-http(build)".into()))
        );
        assert_eq!(parse_cargo_progress("    Building [    ] 0/4"), Some((0, 4, String::new())));
        assert_eq!(parse_cargo_progress("   Compiling tokio v1.0"), None);
    }
}
