//! Charts drawn with `plotters` into an [`Rgb8Image`]: line charts (loss
//! curves), scatter plots coloured by class (latent spaces) and overlaid
//! histograms (code activations).
//!
//! Every chart has a title, labelled axes with tick labels and, when it has
//! several series, a legend; text uses the embedded DejaVu Sans subset, so the
//! same data gives the same pixels on every machine.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::font::{FAMILY, ensure_registered};
use crate::{Result, Rgb8Image, VizError};

/// Width of every chart, in pixels.
pub const CHART_WIDTH: usize = 640;
/// Height of every chart, in pixels.
pub const CHART_HEIGHT: usize = 440;

/// The ten colours of series and classes (matplotlib's `tab10`).
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// The colour of series or class `i` (the palette repeats after ten).
pub fn colour(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// One named series of `(x, y)` points of a line chart.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// The name shown in the legend.
    pub name: &'a str,
    /// The points, in drawing order.
    pub points: &'a [(f64, f64)],
}

/// The range `[lo, hi]` of `values` with a margin of `frac` of its span on
/// each side; a single value gets a span of its own.
fn padded_range(values: impl Iterator<Item = f64>, frac: f64) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f64, f64)>, v| match acc {
            None => Some((v, v)),
            Some((a, b)) => Some((a.min(v), b.max(v))),
        })?;
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * frac
    } else {
        (lo.abs() * 0.1).max(1e-3)
    };
    Some((lo - pad, hi + pad))
}

fn chart_err<E: std::fmt::Display>(chart: &str) -> impl Fn(E) -> VizError + '_ {
    move |e| VizError::Chart {
        chart: chart.to_string(),
        message: e.to_string(),
    }
}

/// Draws into a fresh white canvas of the chart size and returns the picture.
fn draw_chart(
    name: &str,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
) -> Result<Rgb8Image> {
    ensure_registered()?;
    let mut data = vec![255u8; CHART_WIDTH * CHART_HEIGHT * 3];
    {
        let root = BitMapBackend::with_buffer(&mut data, (CHART_WIDTH as u32, CHART_HEIGHT as u32))
            .into_drawing_area();
        root.fill(&WHITE).map_err(chart_err(name))?;
        draw(&root)?;
        root.present().map_err(chart_err(name))?;
    }
    Ok(Rgb8Image {
        width: CHART_WIDTH,
        height: CHART_HEIGHT,
        data,
    })
}

/// A tick formatter for an axis spanning `lo..hi`: values within rounding
/// noise of zero (1e-9 of the span) read `0`.
fn ticks(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let eps = 1e-9 * (hi - lo).abs();
    move |v: &f64| tick(if v.abs() <= eps { 0.0 } else { *v })
}

/// Shows a tick value briefly: integers without decimals, others with up to
/// four significant digits.
fn tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if (v - v.round()).abs() < 1e-9 * a.max(1.0) {
        format!("{}", v.round())
    } else {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.decimals$}");
        let s = s.trim_end_matches('0');
        s.trim_end_matches('.').to_string()
    }
}

/// A line chart of one or more series (each point also drawn as a dot, so a
/// one-point series shows). With `integer_x`, only whole x values get tick
/// labels (epochs).
pub fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series<'_>],
    integer_x: bool,
) -> Result<Rgb8Image> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    if all().all(|p| !(p.0.is_finite() && p.1.is_finite())) {
        return Err(VizError::Data(format!(
            "the line chart '{title}': no finite point"
        )));
    }
    let (x0, x1) = padded_range(all().map(|p| p.0), 0.03).unwrap_or((0.0, 1.0));
    let (x0, x1) = if integer_x && x1 - x0 < 1.0 {
        let mid = 0.5 * (x0 + x1);
        (mid - 0.5, mid + 0.5)
    } else {
        (x0, x1)
    };
    let (y0, y1) = padded_range(all().map(|p| p.1), 0.08).unwrap_or((0.0, 1.0));
    let int_fmt = |v: &f64| {
        if (v - v.round()).abs() < 1e-6 {
            format!("{}", v.round())
        } else {
            String::new()
        }
    };
    let x_float = ticks(x0, x1);
    let y_float = ticks(y0, y1);
    let x_fmt: &dyn Fn(&f64) -> String = if integer_x { &int_fmt } else { &x_float };
    let y_fmt: &dyn Fn(&f64) -> String = &y_float;
    draw_chart(title, |root| {
        let err = chart_err(title);
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FAMILY, 18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(12)
            .y_labels(8)
            .x_label_formatter(x_fmt)
            .y_label_formatter(y_fmt)
            .label_style((FAMILY, 12))
            .axis_desc_style((FAMILY, 14))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .max_light_lines(3)
            .draw()
            .map_err(&err)?;
        for (i, s) in series.iter().enumerate() {
            let c = colour(i);
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(&err)?
                .label(s.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(&err)?;
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font((FAMILY, 13))
                .draw()
                .map_err(&err)?;
        }
        Ok(())
    })
}

/// A scatter plot of 2-D points, coloured by `labels` (one per point) when
/// given, with a legend of the classes; points are drawn class by class.
pub fn scatter(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[[f64; 2]],
    labels: Option<&[u8]>,
) -> Result<Rgb8Image> {
    if points.is_empty() {
        return Err(VizError::Data(format!(
            "the scatter plot '{title}': no point"
        )));
    }
    if let Some(l) = labels
        && l.len() != points.len()
    {
        return Err(VizError::Data(format!(
            "the scatter plot '{title}': {} labels for {} points",
            l.len(),
            points.len()
        )));
    }
    if let Some(p) = points
        .iter()
        .find(|p| !(p[0].is_finite() && p[1].is_finite()))
    {
        return Err(VizError::Data(format!(
            "the scatter plot '{title}': the point {p:?} is not finite"
        )));
    }
    let (x0, x1) = padded_range(points.iter().map(|p| p[0]), 0.05).unwrap_or((0.0, 1.0));
    let (y0, y1) = padded_range(points.iter().map(|p| p[1]), 0.05).unwrap_or((0.0, 1.0));
    // Room for the legend on the right: widen the x range by a quarter.
    let legend_room = if labels.is_some() {
        0.22 * (x1 - x0)
    } else {
        0.0
    };
    let x_fmt = ticks(x0, x1);
    let y_fmt = ticks(y0, y1);
    draw_chart(title, |root| {
        let err = chart_err(title);
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FAMILY, 18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1 + legend_room, y0..y1)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style((FAMILY, 12))
            .axis_desc_style((FAMILY, 14))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .max_light_lines(3)
            .draw()
            .map_err(&err)?;
        match labels {
            None => {
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|p| Circle::new((p[0], p[1]), 2, colour(0).mix(0.7).filled())),
                    )
                    .map_err(&err)?;
            }
            Some(labels) => {
                let mut classes: Vec<u8> = labels.to_vec();
                classes.sort_unstable();
                classes.dedup();
                for class in classes {
                    let c = colour(class as usize);
                    chart
                        .draw_series(
                            points
                                .iter()
                                .zip(labels)
                                .filter(|(_, l)| **l == class)
                                .map(|(p, _)| Circle::new((p[0], p[1]), 2, c.mix(0.75).filled())),
                        )
                        .map_err(&err)?
                        .label(class.to_string())
                        .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.4))
                    .label_font((FAMILY, 12))
                    .draw()
                    .map_err(&err)?;
            }
        }
        Ok(())
    })
}

/// Counts of `values` in `bins` equal bins over `[lo, hi]` (the last bin
/// includes `hi`), as fractions of the finite values.
pub fn bin_fractions(values: &[f32], lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let mut counts = vec![0usize; bins.max(1)];
    let width = (hi - lo) / counts.len() as f64;
    let mut n = 0usize;
    for &v in values {
        let v = v as f64;
        if !v.is_finite() || v < lo || v > hi {
            continue;
        }
        let i = if width > 0.0 {
            (((v - lo) / width) as usize).min(counts.len() - 1)
        } else {
            0
        };
        counts[i] += 1;
        n += 1;
    }
    counts.iter().map(|&c| c as f64 / n.max(1) as f64).collect()
}

/// Overlaid histograms of several sets of values over a common range, as the
/// fraction of each set's values per bin (translucent bars, one colour each).
pub fn histogram(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    sets: &[(&str, &[f32])],
    bins: usize,
) -> Result<Rgb8Image> {
    let finite = || {
        sets.iter()
            .flat_map(|(_, v)| v.iter())
            .map(|&v| v as f64)
            .filter(|v| v.is_finite())
    };
    let (lo, hi) = finite()
        .fold(None, |acc: Option<(f64, f64)>, v| match acc {
            None => Some((v, v)),
            Some((a, b)) => Some((a.min(v), b.max(v))),
        })
        .ok_or_else(|| VizError::Data(format!("the histogram '{title}': no finite value")))?;
    let hi = if hi > lo { hi } else { lo + 1e-3 };
    let bins = bins.max(1);
    let fractions: Vec<Vec<f64>> = sets
        .iter()
        .map(|(_, v)| bin_fractions(v, lo, hi, bins))
        .collect();
    let top = fractions.iter().flatten().copied().fold(0.0f64, f64::max);
    let width = (hi - lo) / bins as f64;
    let x_fmt = ticks(lo, hi);
    let y_fmt = ticks(0.0, top);
    draw_chart(title, |root| {
        let err = chart_err(title);
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FAMILY, 18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0.0..(top * 1.08).max(1e-6))
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style((FAMILY, 12))
            .axis_desc_style((FAMILY, 14))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .max_light_lines(3)
            .draw()
            .map_err(&err)?;
        for (i, ((name, _), fr)) in sets.iter().zip(&fractions).enumerate() {
            let c = colour(i);
            chart
                .draw_series(fr.iter().enumerate().map(|(b, &f)| {
                    let x = lo + b as f64 * width;
                    Rectangle::new([(x, 0.0), (x + width, f)], c.mix(0.45).filled())
                }))
                .map_err(&err)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 16, y + 5)], c.mix(0.6).filled())
                });
            chart
                .draw_series(fr.iter().enumerate().map(|(b, &f)| {
                    let x = lo + b as f64 * width;
                    Rectangle::new([(x, 0.0), (x + width, f)], c.stroke_width(1))
                }))
                .map_err(&err)?;
        }
        if sets.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font((FAMILY, 13))
                .draw()
                .map_err(&err)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn non_white(img: &Rgb8Image) -> usize {
        img.data
            .chunks_exact(3)
            .filter(|p| p != &[255, 255, 255])
            .count()
    }

    /// Pixels that differ between two pictures of the same size.
    fn differing(a: &Rgb8Image, b: &Rgb8Image) -> usize {
        a.data
            .chunks_exact(3)
            .zip(b.data.chunks_exact(3))
            .filter(|(x, y)| x != y)
            .count()
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(3.0), "3");
        assert_eq!(tick(0.125), "0.125");
        assert_eq!(tick(0.10000001), "0.1");
        assert_eq!(tick(123.456), "123.5");
        assert_eq!(tick(-2.5), "-2.5");
        assert_eq!(tick(1e-5), "1.0e-5");
        assert_eq!(ticks(-1.0, 1.0)(&1.1e-16), "0");
        assert_eq!(ticks(-1e-12, 1e-12)(&1e-13), "1.0e-13");
    }

    #[test]
    fn line_chart_draws_lines_text_and_is_deterministic() {
        let train = [(1.0, 0.3), (2.0, 0.2), (3.0, 0.15)];
        let val = [(1.0, 0.28), (2.0, 0.21), (3.0, 0.17)];
        let series = [
            Series {
                name: "train",
                points: &train,
            },
            Series {
                name: "validation",
                points: &val,
            },
        ];
        let a = line_chart("loss", "epoch", "loss", &series, true).unwrap();
        assert_eq!((a.width, a.height), (CHART_WIDTH, CHART_HEIGHT));
        assert!(non_white(&a) > 2000, "{}", non_white(&a));
        assert!(a.distinct_colours() > 10);
        // Both series' colours are present.
        let has = |c: RGBColor| a.data.chunks_exact(3).any(|p| p == [c.0, c.1, c.2]);
        assert!(has(colour(0)) && has(colour(1)));
        let b = line_chart("loss", "epoch", "loss", &series, true).unwrap();
        assert_eq!(a, b);
        // The text is drawn: another title changes pixels of the picture.
        let c = line_chart("LOSS CURVES", "epoch", "loss", &series, true).unwrap();
        assert!(differing(&a, &c) > 50);
        // One point, constant values: still drawn.
        let one = [(1.0, 0.5)];
        let d = line_chart(
            "one",
            "epoch",
            "loss",
            &[Series {
                name: "t",
                points: &one,
            }],
            true,
        )
        .unwrap();
        assert!(
            d.data
                .chunks_exact(3)
                .any(|p| p == [colour(0).0, colour(0).1, colour(0).2])
        );
        let nan = [(1.0, f64::NAN)];
        assert!(
            line_chart(
                "x",
                "x",
                "y",
                &[Series {
                    name: "t",
                    points: &nan
                }],
                false
            )
            .is_err()
        );
    }

    #[test]
    fn scatter_colours_points_by_class() {
        let points: Vec<[f64; 2]> = (0..200)
            .map(|i| [(i % 20) as f64, (i / 20) as f64 * 0.5 - 3.0])
            .collect();
        let labels: Vec<u8> = (0..200).map(|i| (i / 20) as u8).collect();
        let img = scatter("latent", "z1", "z2", &points, Some(&labels)).unwrap();
        assert_eq!((img.width, img.height), (CHART_WIDTH, CHART_HEIGHT));
        for class in 0..10 {
            let c = colour(class);
            assert!(
                img.data.chunks_exact(3).any(|p| p == [c.0, c.1, c.2]),
                "class {class}"
            );
        }
        assert_eq!(
            img,
            scatter("latent", "z1", "z2", &points, Some(&labels)).unwrap()
        );
        let plain = scatter("latent", "z1", "z2", &points, None).unwrap();
        assert!(non_white(&plain) > 1000);
        assert!(scatter("x", "x", "y", &points, Some(&labels[..3])).is_err());
        assert!(scatter("x", "x", "y", &[], None).is_err());
        assert!(scatter("x", "x", "y", &[[f64::INFINITY, 0.0]], None).is_err());
    }

    #[test]
    fn histogram_bins_and_draws_both_sets() {
        assert_eq!(
            bin_fractions(&[0.0, 0.1, 0.5, 1.0, f32::NAN], 0.0, 1.0, 2),
            vec![0.5, 0.5]
        );
        assert_eq!(bin_fractions(&[2.0, 2.0], 2.0, 2.0, 3), vec![1.0, 0.0, 0.0]);
        let a: Vec<f32> = (0..1000).map(|i| (i % 100) as f32 / 400.0).collect();
        let b: Vec<f32> = (0..1000).map(|i| (i % 100) as f32 / 100.0).collect();
        let img = histogram(
            "codes",
            "activation",
            "fraction",
            &[("sparse", &a), ("vanilla", &b)],
            30,
        )
        .unwrap();
        assert_eq!((img.width, img.height), (CHART_WIDTH, CHART_HEIGHT));
        assert!(non_white(&img) > 5000);
        assert!(histogram("x", "x", "y", &[("e", &[])], 10).is_err());
        // A constant set still draws.
        assert!(histogram("x", "x", "y", &[("c", &[0.0; 10])], 10).is_ok());
    }
}
