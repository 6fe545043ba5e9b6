//! Figures drawn as charts: the loss curves (`loss.png`), the latent scatter
//! plot (`latent.png`) and the code histogram of a sparse model (`code-histogram.png`).

use ae_data::ImageSet;
use ae_models::{Autoencoder, ModelKind};
use ae_train::Metrics;
use candle_core::Device;

use super::{Picture, PlotOptions, encode_images};
use crate::chart::{self, Series};
use crate::pca::pca2;
use crate::{Result, VizError};

/// The codes of up to `opts.max_points` test images in 2-D, coloured by
/// class (`latent.png`): the code itself when it has two dimensions, else its
/// projection on the first two principal components.
pub fn latent_scatter(
    model: &dyn Autoencoder,
    set: &ImageSet,
    opts: &PlotOptions,
    device: &Device,
) -> Result<Picture> {
    let m = opts.max_points.min(set.len()).max(1);
    let codes = encode_images(model, set, m, opts.batch_size, device)?;
    let k = model.latent_dim();
    if codes.len() != m * k {
        return Err(VizError::Data(format!(
            "{} code values for {m} images of latent size {k}",
            codes.len()
        )));
    }
    let what = if model.kind() == ModelKind::Vae {
        "posterior means"
    } else {
        "codes"
    };
    let (points, title, xd, yd, how) = if k == 2 {
        let points: Vec<[f64; 2]> = codes
            .chunks_exact(2)
            .map(|c| [c[0] as f64, c[1] as f64])
            .collect();
        (
            points,
            "Latent space".to_string(),
            "z1".to_string(),
            "z2".to_string(),
            format!("the two dimensions of the {what}"),
        )
    } else {
        let p = pca2(&codes, m, k)?;
        let pct = |v: f64| {
            if p.total_variance > 0.0 {
                100.0 * v / p.total_variance
            } else {
                0.0
            }
        };
        (
            p.points.clone(),
            format!("Latent space: PCA of the {k}-d {what}"),
            format!("PC 1 ({:.0}% of variance)", pct(p.variance[0])),
            format!("PC 2 ({:.0}% of variance)", pct(p.variance[1])),
            format!(
                "the first two principal components of the {k}-dimensional {what} ({:.0}% of their variance)",
                100.0 * p.explained()
            ),
        )
    };
    let labels = set.labels().map(|l| &l[..m]);
    let image = chart::scatter(&title, &xd, &yd, &points, labels)?;
    Ok(Picture {
        file: "latent.png".into(),
        title: "Latent space".into(),
        caption: format!(
            "{m} test images placed by {how}{}.",
            if labels.is_some() {
                ", coloured by class"
            } else {
                ""
            }
        ),
        image,
    })
}

/// Histogram of the code activations of `model` over up to
/// `opts.max_points` test images, against those of `peer` (the vanilla
/// model) on the same images when given (`code-histogram.png`).
pub fn code_histogram(
    model: &dyn Autoencoder,
    peer: Option<&dyn Autoencoder>,
    set: &ImageSet,
    opts: &PlotOptions,
    device: &Device,
) -> Result<Picture> {
    let m = opts.max_points.min(set.len()).max(1);
    let ours = encode_images(model, set, m, opts.batch_size, device)?;
    let mean_abs =
        |v: &[f32]| v.iter().map(|x| x.abs() as f64).sum::<f64>() / v.len().max(1) as f64;
    let name = model.kind().to_string();
    let (image, caption) = match peer {
        Some(p) => {
            let theirs = encode_images(p, set, m, opts.batch_size, device)?;
            let pname = p.kind().to_string();
            let (a, b) = (mean_abs(&ours), mean_abs(&theirs));
            let title = format!("Code activations: {name} vs {pname}");
            let image = chart::histogram(
                &title,
                "code activation",
                "fraction of activations",
                &[(&name, &ours), (&pname, &theirs)],
                opts.bins,
            )?;
            (
                image,
                format!(
                    "Code values of {m} test images: {name} (mean |z| {a:.4}) against {pname} (mean |z| {b:.4}, {:.2}x).",
                    a / b.max(1e-12)
                ),
            )
        }
        None => {
            let title = format!("Code activations: {name}");
            let image = chart::histogram(
                &title,
                "code activation",
                "fraction of activations",
                &[(&name, &ours)],
                opts.bins,
            )?;
            (
                image,
                format!(
                    "Code values of {m} test images (mean |z| {:.4}); no vanilla run beside this one to compare with.",
                    mean_abs(&ours)
                ),
            )
        }
    };
    Ok(Picture {
        file: "code-histogram.png".into(),
        title: "Code activations".into(),
        caption,
        image,
    })
}

/// Training and validation loss per epoch (`loss.png`); `Ok(None)` when the
/// run has no completed epoch.
pub fn loss_curves(metrics: &Metrics, kind: ModelKind) -> Result<Option<Picture>> {
    if metrics.epochs.is_empty() {
        return Ok(None);
    }
    let train: Vec<(f64, f64)> = metrics
        .epochs
        .iter()
        .map(|e| (e.epoch as f64, e.train_loss))
        .collect();
    let val: Vec<(f64, f64)> = metrics
        .epochs
        .iter()
        .map(|e| (e.epoch as f64, e.val_loss))
        .collect();
    let y = if kind == ModelKind::Vae {
        "loss per image (BCE sum + β·KL)"
    } else {
        "loss (the training objective)"
    };
    let image = chart::line_chart(
        &format!("{kind}: loss per epoch"),
        "epoch",
        y,
        &[
            Series {
                name: "training",
                points: &train,
            },
            Series {
                name: "validation",
                points: &val,
            },
        ],
        true,
    )?;
    let last = &metrics.epochs[metrics.epochs.len() - 1];
    Ok(Some(Picture {
        file: "loss.png".into(),
        title: "Loss curves".into(),
        caption: format!(
            "Training and validation loss over {} epoch{} (last: {:.4} and {:.4}{}).",
            metrics.epochs.len(),
            if metrics.epochs.len() == 1 { "" } else { "s" },
            last.train_loss,
            last.val_loss,
            metrics
                .best_epoch
                .map(|b| format!("; best validation loss at epoch {b}"))
                .unwrap_or_default()
        ),
        image,
    }))
}
