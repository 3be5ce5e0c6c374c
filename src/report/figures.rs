//! The report's figures, drawn with plotters into PNG files beside the markdown: learning
//! curves (one line per group, the mean over seeds, the seeds' range as a band); for 2-D
//! models, the input and hidden planes of each group side by side like the paper's Figures 1
//! and 2; and the mean class-conditional singular values behind the flattening measure.
//! Text uses the DejaVu Sans font shipped in assets/ so that figures look the same on every
//! machine; nothing in a figure depends on the time or the host, so regenerating one from the
//! same runs gives the same bytes.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::store::records::PlaneMaps;

const FONT: &str = "sans-serif";

/// Tableau 10, the colours of one group each.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// Why a figure could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FigureError {
    pub path: String,
    pub reason: String,
}

fn fail(path: &Path) -> impl Fn(String) -> FigureError + '_ {
    move |reason| FigureError {
        path: path.display().to_string(),
        reason,
    }
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
        // The font is compiled in and known to parse; were it not, text would be missing
        // from the figures, which the figure tests would show.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, bytes);
    });
}

/// One group's learning curves: per seed, (epoch, test error %, test NLL) at each evaluation.
pub struct Curves {
    pub label: String,
    pub seeds: Vec<Vec<(f64, f64, f64)>>,
}

/// Mean and range over seeds at each epoch evaluated by every seed.
fn band(
    seeds: &[Vec<(f64, f64, f64)>],
    pick: impl Fn(&(f64, f64, f64)) -> f64,
) -> Vec<(f64, f64, f64, f64)> {
    let Some(first) = seeds.first() else {
        return Vec::new();
    };
    first
        .iter()
        .filter_map(|p| {
            let vals: Vec<f64> = seeds
                .iter()
                .filter_map(|s| s.iter().find(|q| q.0 == p.0).map(&pick))
                .collect();
            (vals.len() == seeds.len()).then(|| {
                let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                (
                    p.0,
                    mean,
                    vals.iter().cloned().fold(f64::MAX, f64::min),
                    vals.iter().cloned().fold(f64::MIN, f64::max),
                )
            })
        })
        .collect()
}

/// Test error and NLL over epochs, two panels side by side.
pub fn learning_curves(path: &Path, title: &str, groups: &[Curves]) -> Result<(), FigureError> {
    register_font();
    let fail = fail(path);
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let root = root
        .titled(title, (FONT, 24))
        .map_err(|e| fail(e.to_string()))?;
    let panels = root.split_evenly((1, 2));
    let max_epoch = groups
        .iter()
        .flat_map(|g| g.seeds.iter().flatten().map(|p| p.0))
        .fold(1.0, f64::max);
    for (panel, (name, pick)) in panels
        .iter()
        .zip([("test error %", 1usize), ("test NLL (nats)", 2usize)])
    {
        let get = move |p: &(f64, f64, f64)| if pick == 1 { p.1 } else { p.2 };
        let bands: Vec<Vec<(f64, f64, f64, f64)>> =
            groups.iter().map(|g| band(&g.seeds, get)).collect();
        let top = bands
            .iter()
            .flatten()
            .map(|b| b.3)
            .fold(0.0, f64::max)
            .max(1e-6)
            * 1.05;
        let mut chart = ChartBuilder::on(panel)
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..max_epoch, 0.0..top)
            .map_err(|e| fail(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(name)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        for (i, (g, b)) in groups.iter().zip(&bands).enumerate() {
            let c = color(i);
            if g.seeds.len() > 1 && b.len() > 1 {
                let mut outline: Vec<(f64, f64)> = b.iter().map(|p| (p.0, p.3)).collect();
                outline.extend(b.iter().rev().map(|p| (p.0, p.2)));
                chart
                    .draw_series(std::iter::once(Polygon::new(outline, c.mix(0.18).filled())))
                    .map_err(|e| fail(e.to_string()))?;
            }
            chart
                .draw_series(LineSeries::new(
                    b.iter().map(|p| (p.0, p.1)),
                    c.stroke_width(2),
                ))
                .map_err(|e| fail(e.to_string()))?
                .label(g.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(e.to_string()))?;
    }
    root.present().map_err(|e| fail(e.to_string()))
}

/// The colour of a point of a 2-class map: blue where class 0 is certain, red where class 1
/// is, white where the model is unsure (for more classes: the top class's colour, paler as
/// the confidence falls).
fn shade(probs: &[f32]) -> RGBColor {
    let (top, p) = probs.iter().enumerate().fold(
        (0, 0f32),
        |best, (i, &p)| if p > best.1 { (i, p) } else { best },
    );
    let c = if probs.len() == 2 {
        [COLORS[0], COLORS[3]][top]
    } else {
        color(top)
    };
    // Confidence 1/classes → white, 1 → the full colour.
    let floor = 1.0 / probs.len().max(1) as f32;
    let t = ((p - floor) / (1.0 - floor)).clamp(0.0, 1.0) as f64;
    let mix = |a: u8| (255.0 + (a as f64 - 255.0) * t).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// Draws one plane: the probability map, then points by class (`labels`) and, in black,
/// `extra` points.
#[allow(clippy::too_many_arguments)]
fn plane_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    bounds: [f64; 4],
    grid: usize,
    probs: &[f32],
    classes: usize,
    points: &[f32],
    labels: &[usize],
    extra: &[f32],
    fail: &dyn Fn(String) -> FigureError,
) -> Result<(), FigureError> {
    let [x0, x1, y0, y1] = bounds;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 13))
        .margin(6)
        .x_label_area_size(22)
        .y_label_area_size(36)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| fail(e.to_string()))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style((FONT, 11))
        .x_labels(4)
        .y_labels(4)
        .draw()
        .map_err(|e| fail(e.to_string()))?;
    let (dx, dy) = (
        (x1 - x0) / (grid - 1).max(1) as f64,
        (y1 - y0) / (grid - 1).max(1) as f64,
    );
    let cells = (0..grid * grid).map(|i| {
        let (ix, iy) = (i % grid, i / grid);
        let (cx, cy) = (x0 + ix as f64 * dx, y0 + iy as f64 * dy);
        Rectangle::new(
            [
                (cx - dx / 2.0, cy - dy / 2.0),
                (cx + dx / 2.0, cy + dy / 2.0),
            ],
            shade(&probs[i * classes..(i + 1) * classes]).filled(),
        )
    });
    chart.draw_series(cells).map_err(|e| fail(e.to_string()))?;
    // Points in a darker shade of their class's colour, ringed in white, to stand out on the map.
    let dark = |c: RGBColor| RGBColor(c.0 / 2, c.1 / 2, c.2 / 2);
    let dots = points.chunks(2).zip(labels).flat_map(|(p, &l)| {
        let c = dark(if classes == 2 {
            [COLORS[0], COLORS[3]][l.min(1)]
        } else {
            color(l)
        });
        let at = (p[0] as f64, p[1] as f64);
        [
            Circle::new(at, 3, WHITE.filled()),
            Circle::new(at, 2, c.filled()),
        ]
    });
    chart.draw_series(dots).map_err(|e| fail(e.to_string()))?;
    chart
        .draw_series(
            extra
                .chunks(2)
                .map(|p| Circle::new((p[0] as f64, p[1] as f64), 1, BLACK.filled())),
        )
        .map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// The paper's Figure 1 layout, one column per group: the input plane (decision boundary and
/// training points) above the hidden plane (the bottleneck: its map, the training points'
/// states by class, and in black the states of points drawn uniformly over the input plane).
pub fn planes(path: &Path, title: &str, groups: &[(String, PlaneMaps)]) -> Result<(), FigureError> {
    register_font();
    let fail = fail(path);
    let cols = groups.len().max(1);
    let root = BitMapBackend::new(path, (330 * cols as u32, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let root = root
        .titled(title, (FONT, 22))
        .map_err(|e| fail(e.to_string()))?;
    let cells = root.split_evenly((2, cols));
    for (i, (label, m)) in groups.iter().enumerate() {
        plane_panel(
            &cells[i],
            label,
            m.input_box,
            m.grid,
            &m.input_probs,
            m.classes,
            &m.train_points,
            &m.train_labels,
            &[],
            &fail,
        )?;
        plane_panel(
            &cells[cols + i],
            &format!("hidden (H = {:.2} nats)", m.entropy_hidden),
            m.hidden_box,
            m.grid,
            &m.hidden_probs,
            m.classes,
            &m.train_hidden,
            &m.train_labels,
            &m.uniform_hidden,
            &fail,
        )?;
    }
    root.present().map_err(|e| fail(e.to_string()))
}

/// The groups' mean spectra (label, singular values largest first) at one mix point.
pub type LayerSpectra = (usize, Vec<(String, Vec<f64>)>);

/// Bars of the mean class-conditional singular values (the first `k`), one panel per mix
/// point, one bar colour per group.
pub fn spectra(
    path: &Path,
    title: &str,
    layers: &[LayerSpectra],
    k: usize,
) -> Result<(), FigureError> {
    register_font();
    let fail = fail(path);
    let root =
        BitMapBackend::new(path, (720 * layers.len().max(1) as u32, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let root = root
        .titled(title, (FONT, 22))
        .map_err(|e| fail(e.to_string()))?;
    let panels = root.split_evenly((1, layers.len().max(1)));
    for (panel, (layer, groups)) in panels.iter().zip(layers) {
        let n = groups.len().max(1) as f64;
        let top = groups
            .iter()
            .flat_map(|g| g.1.iter().take(k))
            .cloned()
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.08;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("mix point {layer}"), (FONT, 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.5..k as f64 + 0.5, 0.0..top)
            .map_err(|e| fail(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("k-th largest singular value")
            .y_desc("mean over classes")
            .x_labels(k)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        for (i, (label, values)) in groups.iter().enumerate() {
            let c = color(i);
            let w = 0.8 / n;
            let bars = values.iter().take(k).enumerate().map(move |(j, &v)| {
                let left = j as f64 + 1.0 - 0.4 + i as f64 * w;
                Rectangle::new([(left, 0.0), (left + w, v)], c.filled())
            });
            chart
                .draw_series(bars)
                .map_err(|e| fail(e.to_string()))?
                .label(label.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(e.to_string()))?;
    }
    root.present().map_err(|e| fail(e.to_string()))
}
