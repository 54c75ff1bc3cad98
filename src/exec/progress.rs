//! What a run shows while it works: bars on a terminal (an overall bar and a line per running
//! stage), plain lines otherwise, or JSON lines with `--log-format json`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Plain,
    Json,
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
}

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
        }
    }

    fn line(&self, event: &str, label: &str, extra: &str) {
        match self.mode {
            Mode::Json => {
                let mut v = serde_json::json!({"event": event, "stage": label, "time": crate::util::now_rfc3339()});
                if !extra.is_empty() {
                    v["detail"] = serde_json::Value::String(extra.to_owned());
                }
                eprintln!("{v}");
            }
            Mode::Plain => {
                if extra.is_empty() {
                    eprintln!("{event:<8} {label}");
                } else {
                    eprintln!("{event:<8} {label}  {extra}");
                }
            }
            Mode::Bars => {
                if let Some(m) = &self.multi {
                    let _ = m.println(format!("{event:<8} {label}  {extra}"));
                }
            }
        }
    }

    pub fn cached(&self, label: &str) {
        if self.mode != Mode::Bars {
            self.line("cached", label, "");
        }
        if let Some(b) = &self.overall {
            b.inc(1);
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
            _ => self.line("run", label, ""),
        }
    }

    /// A running stage's own status (epoch, batch, loss): beside its spinner on a terminal.
    pub fn progress(&self, label: &str, status: &str) {
        if let Some(b) = self.running.lock().expect("reporter lock").get(label) {
            b.set_message(format!("{label}  {status}"));
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
        let what = if reused { "reused" } else { "done" };
        self.line(what, label, &format!("{secs:.2}s"));
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
