//! Where lines go: `output` (stderr, stdout, files, appended), or with `file_logger_options` one
//! file rotated by size (file-rotate). Each event reaches the sink as one whole line (tracing's
//! fmt layer formats it first, then writes it at once), so `line_ending` swaps its `\n` here and
//! the files see one `write` per line. A failed write is reported to `err_output`, as zap
//! reports its own errors there.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use file_rotate::compression::Compression;
use file_rotate::suffix::{AppendTimestamp, FileLimit, SuffixScheme, TimestampSuffix};
use file_rotate::{ContentLimit, FileRotate};

/// `logs.file_logger_options`, lumberjack's settings as RoadRunner names them. A 0 means the
/// default, as in RoadRunner.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default)]
pub struct FileLogger {
    /// The log file; a directory (the default is the temp directory) holds `rr.log`.
    pub log_output: Option<PathBuf>,
    /// Megabytes before the file is rotated (100).
    pub max_size: usize,
    /// Days a rotated file is kept (24).
    pub max_age: usize,
    /// Rotated files kept (10).
    pub max_backups: usize,
    /// Gzip rotated files.
    pub compress: bool,
}

const DEFAULT_MAX_SIZE_MB: usize = 100;
const DEFAULT_MAX_BACKUPS: usize = 10;
const DEFAULT_MAX_AGE_DAYS: usize = 24;

enum Target {
    Stderr,
    Stdout,
    File(Mutex<File>),
    Rotating(Mutex<FileRotate<Retention>>),
}

impl Target {
    /// `stderr`, `stdout`, or a file path (also as a `file://` URL), opened for appending.
    fn open(name: &str, key: &str) -> anyhow::Result<Target> {
        Ok(match name {
            "stderr" => Target::Stderr,
            "stdout" => Target::Stdout,
            path => {
                let path = path.strip_prefix("file://").unwrap_or(path);
                Target::File(Mutex::new(append(Path::new(path)).with_context(|| format!("config key `{key}`"))?))
            }
        })
    }

    fn rotating(options: &FileLogger, key: &str) -> anyhow::Result<Target> {
        let mut path = std::path::absolute(options.log_output.clone().unwrap_or_else(std::env::temp_dir))
            .with_context(|| format!("config key `{key}.log_output`: cannot resolve the path"))?;
        if path.is_dir() {
            path.push("rr.log");
        }
        // Checked here: file-rotate panics on a directory it cannot create or read.
        append(&path).with_context(|| format!("config key `{key}.log_output`"))?;
        let or = |n, default| if n == 0 { default } else { n };
        let max_bytes = or(options.max_size, DEFAULT_MAX_SIZE_MB).saturating_mul(1024 * 1024);
        let retention = Retention::new(or(options.max_backups, DEFAULT_MAX_BACKUPS), or(options.max_age, DEFAULT_MAX_AGE_DAYS));
        let compression = if options.compress { Compression::OnRotate(0) } else { Compression::None };
        let file = FileRotate::new(
            &path,
            retention,
            ContentLimit::BytesSurpassed(max_bytes),
            compression,
            None,
        );
        Ok(Target::Rotating(Mutex::new(file)))
    }

    fn write_all(&self, line: &[u8]) -> io::Result<()> {
        match self {
            Target::Stderr => io::stderr().lock().write_all(line),
            Target::Stdout => io::stdout().lock().write_all(line),
            Target::File(f) => f.lock().unwrap_or_else(|p| p.into_inner()).write_all(line),
            Target::Rotating(f) => {
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                f.write_all(line)?;
                f.flush()
            }
        }
    }
}

/// lumberjack's retention: a rotated file goes once `max_backups` newer ones exist or once it is
/// `max_age` days old, whichever comes first (file-rotate's schemes take one limit each, so this
/// one asks both).
struct Retention {
    by_count: AppendTimestamp,
    by_age: AppendTimestamp,
}

impl Retention {
    fn new(max_backups: usize, max_age_days: usize) -> Retention {
        let days = chrono::Duration::try_days(max_age_days as i64).unwrap_or(chrono::Duration::MAX);
        Retention { by_count: AppendTimestamp::default(FileLimit::MaxFiles(max_backups)), by_age: AppendTimestamp::default(FileLimit::Age(days)) }
    }
}

impl SuffixScheme for Retention {
    type Repr = TimestampSuffix;

    fn rotate_file(&mut self, basepath: &Path, newest: Option<&TimestampSuffix>, suffix: &Option<TimestampSuffix>) -> io::Result<TimestampSuffix> {
        self.by_count.rotate_file(basepath, newest, suffix)
    }

    fn parse(&self, suffix: &str) -> Option<TimestampSuffix> {
        self.by_count.parse(suffix)
    }

    fn too_old(&self, suffix: &TimestampSuffix, file_number: usize) -> bool {
        self.by_count.too_old(suffix, file_number) || self.by_age.too_old(suffix, file_number)
    }
}

/// Open (creating it and its directory) a log file for appending, with a message that says how
/// to fix it.
fn append(path: &Path) -> anyhow::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the log directory `{}`", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the log file `{}` for appending: check the path and its permissions", path.display()))
}

/// The outputs of one logger (the main one or a channel).
#[derive(Clone)]
pub struct Sink(Arc<Inner>);

struct Inner {
    targets: Vec<Target>,
    errors: Vec<Target>,
    line_ending: Vec<u8>,
    terminal: bool,
}

impl Sink {
    /// `output` and `err_output` as listed (empty: stderr), or the rotated file alone when
    /// `file_logger_options` is set (as RoadRunner).
    pub fn open(key: &str, output: &[String], err_output: &[String], file: Option<&FileLogger>, line_ending: &str) -> anyhow::Result<Sink> {
        let names = |list: &[String]| if list.is_empty() { vec!["stderr".to_string()] } else { list.to_vec() };
        let targets = match file {
            Some(options) => vec![Target::rotating(options, &format!("{key}.file_logger_options"))?],
            None => names(output).iter().map(|n| Target::open(n, &format!("{key}.output"))).collect::<anyhow::Result<_>>()?,
        };
        let errors = names(err_output).iter().map(|n| Target::open(n, &format!("{key}.err_output"))).collect::<anyhow::Result<_>>()?;
        let terminal = targets.iter().all(|t| matches!(t, Target::Stderr | Target::Stdout));
        Ok(Sink(Arc::new(Inner { targets, errors, line_ending: line_ending.as_bytes().to_vec(), terminal })))
    }

    /// Only stderr/stdout: console lines may be coloured.
    pub fn is_terminal(&self) -> bool {
        self.0.terminal
    }

    /// Only the rotated file: lines are zap's JSON there, as RoadRunner writes them.
    pub fn is_rotated_file(&self) -> bool {
        matches!(self.0.targets.as_slice(), [Target::Rotating(_)])
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = &'a Sink;
    fn make_writer(&'a self) -> &'a Sink {
        self
    }
}

impl Write for &Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let inner = &self.0;
        let owned;
        let line = match buf.strip_suffix(b"\n") {
            Some(body) if inner.line_ending != b"\n" => {
                owned = [body, &inner.line_ending].concat();
                &owned[..]
            }
            _ => buf,
        };
        for target in &inner.targets {
            if let Err(e) = target.write_all(line) {
                let report = format!("{} write error: {e}\n", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default());
                for err in &inner.errors {
                    let _ = err.write_all(report.as_bytes());
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod retention_tests {
    use file_rotate::suffix::SuffixScheme;

    #[test]
    fn a_rotated_file_goes_by_count_or_by_age() {
        let retention = super::Retention::new(3, 24);
        let today = chrono::Local::now().format("%Y%m%dT%H%M%S").to_string();
        let (fresh, old) = (retention.parse(&today).unwrap(), retention.parse("20200101T000000").unwrap());
        assert!(!retention.too_old(&fresh, 0));
        assert!(retention.too_old(&fresh, 3), "the fourth newest is one too many");
        assert!(retention.too_old(&old, 0), "older than 24 days");
        assert!(!super::Retention::new(3, 100_000).too_old(&old, 0));
    }
}
