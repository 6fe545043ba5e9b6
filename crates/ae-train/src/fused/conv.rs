//! The fused CPU step of the convolutional autoencoder (and a denoising model over it): the
//! model's [`ConvView`] as `ae_kernels::conv_chain` stages, trained image by image outside
//! candle's graph.
//!
//! The loss is the model's: BCE from logits with the view's reduction, the per-element term
//! `ae_kernels`' (the one behind `ae_losses::bce_with_logits`), normalised by
//! [`Reduction::scale`](ae_losses::Reduction::scale), the one definition of each reduction.
//! `tests/fused.rs` checks the loss and every gradient against forward + `loss()` + candle's
//! backward.

use ae_kernels::conv_chain::{self, Stage};
use ae_models::{Activation, ConvStage, ConvView};
use candle_core::Tensor;

use super::{StepOutput, fusable};
use crate::Result;

/// The stages of `view`, or `None` when the chain cannot compute one of them (an activation
/// other than ReLU, parameters that are not `f32` on the CPU with the CPU kernels on).
pub fn conv_stages(view: &ConvView<'_>) -> Result<Option<Vec<Stage>>> {
    let mut out = Vec::with_capacity(view.stages.len());
    for s in &view.stages {
        let stage = match *s {
            ConvStage::MaxPool2 => Stage::pool2(),
            ConvStage::Conv {
                weight,
                bias,
                activation,
            } => match layer_relu(weight, bias, activation) {
                Some(relu) => Stage::conv(weight, bias, relu)?,
                None => return Ok(None),
            },
            ConvStage::ConvT {
                weight,
                bias,
                activation,
            } => match layer_relu(weight, bias, activation) {
                Some(relu) => Stage::conv_t(weight, bias, relu)?,
                None => return Ok(None),
            },
            ConvStage::Linear {
                weight,
                bias,
                activation,
                output,
            } => match layer_relu(weight, bias, activation) {
                Some(relu) => Stage::linear(weight, bias, relu, output)?,
                None => return Ok(None),
            },
        };
        out.push(stage);
    }
    Ok(Some(out))
}

/// Whether a layer with these parameters and `activation` has a ReLU (`Some(true)`) or none
/// (`Some(false)`); `None` when the chain cannot compute it (another activation, parameters
/// that are not `f32` on the CPU with the CPU kernels on).
fn layer_relu(weight: &Tensor, bias: &Tensor, activation: Option<Activation>) -> Option<bool> {
    if !fusable(weight) || !fusable(bias) {
        return None;
    }
    match activation {
        None => Some(false),
        Some(Activation::Relu) => Some(true),
        Some(_) => None,
    }
}

/// One fused step of the conv model `view` on `n` images `x` (inputs) against `y`
/// (targets), both `[n, c, h, w]` row-major; `None` when [`conv_stages`] has none.
pub fn conv_step(
    view: &ConvView<'_>,
    x: &[f32],
    y: &[f32],
    n: usize,
) -> Result<Option<StepOutput>> {
    let Some(stages) = conv_stages(view)? else {
        return Ok(None);
    };
    let [c, h, w] = view.input;
    let scale = view.reduction.scale(&[n, c, h, w])?;
    let (sum, grads) = conv_chain::bce_step(&stages, view.input, x, y, n, scale as f32)?;
    let total = sum * scale;
    Ok(Some(StepOutput {
        total,
        recon: total,
        kl: None,
        sparsity: None,
        grads,
    }))
}

/// What [`conv_forward`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvOutput {
    /// The logits, `[n, c, h, w]` row-major.
    Logits,
    /// The code, `[n, code]` row-major (what `Autoencoder::encode` returns, flattened).
    Code,
}

/// The conv chain's forward pass of the model `view` on `n` images `x` `[n, c, h, w]`
/// row-major, image at a time (no gradient): the logits or the code; `None` when
/// [`conv_stages`] has no chain for it.
pub fn conv_forward(
    view: &ConvView<'_>,
    x: &[f32],
    n: usize,
    what: ConvOutput,
) -> Result<Option<Vec<f32>>> {
    let Some(stages) = conv_stages(view)? else {
        return Ok(None);
    };
    let upto = match what {
        ConvOutput::Logits => stages.len(),
        ConvOutput::Code => view.code,
    };
    Ok(Some(conv_chain::forward(&stages, view.input, x, n, upto)?))
}
