//! The HTML report of a pipeline: one self-contained page (inline CSS, SVG and a few lines of
//! JS; nothing loaded from the network) with the ablation tables and their significance, the
//! plots, every metric linked to its lineage down to the raw files' blake3, and every stage
//! instance with its params, key, output, time, host and backend.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use serde_json::Value as Json;

use crate::ablate::plot;
use crate::ablate::table::Table;
use crate::audit::lineage::{Lineage, Node, RawFile, Target};
use crate::cache::key::canonical_json;
use crate::report::view::{InstanceView, State, View};
use crate::report::{fmt_metric, metric_names};

/// A p-value below this is marked significant in the tables.
pub const ALPHA: f64 = 0.05;

const STYLE: &str = r#"
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2733;background:#f6f7f9}
header,section{max-width:1280px;margin:0 auto;padding:12px 24px}
header{background:#fff;border-bottom:1px solid #dde1e6;max-width:none}
h1{font-size:22px;margin:8px 0}h2{font-size:19px;margin:18px 0 8px;border-bottom:1px solid #dde1e6}
h3{font-size:16px;margin:14px 0 6px}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px}
table{border-collapse:collapse;background:#fff;margin:6px 0 10px}
th,td{border:1px solid #dde1e6;padding:3px 8px;vertical-align:top}
th{background:#eef1f4;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.sig{font-weight:700;background:#e7f3ea}
tr.ref td{background:#f3f6fb}
.state-cached{color:#1f7a3a}.state-failed{color:#b3261e;font-weight:700}
.state-not-run,.state-waiting-for-upstream{color:#8a6d00}
nav a{margin-right:14px}
figure{background:#fff;border:1px solid #dde1e6;margin:8px 0;padding:6px;overflow-x:auto}
figure svg{max-width:100%;height:auto}figcaption{font-size:13px;color:#5b6670}
details{background:#fff;border:1px solid #dde1e6;margin:6px 0;padding:4px 10px}
details[open]{box-shadow:0 1px 4px #0002}summary{cursor:pointer}
pre{background:#fff5f4;border:1px solid #f0c9c5;padding:6px;overflow-x:auto;font-size:12px}
.note{font-size:13px;color:#5b6670}.params{max-width:420px;word-break:break-all}
input#filter{font-size:14px;padding:3px 6px;width:320px}
"#;

const SCRIPT: &str = r#"
function openTarget(){var h=decodeURIComponent(location.hash.slice(1));if(!h)return;
var e=document.getElementById(h);if(e&&e.tagName==='DETAILS'){e.open=true;e.scrollIntoView();}}
window.addEventListener('hashchange',openTarget);openTarget();
var f=document.getElementById('filter');
if(f){f.addEventListener('input',function(){var q=f.value.toLowerCase(),n=0,rows=document.querySelectorAll('#instance-table tbody tr');
rows.forEach(function(r){var hide=q!==''&&r.textContent.toLowerCase().indexOf(q)<0;r.hidden=hide;if(!hide)n++;});
document.getElementById('shown').textContent=n+' of '+rows.length+' shown';});}
"#;

/// Text as HTML (element content and attribute values alike).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn short(h: &str) -> &str {
    &h[..12.min(h.len())]
}

/// The anchor of an instance's row, and of its lineage view.
fn inst_id(i: usize) -> String {
    format!("inst-{i}")
}
fn lineage_id(i: usize) -> String {
    format!("lineage-{i}")
}

/// An SVG file's text for inlining: without its XML declaration, or None if it is not SVG.
fn inline_svg(text: &str) -> Option<&str> {
    let start = text.find("<svg")?;
    Some(text[start..].trim_end())
}

struct Ctx<'a> {
    view: &'a View<'a>,
    /// Instance index by label.
    by_label: HashMap<&'a str, usize>,
    targets: HashMap<&'a str, &'a Target>,
    nodes: HashMap<&'a str, &'a Node>,
    raw: HashMap<&'a str, &'a RawFile>,
}

/// The report page of `view`.
pub fn render(view: &View) -> Result<String, String> {
    let p = view.pipeline;
    let empty = Lineage::default();
    let l = view.lineage.as_ref().unwrap_or(&empty);
    let cx = Ctx {
        view,
        by_label: p
            .instances
            .iter()
            .enumerate()
            .map(|(i, inst)| (inst.label.as_str(), i))
            .collect(),
        targets: l.targets.iter().map(|t| (t.label.as_str(), t)).collect(),
        nodes: l.instances.iter().map(|n| (n.label.as_str(), n)).collect(),
        raw: l.raw_files.iter().map(|f| (f.abs.as_str(), f)).collect(),
    };
    let mut o = String::with_capacity(64 * 1024);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"cllm4rec-pipe {}\">\n\
         <title>{} — cllm4rec-pipe report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&p.name)
    );
    header(&mut o, &cx);
    tables_section(&mut o, &cx);
    curves_section(&mut o, &cx)?;
    metrics_section(&mut o, &cx);
    instances_section(&mut o, &cx);
    lineage_section(&mut o, &cx, l);
    let _ = write!(o, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    Ok(o)
}

fn header(o: &mut String, cx: &Ctx) {
    let p = cx.view.pipeline;
    let count = |w: &str| cx.view.count(w);
    let _ = writeln!(
        o,
        "<header>\n<h1>Pipeline <code id=\"pipeline-name\">{}</code></h1>",
        esc(&p.name)
    );
    let _ = writeln!(
        o,
        "<p>File <code>{}</code>, blake3 <code>{}</code>{}. Read from the cache by cllm4rec-pipe {}; nothing was run.</p>",
        esc(&p.source.path.display().to_string()),
        blake3::hash(p.source.text.as_bytes()).to_hex(),
        cx.view
            .lineage
            .as_ref()
            .filter(|l| !l.pipeline.sets.is_empty())
            .map(|l| format!(
                ", with <code>{}</code>",
                esc(&l
                    .pipeline
                    .sets
                    .iter()
                    .map(|s| format!("--set {s}"))
                    .collect::<Vec<_>>()
                    .join(" "))
            ))
            .unwrap_or_default(),
        env!("CARGO_PKG_VERSION"),
    );
    let _ = writeln!(
        o,
        "<p id=\"summary\">{} stage instances: {} cached, {} failed, {} not run, {} waiting for upstream.</p>",
        p.instances.len(),
        count("cached"),
        count("failed"),
        count("not run"),
        count("waiting for upstream")
    );
    let _ = writeln!(
        o,
        "<nav><a href=\"#tables\">Tables</a><a href=\"#curves\">Training curves</a><a href=\"#metrics\">Metrics</a><a href=\"#instances\">Stage instances</a><a href=\"#lineage\">Lineage</a></nav>\n</header>"
    );
}

fn tables_section(o: &mut String, cx: &Ctx) {
    let p = cx.view.pipeline;
    let ablates: Vec<&InstanceView> = cx
        .view
        .instances
        .iter()
        .filter(|v| p.instances[v.index].kind == "ablate")
        .collect();
    let _ = writeln!(o, "<section id=\"tables\">\n<h2>Ablation tables</h2>");
    if ablates.is_empty() {
        let _ = writeln!(
            o,
            "<p class=\"note\">This pipeline has no <code>ablate</code> stage.</p>"
        );
    }
    for v in ablates {
        let label = &p.instances[v.index].label;
        let _ = writeln!(
            o,
            "<h3 id=\"{}\">{}</h3>",
            esc(&format!("table-{}", v.index)),
            esc(label)
        );
        match (&v.state, &v.table) {
            (State::Cached, Some(t)) => {
                ablate_table(o, cx, v.index, t);
                for (name, path) in &v.plots {
                    let Ok(text) = std::fs::read_to_string(path) else {
                        continue;
                    };
                    if let Some(svg) = inline_svg(&text) {
                        let _ = writeln!(
                            o,
                            "<figure class=\"plot\" data-plot=\"{}\" data-instance=\"{}\">\n{svg}\n<figcaption>{} of <code>{}</code> (<code>{}</code> in its output {})</figcaption></figure>",
                            esc(name),
                            esc(label),
                            if name.starts_with("sensitivity") {
                                "Sensitivity"
                            } else {
                                "Training curves"
                            },
                            esc(label),
                            esc(name),
                            short(&v.record.as_ref().map(|r| r.output.clone()).unwrap_or_default()),
                        );
                    }
                }
            }
            (State::Cached, None) => {
                let _ = writeln!(
                    o,
                    "<p class=\"state-failed\">Cached, but its table.json cannot be read.</p>"
                );
            }
            (state, _) => state_note(o, state),
        }
    }
    let _ = writeln!(o, "</section>");
}

fn state_note(o: &mut String, state: &State) {
    let cls = format!("state-{}", state.word().replace(' ', "-"));
    match state {
        State::Failed { log, tail } => {
            let _ = writeln!(
                o,
                "<p class=\"{cls}\">Failed: not in the cache; the last attempt's log is <code>{}</code>:</p><pre>{}</pre>",
                esc(&log.display().to_string()),
                esc(tail)
            );
        }
        other => {
            let _ = writeln!(
                o,
                "<p class=\"{cls}\">Not in the cache ({}): run the pipeline first.</p>",
                other.word()
            );
        }
    }
}

fn ablate_table(o: &mut String, cx: &Ctx, ablate: usize, t: &Table) {
    let _ = write!(
        o,
        "<table class=\"ablate\" data-instance=\"{}\">\n<thead><tr><th>variant</th><th>users</th>",
        esc(&cx.view.pipeline.instances[ablate].label)
    );
    for m in &t.metrics {
        let _ = write!(
            o,
            "<th>{}</th><th>change</th><th>p_t</th><th>p_W</th>",
            esc(m)
        );
    }
    let _ = writeln!(o, "</tr></thead>\n<tbody>");
    let own = cx
        .targets
        .contains_key(cx.view.pipeline.instances[ablate].label.as_str());
    for r in &t.rows {
        let source = cx.view.variant_source(ablate, &r.variant).unwrap_or(ablate);
        let linked = cx
            .targets
            .contains_key(cx.view.pipeline.instances[source].label.as_str());
        let reference = r.variant == t.reference;
        let _ = write!(
            o,
            "<tr{}><td>{}</td><td class=\"num\">{}</td>",
            if reference { " class=\"ref\"" } else { "" },
            if linked {
                format!(
                    "<a href=\"#{}\" title=\"lineage of {}\">{}</a>",
                    lineage_id(source),
                    esc(&cx.view.pipeline.instances[source].label),
                    esc(&r.variant)
                )
            } else {
                esc(&r.variant)
            },
            r.users
        );
        for c in &r.cells {
            let [mean, change, p_t, p_w] = c.texts();
            let sig = |p: Option<f64>| {
                if p.is_some_and(|p| p < ALPHA) {
                    "num sig"
                } else {
                    "num"
                }
            };
            // A mean comes from the variant's evaluation; a change or p-value from the
            // table's stage, which compares it with the reference.
            let link = |text: &str, to: usize, ok: bool| {
                if ok && text != "-" {
                    format!("<a href=\"#{}\">{}</a>", lineage_id(to), esc(text))
                } else {
                    esc(text)
                }
            };
            let _ = write!(
                o,
                "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"{}\">{}</td><td class=\"{}\">{}</td>",
                link(&mean, source, linked),
                link(&change, ablate, own),
                sig(c.p_t),
                link(&p_t, ablate, own),
                sig(c.p_wilcoxon),
                link(&p_w, ablate, own)
            );
        }
        let _ = writeln!(o, "</tr>");
    }
    let _ = writeln!(
        o,
        "</tbody></table>\n<p class=\"note\">{} Shaded: p &lt; {ALPHA}. The reference row is tinted; a variant and its means link to its evaluation's lineage, the changes and p-values to this table's.</p>",
        esc(&t.header_note())
    );
}

fn curves_section(o: &mut String, cx: &Ctx) -> Result<(), String> {
    let _ = writeln!(o, "<section id=\"curves\">\n<h2>Training curves</h2>");
    let drawn_by_ablate = cx
        .view
        .instances
        .iter()
        .any(|v| v.plots.iter().any(|(n, _)| n == "curves.svg"));
    let runs = cx.view.runs();
    if drawn_by_ablate {
        let _ = writeln!(
            o,
            "<p class=\"note\">Drawn by the ablate stage, under its table above.</p>"
        );
    } else if let Some(svg) = plot::curves_svg(&runs, "recall@20")? {
        let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
        let _ = writeln!(
            o,
            "<figure class=\"plot\" data-plot=\"curves\">\n{}\n<figcaption>Per-epoch history of {} (each run's <code>history.json</code>).</figcaption></figure>",
            inline_svg(&svg).unwrap_or(""),
            esc(&labels.join(", "))
        );
    } else {
        let _ = writeln!(
            o,
            "<p class=\"note\">No cached pretrain or finetune run has a history to draw.</p>"
        );
    }
    let _ = writeln!(o, "</section>");
    Ok(())
}

fn metrics_section(o: &mut String, cx: &Ctx) {
    let p = cx.view.pipeline;
    let with: Vec<(&InstanceView, &serde_json::Map<String, Json>)> = cx
        .view
        .instances
        .iter()
        .filter_map(|v| Some((v, v.record.as_ref()?.metrics.as_ref()?.as_object()?)))
        .collect();
    let names: BTreeSet<&String> = metric_names(with.iter().map(|(_, m)| *m));
    let _ = writeln!(o, "<section id=\"metrics\">\n<h2>Metrics</h2>");
    if names.is_empty() {
        let _ = writeln!(
            o,
            "<p class=\"note\">No cached instance recorded metrics.</p>\n</section>"
        );
        return;
    }
    let _ = write!(
        o,
        "<table id=\"metrics-table\">\n<thead><tr><th>metrics</th>"
    );
    for n in &names {
        let _ = write!(o, "<th>{}</th>", esc(n));
    }
    let _ = writeln!(o, "</tr></thead>\n<tbody>");
    for (v, m) in with {
        let label = &p.instances[v.index].label;
        let _ = write!(
            o,
            "<tr><td><a href=\"#{}\">{}</a></td>",
            inst_id(v.index),
            esc(label)
        );
        for n in &names {
            let text = m.get(*n).map(fmt_metric).unwrap_or_default();
            let _ = write!(
                o,
                "<td class=\"num\"><a href=\"#{}\" title=\"{} = {}\">{}</a></td>",
                lineage_id(v.index),
                esc(n),
                esc(&m.get(*n).map(|x| x.to_string()).unwrap_or_default()),
                esc(&text)
            );
        }
        let _ = writeln!(o, "</tr>");
    }
    let _ = writeln!(
        o,
        "</tbody></table>\n<p class=\"note\">Each value links to its lineage; its title holds it at full precision.</p>\n</section>"
    );
}

fn instances_section(o: &mut String, cx: &Ctx) {
    let p = cx.view.pipeline;
    let _ = writeln!(
        o,
        "<section id=\"instances\">\n<h2>Stage instances</h2>\n<p><input id=\"filter\" type=\"search\" placeholder=\"filter rows (label, state, params...)\"> <span id=\"shown\" class=\"note\"></span></p>"
    );
    let _ = writeln!(
        o,
        "<table id=\"instance-table\">\n<thead><tr><th>instance</th><th>state</th><th>kind</th><th>matrix point</th><th>params</th><th>key</th><th>output</th><th>time</th><th>host</th><th>backend</th><th>git</th></tr></thead>\n<tbody>"
    );
    for v in &cx.view.instances {
        let inst = &p.instances[v.index];
        let point = if inst.point.is_empty() {
            String::new()
        } else {
            canonical_json(&serde_json::to_value(&inst.point).expect("plain data"))
        };
        let params = canonical_json(&Json::Object(inst.params_with_seed()));
        let cls = format!("state-{}", v.state.word().replace(' ', "-"));
        let rec = v.record.as_ref();
        let state = match &v.state {
            State::Failed { log, .. } => format!(
                "<span class=\"{cls}\" title=\"{}\">failed</span>",
                esc(&log.display().to_string())
            ),
            s => format!("<span class=\"{cls}\">{}</span>", s.word()),
        };
        let _ = writeln!(
            o,
            "<tr id=\"{}\" data-state=\"{}\"><td>{}{}</td><td>{state}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono params\">{}</td><td class=\"mono\" title=\"{}\">{}</td><td class=\"mono\" title=\"{}\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            inst_id(v.index),
            esc(v.state.word()),
            esc(&inst.label),
            if cx.targets.contains_key(inst.label.as_str()) {
                format!(" <a href=\"#{}\">lineage</a>", lineage_id(v.index))
            } else {
                String::new()
            },
            esc(inst.kind.name()),
            esc(&point),
            esc(&params),
            esc(v.key.as_deref().unwrap_or("")),
            esc(v.key.as_deref().map(short).unwrap_or("")),
            esc(rec.map(|r| r.output.as_str()).unwrap_or("")),
            esc(rec.map(|r| short(&r.output)).unwrap_or("")),
            rec.map(|r| format!("{:.2}s", r.duration_s)).unwrap_or_default(),
            esc(rec.map(|r| r.host.as_str()).unwrap_or("")),
            esc(v.backend.as_deref().unwrap_or("")),
            esc(rec
                .and_then(|r| r.git_commit.as_deref())
                .map(short)
                .unwrap_or("")),
        );
    }
    let _ = writeln!(o, "</tbody></table>");
    for v in &cx.view.instances {
        if let State::Failed { .. } = v.state {
            let _ = writeln!(o, "<h3>{}</h3>", esc(&p.instances[v.index].label));
            state_note(o, &v.state);
        }
    }
    let _ = writeln!(o, "</section>");
}

fn lineage_section(o: &mut String, cx: &Ctx, l: &Lineage) {
    let _ = writeln!(
        o,
        "<section id=\"lineage\">\n<h2>Lineage</h2>\n<p class=\"note\">For every cached instance with metrics: the instances it depends on (upstream first) with their keys and outputs, and the raw files at the roots with their blake3 (as <code>b3sum</code> prints it), as <code>cllm4rec-pipe audit</code> reports them.</p>"
    );
    if l.targets.is_empty() {
        let _ = writeln!(o, "<p class=\"note\">No cached instance has metrics.</p>");
    }
    for t in &l.targets {
        let Some(&i) = cx.by_label.get(t.label.as_str()) else {
            continue;
        };
        let metrics: Vec<String> = t
            .metrics
            .iter()
            .take(6)
            .map(|m| {
                let whole = m.value.fract() == 0.0 && m.value.abs() < 1e15;
                let v = if whole {
                    Json::from(m.value as i64)
                } else {
                    Json::from(m.value)
                };
                format!("{} {}", m.name, fmt_metric(&v))
            })
            .collect();
        let _ = writeln!(
            o,
            "<details class=\"lineage\" id=\"{}\" data-instance=\"{}\">\n<summary><b>{}</b> <span class=\"note\">{}{}</span></summary>",
            lineage_id(i),
            esc(&t.label),
            esc(&t.label),
            esc(&metrics.join(", ")),
            if t.metrics.len() > 6 { ", ..." } else { "" }
        );
        let _ = writeln!(
            o,
            "<p>key <code>{}</code>, output <code>{}</code></p>",
            esc(&t.key),
            esc(&t.output)
        );
        let _ = writeln!(
            o,
            "<table class=\"chain\"><thead><tr><th>instance</th><th>kind</th><th>key</th><th>output</th><th>deps (recorded blake3)</th></tr></thead><tbody>"
        );
        for label in &t.lineage {
            let Some(n) = cx.nodes.get(label.as_str()) else {
                continue;
            };
            let deps: Vec<String> = n
                .deps
                .iter()
                .map(|d| {
                    format!(
                        "{} = {}{}",
                        esc(&d.path),
                        esc(short(&d.recorded)),
                        if d.matches() {
                            ""
                        } else {
                            " (CHANGED since the run)"
                        }
                    )
                })
                .collect();
            let anchor = cx.by_label.get(label.as_str()).copied().unwrap_or(i);
            let _ = writeln!(
                o,
                "<tr><td><a href=\"#{}\">{}</a></td><td>{} v{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
                inst_id(anchor),
                esc(label),
                esc(&n.kind),
                n.kind_version,
                esc(&n.key_hash),
                esc(&n.output),
                deps.join("<br>")
            );
        }
        let _ = writeln!(
            o,
            "</tbody></table>\n<table class=\"raw-files\"><thead><tr><th>raw file</th><th>size</th><th>blake3</th></tr></thead><tbody>"
        );
        for f in &t.raw_files {
            if let Some(rf) = cx.raw.get(f.as_str()) {
                let _ = writeln!(
                    o,
                    "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"mono blake3\">{}</td></tr>",
                    esc(&rf.path),
                    rf.size,
                    esc(&rf.hash)
                );
            }
        }
        let _ = writeln!(o, "</tbody></table>\n</details>");
    }
    let _ = writeln!(o, "</section>");
}
