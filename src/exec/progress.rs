//! What a run shows while it works: bars on a terminal (an overall bar and a line per running
//! stage), plain lines otherwise, or JSON lines: on stdout with `run --progress json` (a
//! stream for notebooks and dashboards), on stderr with `--log-format json`.
//!
//! A JSON line is one object with `event`, `instance` (the instance's label) and `time`
//! (RFC 3339), and by event: `started`; `progress` (`status`: the stage's status line, at most
//! one a second per instance); `epoch` (`epoch` and `entry`: the epoch's entry of the stage's
//! `history.json`); `done` (`seconds`, `reused`); `cached`; `failed` (`message`); `skipped`
//! (`reason`); `note` (`message`); `waiting` (`message`); and, with `--progress json`, last,
//! `finished` (no instance: the run's counts and each instance's status, output and metrics;
//! `cli::tables::run_json`).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use crate::kinds::Progress;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Plain,
    /// JSON lines on stderr (`--log-format json`).
    Json,
    /// JSON lines on stdout (`run --progress json`).
    JsonStdout,
}

impl Mode {
    /// Bars on a terminal, plain lines otherwise.
    pub fn detect(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Plain
        }
    }
}

pub struct Reporter {
    mode: Mode,
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    running: Mutex<HashMap<String, ProgressBar>>,
    /// When each instance last sent a `progress` line (JSON modes).
    last_status: Mutex<HashMap<String, Instant>>,
}

/// The least time between two `progress` lines of one instance in the JSON modes.
const STATUS_EVERY: Duration = Duration::from_secs(1);

impl Reporter {
    pub fn new(mode: Mode, total: usize) -> Reporter {
        let (multi, overall) = if mode == Mode::Bars {
            let m = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let b = m.add(ProgressBar::new(total as u64));
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} stages  {elapsed_precise}  {msg}",
                )
                .expect("valid template"),
            );
            (Some(m), Some(b))
        } else {
            (None, None)
        };
        Reporter {
            mode,
            multi,
            overall,
            running: Mutex::new(HashMap::new()),
            last_status: Mutex::new(HashMap::new()),
        }
    }

    fn is_json(&self) -> bool {
        matches!(self.mode, Mode::Json | Mode::JsonStdout)
    }

    /// Writes one JSON line: `event`, `instance` (when given), `time`, then `fields`.
    pub fn json(&self, event: &str, label: Option<&str>, fields: Json) {
        let mut v = json!({"event": event});
        if let Some(l) = label {
            v["instance"] = Json::String(l.to_owned());
        }
        v["time"] = Json::String(crate::util::now_rfc3339());
        if let Json::Object(m) = fields {
            for (k, x) in m {
                v[k] = x;
            }
        }
        let line = format!("{v}\n");
        // One write per line, so that lines of concurrent stages never interleave.
        let _ = match self.mode {
            Mode::JsonStdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes()).and_then(|()| out.flush())
            }
            _ => std::io::stderr().lock().write_all(line.as_bytes()),
        };
    }

    fn line(&self, event: &str, label: &str, extra: &str) {
        match self.mode {
            Mode::Json | Mode::JsonStdout => {
                let field = match event {
                    "FAILED" | "note" | "waiting" => "message",
                    "skipped" => "reason",
                    _ => "detail",
                };
                let event = if event == "FAILED" { "failed" } else { event };
                let mut fields = serde_json::Map::new();
                if !extra.is_empty() {
                    fields.insert(field.to_owned(), Json::String(extra.to_owned()));
                }
                self.json(event, Some(label), Json::Object(fields));
            }
            Mode::Plain => {
                // One write per line (stderr is unbuffered: `eprintln!` writes each piece).
                let line = if extra.is_empty() {
                    format!("{event:<8} {label}\n")
                } else {
                    format!("{event:<8} {label}  {extra}\n")
                };
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Mode::Bars => {
                if let Some(m) = &self.multi {
                    let _ = m.println(format!("{event:<8} {label}  {extra}"));
                }
            }
        }
    }

    /// Instances found in the cache, several at once: plain lines go out in one write (a no-op
    /// rerun of 10^5 instances otherwise made 10^5 writes to stderr).
    pub fn cached_all(&self, labels: &[&str]) {
        match self.mode {
            Mode::Bars => {}
            Mode::Plain => {
                let mut text = String::new();
                for label in labels {
                    text.push_str(&format!("{:<8} {label}\n", "cached"));
                }
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
            Mode::Json | Mode::JsonStdout => {
                for label in labels {
                    self.line("cached", label, "");
                }
            }
        }
        if let Some(b) = &self.overall {
            b.inc(labels.len() as u64);
        }
    }

    pub fn started(&self, label: &str) {
        match (&self.multi, self.mode) {
            (Some(m), Mode::Bars) => {
                let b = m.add(ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template("  {spinner} {msg} {elapsed}")
                        .expect("valid template"),
                );
                b.set_message(label.to_owned());
                b.enable_steady_tick(Duration::from_millis(120));
                self.running
                    .lock()
                    .expect("reporter lock")
                    .insert(label.to_owned(), b);
            }
            _ if self.is_json() => self.json("started", Some(label), json!({})),
            _ => self.line("run", label, ""),
        }
    }

    /// A running stage's own progress: its status (epoch, batch, loss) beside its spinner on
    /// a terminal, or as `progress` lines (at most one a second) and `epoch` lines in JSON.
    pub fn stage_progress(&self, label: &str, event: Progress) {
        match (event, self.is_json()) {
            (Progress::Status(status), false) => {
                if let Some(b) = self.running.lock().expect("reporter lock").get(label) {
                    b.set_message(format!("{label}  {status}"));
                }
            }
            (Progress::Status(status), true) => {
                let now = Instant::now();
                let mut last = self.last_status.lock().expect("reporter lock");
                if last
                    .get(label)
                    .is_some_and(|t| now.duration_since(*t) < STATUS_EVERY)
                {
                    return;
                }
                last.insert(label.to_owned(), now);
                drop(last);
                self.json("progress", Some(label), json!({"status": status}));
            }
            (Progress::Epoch(entry), true) => {
                self.json(
                    "epoch",
                    Some(label),
                    json!({"epoch": entry.get("epoch").cloned().unwrap_or(Json::Null), "entry": entry}),
                );
            }
            (Progress::Epoch(_), false) => {}
        }
    }

    pub fn waiting(&self, label: &str, who: &str) {
        self.line("waiting", label, &format!("locked by {who}"));
    }

    pub fn note(&self, label: &str, what: &str) {
        self.line("note", label, what);
    }

    pub fn finished(&self, label: &str, reused: bool, secs: f64) {
        self.end_bar(label);
        self.last_status
            .lock()
            .expect("reporter lock")
            .remove(label);
        if self.is_json() {
            self.json(
                "done",
                Some(label),
                json!({"seconds": (secs * 1000.0).round() / 1000.0, "reused": reused}),
            );
        } else {
            let what = if reused { "reused" } else { "done" };
            self.line(what, label, &format!("{secs:.2}s"));
        }
        if let Some(b) = &self.overall {
            b.inc(1);
        }
    }

    pub fn failed(&self, label: &str, message: &str) {
        self.end_bar(label);
        self.line("FAILED", label, message);
    }

    pub fn skipped(&self, label: &str, why: &str) {
        self.line("skipped", label, why);
    }

    fn end_bar(&self, label: &str) {
        if let Some(b) = self.running.lock().expect("reporter lock").remove(label) {
            b.finish_and_clear();
            if let Some(m) = &self.multi {
                m.remove(&b);
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.overall {
            b.finish_and_clear();
        }
    }
}
