//! Model configurations: plain serde structs with `Default`, `validate()` and builder setters.
//!
//! The image size and channel count of every model come from its `input`
//! ([`ImageShape`], set from the data), never from constants. Every config is
//! validated by [`build`](crate::build) before a single tensor is created, so a
//! bad config is a [`ModelError::InvalidConfig`](crate::ModelError::InvalidConfig)
//! naming the offending sizes, never a shape panic inside candle.
//!
//! The dense models (vanilla, sparse, a denoising model with a dense base) and
//! the VAE record their output and reconstruction loss in `loss`
//! ([`ReconLoss`]): absent or `"bce"` is the sigmoid output trained with BCE
//! (images; what every config written before the field had), `"mse"` a linear
//! (identity) output trained with MSE (standardised tables: the plain models
//! report the mean squared error per value; the VAE's Gaussian decoder uses
//! `½·SSE` per sample + β·KL, see `ae_losses::vae_loss_with`). Absent means
//! "the data's default": training resolves it (MSE for a standardised table)
//! and records the choice in the run's `config.json`. The conv model has the
//! sigmoid output only.

use std::fmt;
use std::str::FromStr;

use ae_data::Noise;
pub use ae_losses::ReconLoss;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// The shape of one input image, `channels x height x width`.
///
/// `Default` is MNIST: 1x28x28.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageShape {
    /// Number of channels (1 for grey-scale).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl Default for ImageShape {
    fn default() -> Self {
        ImageShape::new(1, 28, 28)
    }
}

impl ImageShape {
    /// A `channels x height x width` image shape.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        ImageShape {
            channels,
            height,
            width,
        }
    }

    /// Number of values per image, `channels * height * width` (saturating).
    pub fn dim(&self) -> usize {
        self.channels
            .saturating_mul(self.height)
            .saturating_mul(self.width)
    }

    /// Checks that no size is zero and that an image holds at most
    /// [`MAX_IMAGE_VALUES`] values.
    pub fn validate(&self) -> Result<()> {
        if self.channels == 0 || self.height == 0 || self.width == 0 {
            return invalid(format!(
                "input image {self} has a zero size (channels, height and width must be >= 1)"
            ));
        }
        if self.dim() > MAX_IMAGE_VALUES {
            return invalid(format!(
                "input image {self} has {} values, more than the {MAX_IMAGE_VALUES} an image may have",
                self.dim()
            ));
        }
        Ok(())
    }
}

impl fmt::Display for ImageShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// An element-wise activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// `max(x, 0)`.
    #[default]
    Relu,
    /// `1 / (1 + e^{-x})`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// GELU with the exact erf form (the PyTorch and Keras default).
    Gelu,
    /// ELU with α = 1.
    Elu,
    /// Leaky ReLU with negative slope 0.01 (the PyTorch default).
    LeakyRelu,
}

impl Activation {
    /// Applies the activation element-wise; the output has the input's shape.
    pub fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Relu => ae_kernels::relu(x),
            Activation::Sigmoid => ae_kernels::sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::Gelu => x.gelu_erf(),
            Activation::Elu => x.elu(1.0),
            Activation::LeakyRelu => candle_nn::ops::leaky_relu(x, 0.01),
        }
    }
}

/// The five kinds of model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Dense (fully connected) autoencoder.
    Vanilla,
    /// Dense autoencoder with a sparsity penalty on the code.
    Sparse,
    /// Any base autoencoder trained on corrupted inputs against clean targets.
    Denoising,
    /// Convolutional autoencoder.
    Conv,
    /// Variational autoencoder.
    Vae,
}

impl ModelKind {
    /// All kinds, in declaration order.
    pub const ALL: [ModelKind; 5] = [
        ModelKind::Vanilla,
        ModelKind::Sparse,
        ModelKind::Denoising,
        ModelKind::Conv,
        ModelKind::Vae,
    ];

    /// The kebab-case name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Vanilla => "vanilla",
            ModelKind::Sparse => "sparse",
            ModelKind::Denoising => "denoising",
            ModelKind::Conv => "conv",
            ModelKind::Vae => "vae",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = crate::ModelError;

    /// Parses `vanilla`, `sparse`, `denoising`, `conv`, `vae` (case-insensitive;
    /// `dense`, `convolutional` and `variational` are accepted as aliases).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "vanilla" | "dense" => Ok(ModelKind::Vanilla),
            "sparse" => Ok(ModelKind::Sparse),
            "denoising" => Ok(ModelKind::Denoising),
            "conv" | "convolutional" => Ok(ModelKind::Conv),
            "vae" | "variational" => Ok(ModelKind::Vae),
            other => invalid(format!(
                "unknown model kind {other:?} (expected vanilla, sparse, denoising, conv or vae)"
            )),
        }
    }
}

/// The most values one image may have (2^28: e.g. 3 x 8192 x 8192).
pub const MAX_IMAGE_VALUES: usize = 1 << 28;

/// The largest layer width, channel count or code size (2^24), whatever the
/// memory limit: it keeps every size product far from overflowing.
pub const MAX_LAYER_SIZE: usize = 1 << 24;

fn check_sizes(what: &str, sizes: &[usize], allow_empty: bool) -> Result<()> {
    if sizes.is_empty() && !allow_empty {
        return invalid(format!("{what} must not be empty"));
    }
    if let Some(i) = sizes.iter().position(|&s| s == 0) {
        return invalid(format!("{what} {sizes:?} has a zero size at position {i}"));
    }
    if sizes.len() > 64 {
        return invalid(format!("{what} has {} layers, at most 64", sizes.len()));
    }
    if let Some(&s) = sizes.iter().find(|&&s| s > MAX_LAYER_SIZE) {
        return invalid(format!(
            "{what}: size {s} is larger than any layer may be ({MAX_LAYER_SIZE})"
        ));
    }
    Ok(())
}

fn check_latent(latent_dim: usize) -> Result<()> {
    if latent_dim == 0 {
        return invalid("latent_dim must be >= 1, got 0");
    }
    if latent_dim > MAX_LAYER_SIZE {
        return invalid(format!(
            "latent_dim {latent_dim} is larger than any layer may be ({MAX_LAYER_SIZE})"
        ));
    }
    Ok(())
}

/// The dense (vanilla) autoencoder: `input - hidden... - latent - hidden reversed... - input`.
///
/// `Default` is the classic MNIST model 784-128-64-32-64-128-784 with ReLU
/// everywhere (code included, like the Keras seed model) and a sigmoid output
/// (the model returns logits; the sigmoid is in the loss and in
/// `reconstruct`): 222,384 parameters. With `loss: "mse"` the output is
/// linear and the loss is the mean squared error (tables).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DenseConfig {
    /// Input image shape (flattened to `channels*height*width`).
    pub input: ImageShape,
    /// Encoder hidden layer sizes; the decoder mirrors them. May be empty (a
    /// single-layer autoencoder).
    pub hidden: Vec<usize>,
    /// Size of the code.
    pub latent_dim: usize,
    /// Activation of the hidden layers.
    pub activation: Activation,
    /// Activation of the code layer.
    pub code_activation: Activation,
    /// Output and reconstruction loss: `None` (absent in JSON) is BCE with a
    /// sigmoid output unless training resolves it from the data; `Some(Mse)`
    /// is a linear output trained with MSE (per-value mean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<ReconLoss>,
}

impl Default for DenseConfig {
    fn default() -> Self {
        DenseConfig {
            input: ImageShape::default(),
            hidden: vec![128, 64],
            latent_dim: 32,
            activation: Activation::Relu,
            code_activation: Activation::Relu,
            loss: None,
        }
    }
}

impl DenseConfig {
    /// The default architecture for images of shape `input`.
    pub fn for_input(input: ImageShape) -> Self {
        DenseConfig {
            input,
            ..DenseConfig::default()
        }
    }

    /// Sets the input shape.
    pub fn with_input(mut self, input: ImageShape) -> Self {
        self.input = input;
        self
    }

    /// Sets the encoder hidden sizes.
    pub fn with_hidden(mut self, hidden: Vec<usize>) -> Self {
        self.hidden = hidden;
        self
    }

    /// Sets the code size.
    pub fn with_latent_dim(mut self, latent_dim: usize) -> Self {
        self.latent_dim = latent_dim;
        self
    }

    /// Sets the hidden activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Sets the code activation.
    pub fn with_code_activation(mut self, activation: Activation) -> Self {
        self.code_activation = activation;
        self
    }

    /// Sets the output and reconstruction loss.
    pub fn with_loss(mut self, loss: ReconLoss) -> Self {
        self.loss = Some(loss);
        self
    }

    /// The reconstruction loss the model trains with (BCE when unset).
    pub fn recon_loss(&self) -> ReconLoss {
        self.loss.unwrap_or_default()
    }

    /// Checks sizes: non-zero input, hidden sizes and latent dim.
    pub fn validate(&self) -> Result<()> {
        self.input.validate()?;
        check_sizes("dense hidden sizes", &self.hidden, true)?;
        check_latent(self.latent_dim)
    }
}

/// The sparsity penalty of a sparse autoencoder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Sparsity {
    /// `λ · Σ_units |code|`, averaged over the batch (Keras's
    /// `activity_regularizer=l1(λ)`, as in the Keras blog's sparse autoencoder).
    L1 {
        /// Weight λ (finite, >= 0).
        lambda: f64,
    },
    /// `β · Σ_j KL(ρ ‖ ρ̂_j)`, ρ̂_j the batch-mean activation of unit j (Ng's
    /// notes). Needs activations in (0, 1): the code activation must be sigmoid.
    Kl {
        /// Target mean activation ρ, in (0, 1).
        rho: f64,
        /// Weight β (finite, >= 0).
        beta: f64,
    },
}

impl Default for Sparsity {
    fn default() -> Self {
        Sparsity::L1 { lambda: 1e-4 }
    }
}

impl Sparsity {
    /// The KL penalty with Ng's usual values, ρ = 0.05 and β = 3.
    pub fn kl_default() -> Self {
        Sparsity::Kl {
            rho: 0.05,
            beta: 3.0,
        }
    }

    /// Checks the weights: finite and >= 0, ρ in (0, 1).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Sparsity::L1 { lambda } if lambda.is_finite() && lambda >= 0.0 => Ok(()),
            Sparsity::L1 { lambda } => invalid(format!(
                "sparsity l1 lambda must be finite and >= 0, got {lambda}"
            )),
            Sparsity::Kl { rho, .. } if !(rho > 0.0 && rho < 1.0) => {
                invalid(format!("sparsity kl rho must be in (0, 1), got {rho}"))
            }
            Sparsity::Kl { beta, .. } if !(beta.is_finite() && beta >= 0.0) => invalid(format!(
                "sparsity kl beta must be finite and >= 0, got {beta}"
            )),
            Sparsity::Kl { .. } => Ok(()),
        }
    }
}

/// The sparse autoencoder: a [`DenseConfig`] plus a penalty on the code.
///
/// Loss: `BCE(σ(logits), x)` (per-pixel mean; or MSE with `dense.loss: "mse"`) `+ penalty`. `Default` is the
/// default dense model with an L1 penalty λ = 1e-4. With
/// [`Sparsity::Kl`] the dense code activation must be
/// [`Activation::Sigmoid`] (ρ̂ must be in (0, 1));
/// [`with_penalty`](SparseConfig::with_penalty) sets it for you.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SparseConfig {
    /// The dense architecture.
    pub dense: DenseConfig,
    /// The sparsity penalty.
    pub penalty: Sparsity,
}

impl SparseConfig {
    /// The default sparse model for images of shape `input`.
    pub fn for_input(input: ImageShape) -> Self {
        SparseConfig {
            dense: DenseConfig::for_input(input),
            penalty: Sparsity::default(),
        }
    }

    /// Sets the dense architecture.
    pub fn with_dense(mut self, dense: DenseConfig) -> Self {
        self.dense = dense;
        self
    }

    /// Sets the penalty; a KL penalty also sets the code activation to sigmoid.
    pub fn with_penalty(mut self, penalty: Sparsity) -> Self {
        if matches!(penalty, Sparsity::Kl { .. }) {
            self.dense.code_activation = Activation::Sigmoid;
        }
        self.penalty = penalty;
        self
    }

    /// Checks the dense part, the penalty, and the sigmoid code for KL.
    pub fn validate(&self) -> Result<()> {
        self.dense.validate()?;
        self.penalty.validate()?;
        if matches!(self.penalty, Sparsity::Kl { .. })
            && self.dense.code_activation != Activation::Sigmoid
        {
            return invalid(format!(
                "the kl sparsity penalty needs code activations in (0, 1): set code_activation \
                 to sigmoid (it is {:?})",
                self.dense.code_activation
            ));
        }
        Ok(())
    }
}

/// Checks a conv encoder stack on `input`: depth = `channels.len()` poolings by 2.
fn validate_conv_stack(input: &ImageShape, channels: &[usize], kernel: usize) -> Result<()> {
    input.validate()?;
    check_sizes("conv channels", channels, false)?;
    if kernel == 0 || kernel.is_multiple_of(2) {
        return invalid(format!(
            "conv kernel must be odd and >= 1 (for 'same' padding), got {kernel}"
        ));
    }
    let depth = channels.len();
    let factor = 1usize.checked_shl(depth as u32).unwrap_or(0);
    let (h, w) = (input.height, input.width);
    if factor == 0 || h % factor != 0 || w % factor != 0 {
        return invalid(format!(
            "a {h}x{w} image cannot be max-pooled {depth} times: height and width must be \
             divisible by 2^{depth} = {factor}"
        ));
    }
    let (fh, fw) = (h / factor, w / factor);
    if kernel > fh || kernel > fw {
        let poolings = if depth == 1 { "pooling" } else { "poolings" };
        return invalid(format!(
            "kernel {kernel}x{kernel} is larger than the {fh}x{fw} feature map after {depth} \
             {poolings} of a {h}x{w} image"
        ));
    }
    Ok(())
}

/// The convolutional autoencoder (the keras.io / PyTorch peer).
///
/// Encoder, per entry `c` of `channels`: Conv2d(c, k×k, 'same') - activation -
/// MaxPool 2. Decoder, per encoder stage in reverse: ConvTranspose2d(k×k,
/// stride 2, 'same', output padding 1) - activation, with the channel count of
/// that stage; then Conv2d(input channels, k×k, 'same') → logits.
/// `Default` (MNIST): Conv(32,3x3)-ReLU-Pool-Conv(32,3x3)-ReLU-Pool,
/// ConvT(32,3x3,s2)x2, Conv(1,3x3); code `[N, 32, 7, 7]`.
///
/// With `dense_code: Some(k)` the last feature map is flattened and mapped
/// linearly to a code of `k` units (`encoder.fc`), and the decoder starts with
/// a dense layer back to the feature map (`decoder.fc`) and the activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConvConfig {
    /// Input image shape.
    pub input: ImageShape,
    /// Output channels of each encoder stage (one 2x pooling per entry).
    pub channels: Vec<usize>,
    /// Square kernel size (odd).
    pub kernel: usize,
    /// Activation after every conv except the last.
    pub activation: Activation,
    /// Size of a dense (linear) code after the conv encoder; `None` (the
    /// default): the code is the last feature map. Left out of the JSON when
    /// `None`, so the default model's `config.json` is unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense_code: Option<usize>,
}

impl Default for ConvConfig {
    fn default() -> Self {
        ConvConfig {
            input: ImageShape::default(),
            channels: vec![32, 32],
            kernel: 3,
            activation: Activation::Relu,
            dense_code: None,
        }
    }
}

impl ConvConfig {
    /// The default architecture for images of shape `input`.
    pub fn for_input(input: ImageShape) -> Self {
        ConvConfig {
            input,
            ..ConvConfig::default()
        }
    }

    /// Sets the input shape.
    pub fn with_input(mut self, input: ImageShape) -> Self {
        self.input = input;
        self
    }

    /// Sets the encoder channels.
    pub fn with_channels(mut self, channels: Vec<usize>) -> Self {
        self.channels = channels;
        self
    }

    /// Sets the kernel size.
    pub fn with_kernel(mut self, kernel: usize) -> Self {
        self.kernel = kernel;
        self
    }

    /// Sets the activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Sets the size of the dense code (`None`: the feature map is the code).
    pub fn with_dense_code(mut self, dense_code: Option<usize>) -> Self {
        self.dense_code = dense_code;
        self
    }

    /// The shape of the last feature map, `[channels.last, height / 2^depth,
    /// width / 2^depth]` (meaningful once validated). Without a dense code it
    /// is the code's shape.
    pub fn code_shape(&self) -> [usize; 3] {
        bottleneck(&self.input, &self.channels)
    }

    /// The size of the flattened code: `dense_code`, or the feature map's size.
    pub fn latent_dim(&self) -> usize {
        self.dense_code
            .unwrap_or_else(|| self.code_shape().iter().product())
    }

    /// Checks: input non-zero, channels non-empty and non-zero, kernel odd,
    /// image divisible by 2^depth, kernel no larger than the smallest feature
    /// map, a dense code of at least one unit.
    pub fn validate(&self) -> Result<()> {
        validate_conv_stack(&self.input, &self.channels, self.kernel)?;
        match self.dense_code {
            Some(k) => check_latent(k),
            None => Ok(()),
        }
    }
}

/// `[channels.last, h / 2^depth, w / 2^depth]` of a conv stack.
pub(crate) fn bottleneck(input: &ImageShape, channels: &[usize]) -> [usize; 3] {
    let factor = 1usize
        .checked_shl(channels.len() as u32)
        .unwrap_or(usize::MAX);
    [
        channels.last().copied().unwrap_or(0),
        input.height / factor,
        input.width / factor,
    ]
}

/// The denoising autoencoder: any base model trained on corrupted inputs
/// against the clean targets.
///
/// The trainer corrupts each input batch with `noise` (the model exposes it
/// through [`Autoencoder::noise`](crate::Autoencoder::noise)); the loss is the
/// base model's loss against the clean batch. The base may be vanilla, sparse,
/// conv or VAE, not denoising itself. Tensor names are the base model's.
/// `Default`: the default conv model with Gaussian noise of std 0.4 (the
/// keras.io denoising example).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DenoisingConfig {
    /// The model that is trained.
    pub base: Box<ModelConfig>,
    /// The corruption of the inputs.
    pub noise: Noise,
}

impl Default for DenoisingConfig {
    fn default() -> Self {
        DenoisingConfig::for_input(ImageShape::default())
    }
}

impl DenoisingConfig {
    /// The default (conv base, Gaussian std 0.4) for images of shape `input`.
    pub fn for_input(input: ImageShape) -> Self {
        DenoisingConfig {
            base: Box::new(ModelConfig::Conv(ConvConfig::for_input(input))),
            noise: Noise::Gaussian { std: 0.4 },
        }
    }

    /// Sets the base model.
    pub fn with_base(mut self, base: ModelConfig) -> Self {
        self.base = Box::new(base);
        self
    }

    /// Sets the noise.
    pub fn with_noise(mut self, noise: Noise) -> Self {
        self.noise = noise;
        self
    }

    /// Checks the noise and the base (which must not be denoising itself).
    pub fn validate(&self) -> Result<()> {
        if let Err(e) = self.noise.validate() {
            return invalid(format!("denoising noise: {e}"));
        }
        if self.base.kind() == ModelKind::Denoising {
            return invalid("the base of a denoising model cannot itself be denoising");
        }
        self.base.validate()
    }
}

/// The architecture of a VAE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum VaeArch {
    /// Dense: `input - hidden... - (mu, logvar)`, decoder `latent - hidden
    /// reversed... - input` (PyTorch's VAE example with `hidden = [400]`).
    Dense {
        /// Encoder hidden sizes (at least one); the decoder mirrors them.
        hidden: Vec<usize>,
    },
    /// Convolutional: the conv encoder of [`ConvConfig`] → flatten → (mu,
    /// logvar); decoder linear → reshape → conv-transpose stack → final conv.
    Conv {
        /// Output channels of each encoder stage (one 2x pooling per entry).
        channels: Vec<usize>,
        /// Square kernel size (odd).
        kernel: usize,
    },
}

impl Default for VaeArch {
    fn default() -> Self {
        VaeArch::Dense { hidden: vec![400] }
    }
}

impl VaeArch {
    /// The default conv architecture: channels `[32, 64]`, kernel 3.
    pub fn conv_default() -> Self {
        VaeArch::Conv {
            channels: vec![32, 64],
            kernel: 3,
        }
    }
}

/// The variational autoencoder.
///
/// Loss: `BCE(σ(logits), x) + β · KL(N(μ, σ²) ‖ N(0, I))`, both summed per
/// image and averaged over the batch (PyTorch's VAE example; β = 1 is the
/// plain VAE). With `loss: "mse"` (tables) the reconstruction term is
/// `½·Σ(out - x)²` per sample, the negative log-likelihood of a unit-variance
/// Gaussian decoder without its constant `(D/2)·ln 2π`. `Default`: PyTorch's example, 784-400-20 (fc1 784→400 ReLU,
/// mu and logvar 400→20, fc3 20→400 ReLU, fc4 400→784).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaeConfig {
    /// Input image shape.
    pub input: ImageShape,
    /// Dense or convolutional architecture.
    pub arch: VaeArch,
    /// Size of the latent space.
    pub latent_dim: usize,
    /// Weight of the KL term (finite, >= 0).
    pub beta: f64,
    /// Activation of the hidden layers.
    pub activation: Activation,
    /// The decoder's likelihood: `None` (absent in JSON) is a Bernoulli decoder
    /// (sigmoid output, BCE summed per sample) unless training resolves it
    /// from the data; `Some(Mse)` is a Gaussian decoder of unit variance
    /// (linear output), whose reconstruction term is `½·SSE` per sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<ReconLoss>,
}

impl Default for VaeConfig {
    fn default() -> Self {
        VaeConfig {
            input: ImageShape::default(),
            arch: VaeArch::default(),
            latent_dim: 20,
            beta: 1.0,
            activation: Activation::Relu,
            loss: None,
        }
    }
}

impl VaeConfig {
    /// The default (dense) VAE for images of shape `input`.
    pub fn for_input(input: ImageShape) -> Self {
        VaeConfig {
            input,
            ..VaeConfig::default()
        }
    }

    /// Sets the input shape.
    pub fn with_input(mut self, input: ImageShape) -> Self {
        self.input = input;
        self
    }

    /// Sets the architecture.
    pub fn with_arch(mut self, arch: VaeArch) -> Self {
        self.arch = arch;
        self
    }

    /// Sets the latent size.
    pub fn with_latent_dim(mut self, latent_dim: usize) -> Self {
        self.latent_dim = latent_dim;
        self
    }

    /// Sets β.
    pub fn with_beta(mut self, beta: f64) -> Self {
        self.beta = beta;
        self
    }

    /// Sets the hidden activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Sets the decoder's likelihood (output and reconstruction loss).
    pub fn with_loss(mut self, loss: ReconLoss) -> Self {
        self.loss = Some(loss);
        self
    }

    /// The reconstruction loss the model trains with (BCE when unset).
    pub fn recon_loss(&self) -> ReconLoss {
        self.loss.unwrap_or_default()
    }

    /// Checks: latent >= 1, β finite and >= 0, a non-empty dense hidden list,
    /// or a valid conv stack (see [`ConvConfig::validate`]).
    pub fn validate(&self) -> Result<()> {
        self.input.validate()?;
        check_latent(self.latent_dim)?;
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return invalid(format!(
                "vae beta must be finite and >= 0, got {}",
                self.beta
            ));
        }
        match &self.arch {
            VaeArch::Dense { hidden } => check_sizes("vae dense hidden sizes", hidden, false),
            VaeArch::Conv { channels, kernel } => {
                validate_conv_stack(&self.input, channels, *kernel)
            }
        }
    }
}

/// The configuration of any model, tagged by `kind` in JSON:
/// `{"kind": "conv", "input": {...}, "channels": [32, 32], ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelConfig {
    /// Dense autoencoder.
    Vanilla(DenseConfig),
    /// Sparse dense autoencoder.
    Sparse(SparseConfig),
    /// Denoising autoencoder around a base model.
    Denoising(DenoisingConfig),
    /// Convolutional autoencoder.
    Conv(ConvConfig),
    /// Variational autoencoder.
    Vae(VaeConfig),
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Vanilla(DenseConfig::default())
    }
}

impl ModelConfig {
    /// The default configuration of `kind` for images of shape `input`.
    pub fn default_for(kind: ModelKind, input: ImageShape) -> Self {
        match kind {
            ModelKind::Vanilla => ModelConfig::Vanilla(DenseConfig::for_input(input)),
            ModelKind::Sparse => ModelConfig::Sparse(SparseConfig::for_input(input)),
            ModelKind::Denoising => ModelConfig::Denoising(DenoisingConfig::for_input(input)),
            ModelKind::Conv => ModelConfig::Conv(ConvConfig::for_input(input)),
            ModelKind::Vae => ModelConfig::Vae(VaeConfig::for_input(input)),
        }
    }

    /// Which kind of model this builds.
    pub fn kind(&self) -> ModelKind {
        match self {
            ModelConfig::Vanilla(_) => ModelKind::Vanilla,
            ModelConfig::Sparse(_) => ModelKind::Sparse,
            ModelConfig::Denoising(_) => ModelKind::Denoising,
            ModelConfig::Conv(_) => ModelKind::Conv,
            ModelConfig::Vae(_) => ModelKind::Vae,
        }
    }

    /// The input image shape.
    pub fn input(&self) -> ImageShape {
        match self {
            ModelConfig::Vanilla(c) => c.input,
            ModelConfig::Sparse(c) => c.dense.input,
            ModelConfig::Denoising(c) => c.base.input(),
            ModelConfig::Conv(c) => c.input,
            ModelConfig::Vae(c) => c.input,
        }
    }

    /// Sets the input image shape (of the base, for denoising).
    pub fn with_input(self, input: ImageShape) -> Self {
        match self {
            ModelConfig::Vanilla(c) => ModelConfig::Vanilla(c.with_input(input)),
            ModelConfig::Sparse(mut c) => {
                c.dense.input = input;
                ModelConfig::Sparse(c)
            }
            ModelConfig::Denoising(mut c) => {
                c.base = Box::new(c.base.with_input(input));
                ModelConfig::Denoising(c)
            }
            ModelConfig::Conv(c) => ModelConfig::Conv(c.with_input(input)),
            ModelConfig::Vae(c) => ModelConfig::Vae(c.with_input(input)),
        }
    }

    /// The size of the flattened code (for conv: the dense code, or
    /// `channels.last * h/2^d * w/2^d`).
    pub fn latent_dim(&self) -> usize {
        match self {
            ModelConfig::Vanilla(c) => c.latent_dim,
            ModelConfig::Sparse(c) => c.dense.latent_dim,
            ModelConfig::Denoising(c) => c.base.latent_dim(),
            ModelConfig::Conv(c) => c.latent_dim(),
            ModelConfig::Vae(c) => c.latent_dim,
        }
    }

    /// Sets the size of the flattened code. A conv model with a dense code
    /// gets a dense code of `k`; without one the code is `[c, h, w]` with
    /// `h, w` fixed by the image and depth, so `k` must be a multiple of `h*w`
    /// and sets the last encoder channel count to `k / (h*w)`.
    pub fn with_latent_dim(self, k: usize) -> Result<Self> {
        check_latent(k)?;
        Ok(match self {
            ModelConfig::Vanilla(c) => ModelConfig::Vanilla(c.with_latent_dim(k)),
            ModelConfig::Sparse(mut c) => {
                c.dense.latent_dim = k;
                ModelConfig::Sparse(c)
            }
            ModelConfig::Denoising(mut c) => {
                c.base = Box::new(c.base.with_latent_dim(k)?);
                ModelConfig::Denoising(c)
            }
            ModelConfig::Conv(mut c) if c.dense_code.is_some() => {
                c.dense_code = Some(k);
                ModelConfig::Conv(c)
            }
            ModelConfig::Conv(mut c) => {
                c.validate()?;
                let [_, h, w] = c.code_shape();
                if !k.is_multiple_of(h * w) {
                    return invalid(format!(
                        "the conv code is C x {h} x {w}: latent dim {k} is not a multiple of {}",
                        h * w
                    ));
                }
                if let Some(last) = c.channels.last_mut() {
                    *last = k / (h * w);
                }
                ModelConfig::Conv(c)
            }
            ModelConfig::Vae(c) => ModelConfig::Vae(c.with_latent_dim(k)),
        })
    }

    /// The recorded output and reconstruction loss (of the base, for
    /// denoising); `None` when unset, and always for the conv model.
    pub fn loss(&self) -> Option<ReconLoss> {
        match self {
            ModelConfig::Vanilla(c) => c.loss,
            ModelConfig::Sparse(c) => c.dense.loss,
            ModelConfig::Denoising(c) => c.base.loss(),
            ModelConfig::Conv(_) => None,
            ModelConfig::Vae(c) => c.loss,
        }
    }

    /// The reconstruction loss the model trains with (BCE when unset).
    pub fn recon_loss(&self) -> ReconLoss {
        self.loss().unwrap_or_default()
    }

    /// Records the output and reconstruction loss (of the base, for
    /// denoising). The conv model has a sigmoid output only: MSE is an error.
    pub fn set_loss(&mut self, loss: ReconLoss) -> Result<()> {
        match self {
            ModelConfig::Vanilla(c) => c.loss = Some(loss),
            ModelConfig::Sparse(c) => c.dense.loss = Some(loss),
            ModelConfig::Denoising(c) => c.base.set_loss(loss)?,
            ModelConfig::Conv(_) if loss == ReconLoss::Bce => {}
            ModelConfig::Conv(_) => {
                return invalid(
                    "the conv model has a sigmoid output trained with bce only; mse (a linear \
                     output) is for the dense models and the vae",
                );
            }
            ModelConfig::Vae(c) => c.loss = Some(loss),
        }
        Ok(())
    }

    /// Checks the configuration (see each config's `validate`), then its size:
    /// the estimated bytes of the model and one image's activations must stay
    /// within [`crate::max_model_bytes`] ([`ModelConfig::check_footprint`]).
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Vanilla(c) => c.validate(),
            ModelConfig::Sparse(c) => c.validate(),
            ModelConfig::Denoising(c) => c.validate(),
            ModelConfig::Conv(c) => c.validate(),
            ModelConfig::Vae(c) => c.validate(),
        }?;
        self.check_footprint(1)
    }
}
