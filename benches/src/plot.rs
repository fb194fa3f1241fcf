// SPDX-License-Identifier: MIT OR Apache-2.0
//! Grouped bar charts as standalone SVG, for the data-plane benches'
//! results (no plotting dependency: the charts are simple enough to write).

use std::fmt::Write;

/// One series of a chart: a name and one value per category.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// One value per category (same order).
    pub values: Vec<f64>,
}

/// Series colours, in order (colour-blind-safe palette).
const COLOURS: [&str; 6] = [
    "#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377",
];

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 80.0;

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" upper bound for the axis: 1, 2 or 5 times a power of ten.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// A grouped bar chart: one group per category, one bar per series, each
/// bar labelled with its value.
pub fn bar_chart(title: &str, y_label: &str, categories: &[String], series: &[Series]) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0f64, f64::max);
    let top = nice_max(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h * (1.0 - (v / top).clamp(0.0, 1.0));
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        esc(title)
    );
    // Axis and grid.
    for i in 0..=5 {
        let v = top * f64::from(i) / 5.0;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            fmt_value(v)
        );
    }
    let _ = write!(
        s,
        r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        esc(y_label)
    );
    let groups = categories.len().max(1) as f64;
    let group_w = plot_w / groups;
    let bar_w = (group_w * 0.8) / series.len().max(1) as f64;
    for (ci, cat) in categories.iter().enumerate() {
        let gx = LEFT + group_w * ci as f64 + group_w * 0.1;
        for (si, ser) in series.iter().enumerate() {
            let v = ser.values.get(ci).copied().unwrap_or(0.0);
            let x = gx + bar_w * si as f64;
            let yy = y(v);
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{yy:.1}" width="{:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                bar_w * 0.92,
                TOP + plot_h - yy,
                COLOURS[si % COLOURS.len()],
                x + bar_w * 0.46,
                yy - 3.0,
                fmt_value(v)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + group_w * 0.4,
            TOP + plot_h + 18.0,
            esc(cat)
        );
    }
    // Legend.
    for (si, ser) in series.iter().enumerate() {
        let x = LEFT + 160.0 * si as f64;
        let yy = HEIGHT - 24.0;
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{yy:.1}">{}</text>"#,
            yy - 10.0,
            COLOURS[si % COLOURS.len()],
            x + 16.0,
            esc(&ser.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_a_bar_and_label_per_value_and_a_legend_per_series() {
        let svg = bar_chart(
            "t <1>",
            "Mpps",
            &["64 B".into(), "1500 B".into()],
            &[
                Series {
                    name: "Linux".into(),
                    values: vec![1.0, 0.9],
                },
                Series {
                    name: "LinuxFP".into(),
                    values: vec![3.5, 3.4],
                },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // 4 bars + 2 legend boxes + the background.
        assert_eq!(svg.matches("<rect").count(), 7);
        assert!(svg.contains("t &lt;1&gt;"));
        assert!(svg.contains(">3.50<"));
        assert_eq!(nice_max(3.5), 5.0);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(120.0), 200.0);
    }
}
