//! A dense or convolutional model described as plain data: its layers' parameters and
//! activations, and the loss its [`loss`](crate::Autoencoder::loss) computes.
//!
//! Code that trains a model outside candle's graph (`ae-train`'s fused CPU step) reads this
//! description instead of asking the model to train itself: a model describes what it is,
//! and knows nothing of the fast paths built on that description. Every number of the loss
//! (its terms and their normalisation) stays defined once, in `ae-losses`; the description
//! only names which loss and which reduction the model's `loss` uses.

use ae_data::AeRng;
use ae_losses::Reduction;
use candle_core::Tensor;
use rand::Rng;
use rand_distr::StandardNormal;

use crate::config::{Activation, ReconLoss, Sparsity};

/// One fully connected layer: `activation(x Wᵀ + b)`.
#[derive(Debug, Clone, Copy)]
pub struct DenseLayer<'a> {
    /// The weight `[out, in]`: the model's own parameter tensor, so its current values.
    pub weight: &'a Tensor,
    /// The bias `[out]`, if the layer has one.
    pub bias: Option<&'a Tensor>,
    /// The activation after the layer (`None`: linear).
    pub activation: Option<Activation>,
}

/// A sparsity penalty on the output of one layer of a chain (the sparse autoencoder's
/// code), as the model's loss adds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodePenalty {
    /// The index of the layer whose output is penalised.
    pub layer: usize,
    /// The penalty and its weight.
    pub sparsity: Sparsity,
    /// How an L1 penalty is reduced (`ae_losses::l1_activity`'s argument); a KL penalty
    /// has its own normalisation (`ae_losses::kl_sparsity`).
    pub reduction: Reduction,
}

/// A chain of fully connected layers from the input to the last layer's output (the
/// vanilla and sparse autoencoders, and a denoising model over either), with the loss
/// `recon.loss(output, target, reduction)` plus the penalty, if any.
#[derive(Debug, Clone)]
pub struct ChainView<'a> {
    /// The layers, input first (the encoder's, then the decoder's).
    pub layers: Vec<DenseLayer<'a>>,
    /// The reconstruction loss of the last layer's output.
    pub recon: ReconLoss,
    /// How the reconstruction loss is reduced.
    pub reduction: Reduction,
    /// The sparsity penalty, if any.
    pub penalty: Option<CodePenalty>,
}

/// The dense VAE (or a denoising model over it): encoder layers, the `mu` and `logvar`
/// heads on the encoder's output, the sample `z = mu + exp(½ logvar)·ε`
/// (`ae_losses::reparameterise`) with `ε` drawn by [`standard_normal`], and decoder layers
/// from `z` to the output; the loss is `ae_losses::vae_loss_with(recon, …, beta)`.
#[derive(Debug, Clone)]
pub struct VaeView<'a> {
    /// The encoder layers, input first.
    pub encoder: Vec<DenseLayer<'a>>,
    /// The posterior mean head.
    pub mu: DenseLayer<'a>,
    /// The posterior log-variance head.
    pub logvar: DenseLayer<'a>,
    /// The decoder layers, code first; the last one gives the output.
    pub decoder: Vec<DenseLayer<'a>>,
    /// The decoder's likelihood (BCE: Bernoulli, MSE: Gaussian).
    pub recon: ReconLoss,
    /// The weight of the KL term.
    pub beta: f64,
}

/// A model made only of fully connected layers, as plain data (see the module's doc).
#[derive(Debug, Clone)]
pub enum DenseView<'a> {
    /// A chain with a reconstruction loss and an optional penalty.
    Chain(ChainView<'a>),
    /// The dense VAE.
    Vae(VaeView<'a>),
}

/// One stage of a convolutional model (see [`ConvView`]).
#[derive(Debug, Clone, Copy)]
pub enum ConvStage<'a> {
    /// A "same" convolution: odd square kernel `k`, stride 1, zero padding `k / 2`; weight
    /// `[out, in, k, k]`, bias `[out]`; then `activation` (`None`: linear).
    Conv {
        /// The weight, the model's own parameter tensor.
        weight: &'a Tensor,
        /// The bias.
        bias: &'a Tensor,
        /// The activation after the convolution.
        activation: Option<Activation>,
    },
    /// A transposed convolution that doubles the height and width: odd square kernel `k`,
    /// stride 2, padding `k / 2`, output padding 1; weight `[in, out, k, k]`, bias `[out]`;
    /// then `activation`.
    ConvT {
        /// The weight, the model's own parameter tensor.
        weight: &'a Tensor,
        /// The bias.
        bias: &'a Tensor,
        /// The activation after the transposed convolution.
        activation: Option<Activation>,
    },
    /// A 2x2 max pool with stride 2 (the gradient to the first maximum of each window).
    MaxPool2,
    /// A fully connected layer on the flattened input (the conv model's dense code): weight
    /// `[out, in]`, bias `[out]`, then `activation`; its `out` values are the next stage's
    /// input of shape `output` `[c, h, w]`.
    Linear {
        /// The weight, the model's own parameter tensor.
        weight: &'a Tensor,
        /// The bias.
        bias: &'a Tensor,
        /// The activation after the layer.
        activation: Option<Activation>,
        /// The shape its output is read as.
        output: [usize; 3],
    },
}

/// A convolutional autoencoder (the conv model, with or without a dense code, and a
/// denoising model over it): from images `[c, h, w]` through `stages` to logits of the same shape, with the
/// loss `ae_losses::bce_with_logits(logits, target, reduction)`.
#[derive(Debug, Clone)]
pub struct ConvView<'a> {
    /// The shape of one input image, `[channels, height, width]`.
    pub input: [usize; 3],
    /// The stages, input first.
    pub stages: Vec<ConvStage<'a>>,
    /// How many stages lead to the code: the output of stage `code - 1` is what
    /// [`Autoencoder::encode`](crate::Autoencoder::encode) returns (flattened).
    pub code: usize,
    /// How the BCE loss is reduced.
    pub reduction: Reduction,
}

/// `count` standard normal values drawn from `rng`, one `f32` each: the VAE's `ε`, in the
/// order its forward pass draws them (row-major `[N, latent]`).
pub fn standard_normal(count: usize, rng: &mut AeRng) -> Vec<f32> {
    (0..count)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}
