//! `maelstrom serve [--port 8080] [RESULTS_DIR]`: the results folder on a local web page, as
//! Maelstrom's `serve`.
//!
//! - `GET /`: every run, newest first: workload, date, verdict and key figures (ops and their
//!   outcomes, server messages per op, lost values, delivery lag p99, the command), each linked
//!   to its `report.html`; pick two to compare.
//! - `GET /runs/<workload>/<run>/<file>`: a run's `report.html`, `results.json`,
//!   `history.jsonl`, `history.txt` or `messages.jsonl` (nothing else is served).
//! - `GET /compare?a=<workload>/<run>&b=<workload>/<run>`: two runs side by side: their key
//!   figures in one table, their reports in two frames.
//! - `GET /api/runs`: the list as JSON.
//!
//! The folder is read on each request, so runs that finish while the server is up appear on
//! reload. A run folder without `results.json` is an aborted run (its `report.html` says why).

use super::{escape, page, Server};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The files of a run folder the server hands out, with their content types.
const FILES: [(&str, &str); 5] = [
    ("report.html", "text/html; charset=utf-8"),
    ("results.json", "application/json"),
    ("history.jsonl", "application/jsonl; charset=utf-8"),
    ("history.txt", "text/plain; charset=utf-8"),
    ("messages.jsonl", "application/jsonl; charset=utf-8"),
];

/// Serves `results_dir` on `addr` until the process is stopped; prints the address first.
pub fn serve(addr: SocketAddr, results_dir: PathBuf) -> anyhow::Result<()> {
    let server = Server::spawn(addr, router(results_dir.clone()), "serve")?;
    eprintln!(
        "Serving {} at http://{}/ (Ctrl-C to stop)",
        results_dir.display(),
        server.addr()
    );
    server.wait();
    Ok(())
}

/// The routes over `results_dir`.
pub fn router(results_dir: PathBuf) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/runs", get(api_runs))
        .route("/favicon.ico", get(super::no_icon))
        .route("/compare", get(compare))
        .route("/runs/{workload}/{run}/{file}", get(file))
        .with_state(Arc::new(results_dir))
}

/// One run folder, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// `<workload>/<run folder name>`.
    pub id: String,
    pub workload: String,
    /// The folder's name: its start time, `yyyyMMddTHHmmss.mmm` in local time.
    pub date: String,
    /// `true`, `false`, `"unknown"`, or `"aborted"` (no `results.json`).
    pub verdict: Value,
    pub figures: Figures,
    pub has_report: bool,
}

/// The key figures of a run, from its `results.json` (absent ones are `None`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub ops: Option<u64>,
    pub ok: Option<u64>,
    pub fail: Option<u64>,
    pub info: Option<u64>,
    pub server_msgs_per_op: Option<f64>,
    pub lost: Option<u64>,
    pub stale: Option<u64>,
    pub lag_p99_us: Option<u64>,
    pub seed: Option<u64>,
    pub command: Option<String>,
}

impl Figures {
    fn of(r: &Value) -> Figures {
        Figures {
            ops: r["stats"]["count"].as_u64(),
            ok: r["stats"]["ok-count"].as_u64(),
            fail: r["stats"]["fail-count"].as_u64(),
            info: r["stats"]["info-count"].as_u64(),
            server_msgs_per_op: r["net"]["servers"]["msgs-per-op"].as_f64(),
            lost: r["workload"]["lost-count"].as_u64(),
            stale: r["workload"]["stale-count"].as_u64(),
            lag_p99_us: r["runner"]["delivery-lag-us"]["p99"].as_u64(),
            seed: r["runner"]["seed"].as_u64(),
            command: r["runner"]["command"].as_str().map(String::from),
        }
    }

    /// The figures as (label, text) rows, for the tables.
    fn rows(&self) -> Vec<(&'static str, String)> {
        let n = |v: Option<u64>| v.map_or_else(|| "–".to_string(), |v| v.to_string());
        vec![
            ("ops", n(self.ops)),
            (
                "ok / fail / info",
                format!("{} / {} / {}", n(self.ok), n(self.fail), n(self.info)),
            ),
            (
                "server msgs/op",
                self.server_msgs_per_op
                    .map_or_else(|| "–".to_string(), |v| format!("{v:.2}")),
            ),
            ("lost", n(self.lost)),
            ("stale", n(self.stale)),
            ("lag p99 µs", n(self.lag_p99_us)),
            ("seed", n(self.seed)),
        ]
    }
}

/// A plain name: one path component that is not hidden, `.` or `..`.
fn plain(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\'])
}

/// Every run folder under `root` (`<root>/<workload>/<run>/`, real directories only, so the
/// `latest` links are not listed twice), newest first.
pub fn list_runs(root: &Path) -> Vec<RunInfo> {
    let dirs = |p: &Path| -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(p) else {
            return Vec::new();
        };
        rd.filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| plain(n))
            .collect()
    };
    let mut runs = Vec::new();
    for workload in dirs(root) {
        for run in dirs(&root.join(&workload)) {
            if let Some(info) = run_info(root, &workload, &run) {
                runs.push(info);
            }
        }
    }
    runs.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.id.cmp(&b.id)));
    runs
}

/// One run folder's entry; `None` if it is not a run folder (no report and no results).
fn run_info(root: &Path, workload: &str, run: &str) -> Option<RunInfo> {
    let dir = root.join(workload).join(run);
    let has_report = dir.join("report.html").is_file();
    let results: Option<Value> = std::fs::read(dir.join("results.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if results.is_none() && !has_report {
        return None;
    }
    let (verdict, figures) = match &results {
        Some(r) => (
            match &r["valid?"] {
                Value::Bool(b) => Value::Bool(*b),
                _ => Value::String("unknown".into()),
            },
            Figures::of(r),
        ),
        None => (Value::String("aborted".into()), Figures::default()),
    };
    Some(RunInfo {
        id: format!("{workload}/{run}"),
        workload: workload.to_string(),
        date: run.to_string(),
        verdict,
        figures,
        has_report,
    })
}

fn verdict_cell(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Bool(true) => ("valid", "valid"),
        Value::Bool(false) => ("invalid", "invalid"),
        Value::String(s) if s == "aborted" => ("aborted", "aborted"),
        _ => ("unknown", "unknown"),
    }
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.2em;color:#222}\
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.valid{color:#fff;background:#2a8a3e}.invalid{color:#fff;background:#c0392b}\
.unknown{background:#f1c40f}.aborted{color:#fff;background:#7f8c8d}td.v{font-weight:600;text-align:center}\
code{font-size:12px;color:#555}.num{text-align:right}button{margin:.6em 0}";

async fn index(State(root): State<Arc<PathBuf>>) -> Response {
    let runs = list_runs(&root);
    let mut rows = String::new();
    for r in &runs {
        let (class, label) = verdict_cell(&r.verdict);
        let id = escape(&r.id);
        let f = &r.figures;
        let cells: String = f.rows()[..6]
            .iter()
            .map(|(_, v)| format!("<td class=num>{}</td>", escape(v)))
            .collect();
        let report = if r.has_report {
            format!("<a href=\"/runs/{id}/report.html\">report</a>")
        } else {
            String::new()
        };
        let _ = write!(
            rows,
            "<tr data-run=\"{id}\"><td><input type=radio name=a value=\"{id}\"></td>\
             <td><input type=radio name=b value=\"{id}\"></td><td>{w}</td><td>{d}</td>\
             <td class=\"v {class}\">{label}</td>{cells}<td>{report}</td><td><code>{cmd}</code></td></tr>",
            w = escape(&r.workload),
            d = escape(&r.date),
            cmd = escape(f.command.as_deref().unwrap_or("")),
        );
    }
    let body = if runs.is_empty() {
        format!(
            "<p id=empty>No runs in <code>{}</code> yet.</p>",
            escape(&root.display().to_string())
        )
    } else {
        format!(
            "<form action=/compare method=get><table id=runs data-count=\"{n}\">\
             <tr><th>A</th><th>B</th><th>workload</th><th>date</th><th>verdict</th><th>ops</th>\
             <th>ok / fail / info</th><th>server msgs/op</th><th>lost</th><th>stale</th>\
             <th>lag p99 µs</th><th></th><th>command</th></tr>{rows}</table>\
             <button type=submit>Compare A and B side by side</button></form>",
            n = runs.len()
        )
    };
    page(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>murmur runs</title>\
         <style>{STYLE}</style></head><body><h1>Runs in <code>{}</code></h1>{body}</body></html>",
        escape(&root.display().to_string())
    ))
}

async fn api_runs(State(root): State<Arc<PathBuf>>) -> Json<Vec<RunInfo>> {
    Json(list_runs(&root))
}

#[derive(Deserialize)]
struct Pair {
    a: Option<String>,
    b: Option<String>,
}

/// The run with id `id` (`<workload>/<run>`), if it is a listed run folder.
fn find_run(root: &Path, id: &str) -> Option<RunInfo> {
    let (workload, run) = id.split_once('/')?;
    if !(plain(workload) && plain(run) && root.join(workload).join(run).is_dir()) {
        return None;
    }
    run_info(root, workload, run)
}

async fn compare(State(root): State<Arc<PathBuf>>, Query(q): Query<Pair>) -> Response {
    let (Some(a), Some(b)) = (
        q.a.as_deref().and_then(|id| find_run(&root, id)),
        q.b.as_deref().and_then(|id| find_run(&root, id)),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            "pick two runs (A and B) on the list: /compare?a=<workload>/<run>&b=<workload>/<run>",
        )
            .into_response();
    };
    let mut table = String::from("<table id=figures><tr><th></th>");
    for r in [&a, &b] {
        let _ = write!(table, "<th>{}</th>", escape(&r.id));
    }
    table.push_str("</tr><tr><td>verdict</td>");
    for r in [&a, &b] {
        let (class, label) = verdict_cell(&r.verdict);
        let _ = write!(table, "<td class=\"v {class}\">{label}</td>");
    }
    table.push_str("</tr>");
    let (ra, rb) = (a.figures.rows(), b.figures.rows());
    for ((label, va), (_, vb)) in ra.iter().zip(&rb) {
        let _ = write!(
            table,
            "<tr><td>{label}</td><td class=num>{}</td><td class=num>{}</td></tr>",
            escape(va),
            escape(vb)
        );
    }
    table.push_str("</table>");
    let frame = |r: &RunInfo| {
        format!(
            "<iframe class=report src=\"/runs/{}/report.html\" title=\"{}\"></iframe>",
            escape(&r.id),
            escape(&r.id)
        )
    };
    page(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>compare runs</title><style>{STYLE}\
         .pair{{display:flex;gap:8px}}.report{{flex:1;height:85vh;border:1px solid #ccc}}</style></head>\
         <body><p><a href=/>all runs</a></p>{table}<div class=pair>{}{}</div></body></html>",
        frame(&a),
        frame(&b)
    ))
}

async fn file(
    State(root): State<Arc<PathBuf>>,
    UrlPath((workload, run, name)): UrlPath<(String, String, String)>,
) -> Response {
    let Some((_, content_type)) = FILES.iter().find(|(f, _)| *f == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !(plain(&workload) && plain(&run)) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = root.join(&workload).join(&run).join(&name);
    // A blocking read: the files are a few MB at most, and one person browses at a time.
    match std::fs::read(&path) {
        Ok(bytes) => ([(header::CONTENT_TYPE, *content_type)], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_run_folders_newest_first_and_refuses_odd_names() {
        let root = tempfile::tempdir().unwrap();
        let mk = |w: &str, r: &str, results: Option<&str>| {
            let d = root.path().join(w).join(r);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("report.html"), "<html></html>").unwrap();
            if let Some(j) = results {
                std::fs::write(d.join("results.json"), j).unwrap();
            }
        };
        mk(
            "broadcast",
            "20260101T000000.000",
            Some(r#"{"valid?": true, "stats": {"count": 7}, "workload": {"lost-count": 0}}"#),
        );
        mk(
            "echo",
            "20260102T000000.000",
            Some(r#"{"valid?": "unknown"}"#),
        );
        mk("echo", "20260103T000000.000", None);
        std::fs::create_dir_all(root.path().join("echo/not-a-run")).unwrap();
        std::os::unix::fs::symlink("20260103T000000.000", root.path().join("echo/latest")).unwrap();
        let runs = list_runs(root.path());
        let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "echo/20260103T000000.000",
                "echo/20260102T000000.000",
                "broadcast/20260101T000000.000"
            ]
        );
        assert_eq!(runs[0].verdict, Value::String("aborted".into()));
        assert_eq!(runs[1].verdict, Value::String("unknown".into()));
        assert_eq!(runs[2].verdict, Value::Bool(true));
        assert_eq!(runs[2].figures.ops, Some(7));
        assert_eq!(runs[2].figures.lost, Some(0));
        assert!(find_run(root.path(), "broadcast/20260101T000000.000").is_some());
        for bad in [
            "../x",
            "broadcast/..",
            "broadcast",
            "echo/not-a-run",
            "/etc/passwd",
        ] {
            assert!(find_run(root.path(), bad).is_none(), "{bad}");
        }
    }
}
