//! One PNG: the latency distributions (CDFs) of the gateway, the floor, the
//! floor with a write and the seed design, for a warm upgrade, a producer's
//! acknowledgement and a delivery to 16 subscribers. Text needs a TrueType
//! font: `BENCH_FONT`, else DejaVu Sans from the system or from
//! `target/bench-font` (scripts/bench.sh installs it there when missing).

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::stats::{percentile, Metric, Results};
use crate::target::Kind;

const PANELS: [(Metric, &str); 3] = [
    (Metric::WarmOpen, "warm upgrade → open (ms)"),
    (Metric::Ack, "producer event → 202 (ms)"),
    (Metric::Fanout16, "event → last of 16 subscribers (ms)"),
];

fn font(root: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("BENCH_FONT")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates
        .push(root.join("target/bench-font/node_modules/dejavu-fonts-ttf/ttf/DejaVuSans.ttf"));
    candidates.push("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into());
    candidates.into_iter().find(|p| p.exists())
}

/// Draws the CDFs into `png`.
///
/// # Errors
/// When no font is found or drawing fails.
pub fn latency(results: &Results, png: &Path, root: &Path) -> Result<(), String> {
    let font = font(root).ok_or("no TrueType font (set BENCH_FONT)")?;
    let bytes = std::fs::read(&font).map_err(|e| e.to_string())?;
    register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(bytes.into_boxed_slice()),
    )
    .map_err(|_| "font not readable".to_owned())?;
    let root_area = BitMapBackend::new(png, (1500, 500)).into_drawing_area();
    root_area.fill(&WHITE).map_err(|e| e.to_string())?;
    let colors = [RED, BLUE, GREEN, BLACK];
    for (area, (metric, title)) in root_area.split_evenly((1, 3)).iter().zip(PANELS) {
        let series: Vec<(Kind, Vec<f64>)> = Kind::ALL
            .iter()
            .map(|k| {
                let mut s = results.pooled(metric, *k);
                s.sort_by(f64::total_cmp);
                (*k, s)
            })
            .filter(|(_, s)| !s.is_empty())
            .collect();
        let x_max = series
            .iter()
            .map(|(_, s)| percentile(s, 99.0))
            .fold(1.0_f64, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0.0..x_max, 0.0..1.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .y_desc("fraction ≤ x")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (kind, sample)) in series.iter().enumerate() {
            let color = colors[i % colors.len()];
            #[allow(clippy::cast_precision_loss)]
            let n = sample.len() as f64;
            let points = sample
                .iter()
                .enumerate()
                .map(|(j, x)| (*x, (j + 1) as f64 / n));
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(kind.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root_area.present().map_err(|e| e.to_string())
}
