//! The convolutional autoencoder and its configuration (`ConvConfig`), and the conv
//! encoder/decoder stacks it shares with the conv VAE.

use ae_data::AeRng;
use ae_kernels::nn::{Conv2d, ConvTranspose2d};
use ae_losses::{Reduction, bce_with_logits};
use candle_core::{Module, Tensor};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::autoencoder::{AeOutput, Autoencoder, InputLayout, LossParts, code_to_shape};
use crate::config::{Activation, ImageShape, ModelKind, check_latent, check_sizes};
use crate::error::{Result, invalid};
use crate::view::{ConvStage, ConvView};

/// Checks a conv encoder stack on `input`: depth = `channels.len()` poolings by 2.
pub(crate) fn validate_conv_stack(
    input: &ImageShape,
    channels: &[usize],
    kernel: usize,
) -> Result<()> {
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

/// 2x2 max pooling with stride 2, `[N, C, H, W]` → `[N, C, H/2, W/2]` (H, W even).
///
/// `ae_kernels::max_pool2d`, not `Tensor::max_pool2d`, whose backward pass in
/// candle 0.11 scales the gradient by 1/4 (it multiplies by the window's
/// fraction of maxima instead of dividing by their count). The gradient goes to
/// the maximum of each window (the first one when several are equal, as in
/// PyTorch).
pub(crate) fn max_pool2(x: &Tensor) -> Result<Tensor> {
    Ok(ae_kernels::max_pool2d(x, 2)?)
}

/// `act(layer(x))`, with the ReLU fused into the convolution when it is one.
fn conv_act(
    x: &Tensor,
    act: Activation,
    relu: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    plain: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> Result<Tensor> {
    Ok(match act {
        Activation::Relu => relu(x)?,
        other => other.apply(&plain(x)?)?,
    })
}

/// Conv2d(k, 'same') - activation - MaxPool 2, per entry of `channels`
/// (names `encoder.i`, weight `[c_out, c_in, k, k]`).
pub(crate) struct ConvEncoder {
    convs: Vec<Conv2d>,
    act: Activation,
}

impl ConvEncoder {
    /// `vb` is the `encoder` prefix.
    pub(crate) fn new(
        input: &ImageShape,
        channels: &[usize],
        kernel: usize,
        act: Activation,
        vb: &VarBuilder<'_>,
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: kernel / 2,
            ..Default::default()
        };
        let mut c_in = input.channels;
        let mut convs = Vec::with_capacity(channels.len());
        for (i, &c_out) in channels.iter().enumerate() {
            convs.push(ae_kernels::nn::conv2d(c_in, c_out, kernel, cfg, vb.pp(i))?);
            c_in = c_out;
        }
        Ok(ConvEncoder { convs, act })
    }

    /// `[N, C, H, W]` → `[N, channels.last, H / 2^d, W / 2^d]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for conv in &self.convs {
            h = max_pool2(&conv_act(
                &h,
                self.act,
                |x| conv.forward_relu(x),
                |x| conv.forward(x),
            )?)?;
        }
        Ok(h)
    }
}

/// Per encoder stage in reverse: ConvTranspose2d(k, stride 2, 'same', output
/// padding 1) - activation (names `decoder.j`, weight `[c_in, c_out, k, k]`),
/// then Conv2d(input channels, k, 'same') → logits (name `decoder.{d}`).
pub(crate) struct ConvDecoder {
    deconvs: Vec<ConvTranspose2d>,
    out: Conv2d,
    act: Activation,
}

impl ConvDecoder {
    /// `vb` is the `decoder` prefix. Decoder stage `j` maps `c[d-j]` (or
    /// `c[d-1]` for `j = 0`) to `c[d-1-j]` channels, doubling the size.
    pub(crate) fn new(
        input: &ImageShape,
        channels: &[usize],
        kernel: usize,
        act: Activation,
        vb: &VarBuilder<'_>,
    ) -> Result<Self> {
        let d = channels.len();
        let cfg = ConvTranspose2dConfig {
            padding: kernel / 2,
            output_padding: 1,
            stride: 2,
            dilation: 1,
        };
        let mut deconvs = Vec::with_capacity(d);
        let mut c_in = channels.last().copied().unwrap_or(input.channels);
        for j in 0..d {
            let c_out = channels[d - 1 - j];
            deconvs.push(ae_kernels::nn::conv_transpose2d(
                c_in,
                c_out,
                kernel,
                cfg,
                vb.pp(j),
            )?);
            c_in = c_out;
        }
        let out_cfg = Conv2dConfig {
            padding: kernel / 2,
            ..Default::default()
        };
        let out = ae_kernels::nn::conv2d(c_in, input.channels, kernel, out_cfg, vb.pp(d))?;
        Ok(ConvDecoder { deconvs, out, act })
    }

    /// `[N, channels.last, H / 2^d, W / 2^d]` → logits `[N, C, H, W]`.
    pub(crate) fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let mut h = z.clone();
        for deconv in &self.deconvs {
            h = conv_act(
                &h,
                self.act,
                |x| deconv.forward_relu(x),
                |x| deconv.forward(x),
            )?;
        }
        Ok(self.out.forward(&h)?)
    }
}

/// The optional dense code of the conv autoencoder: `encoder.fc` maps the
/// flattened feature map to `k` units (linear), `decoder.fc` maps them back,
/// followed by the activation.
struct DenseCode {
    enc: Linear,
    dec: Linear,
    /// The feature map `[c, h, w]` that `decoder.fc`'s output is reshaped to.
    map: [usize; 3],
}

/// The convolutional autoencoder (see [`ConvConfig`] for the architecture).
///
/// Inputs are images `[N, C, H, W]`; the code is `[N, channels.last, H/2^d,
/// W/2^d]` (`[N, 32, 7, 7]` on MNIST), or `[N, k]` with a dense code of `k`
/// units. Loss: BCE from logits, per-pixel mean.
pub struct ConvAutoencoder {
    encoder: ConvEncoder,
    decoder: ConvDecoder,
    dense: Option<DenseCode>,
    cfg: ConvConfig,
}

impl ConvAutoencoder {
    /// Validates `cfg` and creates the layers from `vb` (names `encoder.i`,
    /// `decoder.j`, see the crate docs).
    pub fn new(cfg: &ConvConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let encoder = ConvEncoder::new(
            &cfg.input,
            &cfg.channels,
            cfg.kernel,
            cfg.activation,
            &vb.pp("encoder"),
        )?;
        let decoder = ConvDecoder::new(
            &cfg.input,
            &cfg.channels,
            cfg.kernel,
            cfg.activation,
            &vb.pp("decoder"),
        )?;
        let dense = match cfg.dense_code {
            None => None,
            Some(k) => {
                let map = cfg.code_shape();
                let features: usize = map.iter().product();
                Some(DenseCode {
                    enc: candle_nn::linear(features, k, vb.pp("encoder").pp("fc"))?,
                    dec: candle_nn::linear(k, features, vb.pp("decoder").pp("fc"))?,
                    map,
                })
            }
        };
        Ok(ConvAutoencoder {
            encoder,
            decoder,
            dense,
            cfg: cfg.clone(),
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ConvConfig {
        &self.cfg
    }

    /// Logits of a code already in [`Autoencoder::code_shape`] (with the batch).
    fn decode_code(&self, z: &Tensor) -> Result<Tensor> {
        match &self.dense {
            None => self.decoder.forward(z),
            Some(d) => {
                let h = self.cfg.activation.apply(&d.dec.forward(z)?)?;
                let [c, hh, ww] = d.map;
                self.decoder.forward(&h.reshape((h.dim(0)?, c, hh, ww))?)
            }
        }
    }
}

impl Autoencoder for ConvAutoencoder {
    fn kind(&self) -> ModelKind {
        ModelKind::Conv
    }

    fn input_layout(&self) -> InputLayout {
        InputLayout::image(&self.cfg.input)
    }

    fn latent_dim(&self) -> usize {
        self.code_shape().iter().product()
    }

    fn code_shape(&self) -> Vec<usize> {
        match self.cfg.dense_code {
            Some(k) => vec![k],
            None => bottleneck(&self.cfg.input, &self.cfg.channels).to_vec(),
        }
    }

    /// `[N, C, H, W]` → code `[N, c_last, H/2^d, W/2^d]` (or `[N, k]` with a dense code).
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        self.input_layout().check("input", x)?;
        let h = self.encoder.forward(x)?;
        match &self.dense {
            None => Ok(h),
            Some(d) => Ok(d.enc.forward(&h.flatten_from(1)?)?),
        }
    }

    /// Code `[N, c_last, H/2^d, W/2^d]` (or flattened `[N, latent_dim]`) →
    /// logits `[N, C, H, W]`.
    fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let z = code_to_shape(z, &self.code_shape())?;
        self.decode_code(&z)
    }

    /// `[N, C, H, W]` → logits `[N, C, H, W]`, code `[N, c_last, H/2^d, W/2^d]`
    /// (or `[N, k]`); `rng` unused.
    fn forward(&self, x: &Tensor, _rng: Option<&mut AeRng>) -> Result<AeOutput> {
        let code = self.encode(x)?;
        let logits = self.decode_code(&code)?;
        Ok(AeOutput {
            logits,
            code,
            mu: None,
            logvar: None,
        })
    }

    /// BCE from logits against `target` `[N, C, H, W]`, per-pixel mean.
    fn loss(&self, out: &AeOutput, target: &Tensor) -> Result<LossParts> {
        self.input_layout().check("target", target)?;
        let recon = bce_with_logits(&out.logits, target, Reduction::Mean)?;
        Ok(LossParts {
            total: recon.clone(),
            recon,
            kl: None,
            sparsity: None,
        })
    }

    /// The encoder's convolutions and pools, the dense code's two layers if any, the
    /// decoder's transposed convolutions and its output convolution; BCE per-pixel mean (as
    /// [`Autoencoder::loss`]).
    fn conv_view(&self) -> Option<ConvView<'_>> {
        let mut stages = self.encoder.stages()?;
        let mut code = stages.len();
        if let Some(d) = &self.dense {
            code += 1;
            let k = d.enc.weight().dim(0).ok()?;
            stages.push(ConvStage::Linear {
                weight: d.enc.weight(),
                bias: d.enc.bias()?,
                activation: None,
                output: [k, 1, 1],
            });
            stages.push(ConvStage::Linear {
                weight: d.dec.weight(),
                bias: d.dec.bias()?,
                activation: Some(self.cfg.activation),
                output: d.map,
            });
        }
        stages.extend(self.decoder.stages()?);
        let i = &self.cfg.input;
        Some(ConvView {
            input: [i.channels, i.height, i.width],
            stages,
            code,
            reduction: Reduction::Mean,
        })
    }
}

impl ConvEncoder {
    /// Per convolution: the convolution with the activation, then the pool.
    fn stages(&self) -> Option<Vec<ConvStage<'_>>> {
        let mut out = Vec::with_capacity(2 * self.convs.len());
        for conv in &self.convs {
            out.push(ConvStage::Conv {
                weight: conv.weight(),
                bias: conv.bias()?,
                activation: Some(self.act),
            });
            out.push(ConvStage::MaxPool2);
        }
        Some(out)
    }
}

impl ConvDecoder {
    /// The transposed convolutions with the activation, then the linear output convolution.
    fn stages(&self) -> Option<Vec<ConvStage<'_>>> {
        let mut out = Vec::with_capacity(self.deconvs.len() + 1);
        for deconv in &self.deconvs {
            out.push(ConvStage::ConvT {
                weight: deconv.weight(),
                bias: deconv.bias()?,
                activation: Some(self.act),
            });
        }
        out.push(ConvStage::Conv {
            weight: self.out.weight(),
            bias: self.out.bias()?,
            activation: None,
        });
        Some(out)
    }
}

impl Module for ConvAutoencoder {
    /// Reconstruction logits `[N, C, H, W]` of `xs` `[N, C, H, W]`.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let z = self.encode(xs).map_err(candle_core::Error::wrap)?;
        self.decode_code(&z).map_err(candle_core::Error::wrap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;

    #[test]
    fn a_dense_code_has_k_units_named_fc_and_round_trips_shapes() {
        let input = ImageShape::new(1, 12, 12);
        let cfg = ConvConfig::for_input(input)
            .with_channels(vec![4, 2])
            .with_dense_code(Some(5));
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = ConvAutoencoder::new(&cfg, vb).unwrap();
        let mut names: Vec<(String, Vec<usize>)> = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(n, v)| (n.clone(), v.dims().to_vec()))
            .filter(|(n, _)| n.contains("fc"))
            .collect();
        names.sort();
        // The last feature map is 2 x 3 x 3 = 18 values.
        assert_eq!(
            names,
            vec![
                ("decoder.fc.bias".to_string(), vec![18]),
                ("decoder.fc.weight".to_string(), vec![18, 5]),
                ("encoder.fc.bias".to_string(), vec![5]),
                ("encoder.fc.weight".to_string(), vec![5, 18]),
            ]
        );
        assert_eq!(model.latent_dim(), 5);
        assert_eq!(model.code_shape(), vec![5]);
        let x = Tensor::zeros((3, 1, 12, 12), DType::F32, &Device::Cpu).unwrap();
        let out = Autoencoder::forward(&model, &x, None).unwrap();
        assert_eq!(out.code.dims(), &[3, 5]);
        assert_eq!(out.logits.dims(), &[3, 1, 12, 12]);
        let z = model.encode(&x).unwrap();
        assert_eq!(model.decode(&z).unwrap().dims(), &[3, 1, 12, 12]);
    }

    #[test]
    fn without_a_dense_code_the_model_is_unchanged() {
        let cfg = ConvConfig::default();
        assert_eq!(cfg.latent_dim(), 32 * 7 * 7);
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(!json.contains("dense_code"), "{json}");
        let back: ConvConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
        let zero = ConvConfig::default().with_dense_code(Some(0));
        assert!(zero.validate().is_err());
    }

    #[test]
    fn max_pool2_matches_candle_forward_and_has_the_right_gradient() {
        let data: Vec<f64> = (0..2 * 3 * 4 * 6)
            .map(|i| ((i * 37) % 23) as f64 - 11.0)
            .collect();
        let x = Tensor::from_vec(data, (2, 3, 4, 6), &Device::Cpu).unwrap();
        let ours = max_pool2(&x).unwrap();
        let theirs = x.max_pool2d(2).unwrap();
        assert_eq!(ours.dims(), &[2, 3, 2, 3]);
        let diff = (&ours - &theirs).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f64>().unwrap(), 0.0);

        let v = Var::new(&[[[[1f64, 2.], [3., 4.]]]], &Device::Cpu).unwrap();
        let g = max_pool2(v.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = g.get(v.as_tensor()).unwrap().flatten_all().unwrap();
        assert_eq!(g.to_vec1::<f64>().unwrap(), vec![0.0, 0.0, 0.0, 1.0]);
    }
}
