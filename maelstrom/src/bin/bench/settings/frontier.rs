//! The frontier plot of the settings benchmark: `frontier.svg`.

use super::{comparison, num, Row};
use std::fmt::Write as _;

/// Published and reference points from the efficiency issue: (label, msgs-per-op, median, max).
const MARKS: &[(&str, f64, f64, f64)] = &[
    ("published A", 1.99, 339.0, 678.0),
    ("published B", 11.8, 175.0, 212.0),
    ("ref: origin push", 12.2, 79.0, 98.0),
    ("ref: star T=100", 2.84, 168.0, 201.0),
    ("ref: star T=200", 1.77, 254.0, 298.0),
    ("ref: star T=350", 1.20, 219.0, 447.0),
    ("ref: star T=600", 0.91, 375.0, 693.0),
];

/// A hand-written SVG: x = servers msgs-per-op (log scale), y = stable latency (ms).
pub(super) fn frontier_svg(rows: &[Row]) -> String {
    let (w, h, left, bottom, top, right) = (760.0, 460.0, 70.0, 50.0, 20.0, 180.0);
    let (xmin, xmax, ymax) = (0.5f64.ln(), 40f64.ln(), 800.0);
    let px = |m: f64| left + (m.max(0.5).ln() - xmin) / (xmax - xmin) * (w - left - right);
    let py = |ms: f64| h - bottom - ms.min(ymax) / ymax * (h - bottom - top);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        h - bottom,
        w - right,
        h - bottom
    );
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/>"#,
        h - bottom
    );
    for m in [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0] {
        let x = px(m);
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{}" stroke="#eee"/><text x="{x}" y="{}" text-anchor="middle">{m}</text>"##,
            h - bottom,
            h - bottom + 15.0
        );
    }
    for ms in (0..=800).step_by(100) {
        let y = py(ms as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{ms}</text>"##,
            w - right,
            left - 5.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">servers msgs-per-op (log scale)</text>"#,
        (left + w - right) / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text x="15" y="{}" transform="rotate(-90 15 {})" text-anchor="middle">stable latency, ms (median to max)</text>"#,
        h / 2.0,
        h / 2.0
    );
    for (label, m, med, max) in MARKS {
        let (x, y1, y2) = (px(*m), py(*med), py(*max));
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{y1}" x2="{x}" y2="{y2}" stroke="#999" stroke-width="2"/><circle cx="{x}" cy="{y2}" r="3" fill="#999"/><text x="{}" y="{}" fill="#777">{label}</text>"##,
            x + 5.0,
            y2 - 3.0
        );
    }
    for r in rows
        .iter()
        .filter(|r| r.variant == "no faults" && !comparison(&r.setting))
    {
        let Some(v) = &r.results else { continue };
        let (Some(m), Some(med), Some(max)) = (
            num(v, &["net", "servers", "msgs-per-op"]),
            num(v, &["workload", "stable-latencies", "0.5"]),
            num(v, &["workload", "stable-latencies", "1"]),
        ) else {
            continue;
        };
        let (x, y1, y2) = (px(m), py(med), py(max));
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{y1}" x2="{x}" y2="{y2}" stroke="#c33" stroke-width="3"/><circle cx="{x}" cy="{y2}" r="4" fill="#c33"/><text x="{}" y="{}" fill="#c33">{}</text>"##,
            x + 6.0,
            y2 + 12.0,
            r.setting
        );
    }
    s.push_str("</svg>\n");
    s
}
