//! Layers mirroring `candle_nn::{Linear, Conv2d, ConvTranspose2d}` on top of the fast
//! kernels.
//!
//! Constructors take the same arguments, create the same variables (`weight`, `bias`) with
//! the same shapes and initialisation as their `candle_nn` namesakes (they call them), so
//! checkpoints are interchangeable. Configurations the kernels do not cover (dilation != 1,
//! groups != 1, cuDNN algorithm hints on CUDA) use candle's own ops.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, VarBuilder};

/// 2D convolution layer, a drop-in for `candle_nn::Conv2d`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: Conv2dConfig,
}

impl Conv2d {
    /// A layer from a weight `[out, in / groups, kh, kw]` and an optional bias `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>, config: Conv2dConfig) -> Self {
        Self {
            weight,
            bias,
            config,
        }
    }

    /// The layer's configuration.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }

    /// The weight, `[out, in / groups, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Conv2d {
    /// `relu(self.forward(x))`, fused into the convolution on the fast path (see
    /// [`crate::conv2d_relu`]).
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        let cfg = &self.config;
        if cfg.dilation == 1 && cfg.groups == 1 {
            return crate::conv2d_relu(
                x,
                &self.weight,
                self.bias.as_ref(),
                cfg.padding,
                cfg.stride,
            );
        }
        crate::relu(&self.forward(x)?)
    }
}

impl From<candle_nn::Conv2d> for Conv2d {
    fn from(c: candle_nn::Conv2d) -> Self {
        Self::new(c.weight().clone(), c.bias().cloned(), *c.config())
    }
}

impl From<Conv2d> for candle_nn::Conv2d {
    fn from(c: Conv2d) -> Self {
        Self::new(c.weight, c.bias, c.config)
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let cfg = &self.config;
        if cfg.dilation == 1 && cfg.groups == 1 {
            return crate::conv2d(x, &self.weight, self.bias.as_ref(), cfg.padding, cfg.stride);
        }
        candle_nn::Conv2d::new(self.weight.clone(), self.bias.clone(), *cfg).forward(x)
    }
}

/// 2D transposed convolution layer, a drop-in for `candle_nn::ConvTranspose2d`.
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    weight: Tensor,
    bias: Option<Tensor>,
    config: ConvTranspose2dConfig,
}

impl ConvTranspose2d {
    /// A layer from a weight `[in, out, kh, kw]` and an optional bias `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>, config: ConvTranspose2dConfig) -> Self {
        Self {
            weight,
            bias,
            config,
        }
    }

    /// The layer's configuration.
    pub fn config(&self) -> &ConvTranspose2dConfig {
        &self.config
    }

    /// The weight, `[in, out, kh, kw]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl ConvTranspose2d {
    /// `relu(self.forward(x))`, fused into the transposed convolution on the fast path (see
    /// [`crate::conv_transpose2d_relu`]).
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        let cfg = &self.config;
        if cfg.dilation == 1 {
            return crate::conv_transpose2d_relu(
                x,
                &self.weight,
                self.bias.as_ref(),
                cfg.padding,
                cfg.output_padding,
                cfg.stride,
            );
        }
        crate::relu(&self.forward(x)?)
    }
}

impl From<candle_nn::ConvTranspose2d> for ConvTranspose2d {
    fn from(c: candle_nn::ConvTranspose2d) -> Self {
        Self::new(c.weight().clone(), c.bias().cloned(), *c.config())
    }
}

impl From<ConvTranspose2d> for candle_nn::ConvTranspose2d {
    fn from(c: ConvTranspose2d) -> Self {
        Self::new(c.weight, c.bias, c.config)
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let cfg = &self.config;
        if cfg.dilation == 1 {
            return crate::conv_transpose2d(
                x,
                &self.weight,
                self.bias.as_ref(),
                cfg.padding,
                cfg.output_padding,
                cfg.stride,
            );
        }
        candle_nn::ConvTranspose2d::new(self.weight.clone(), self.bias.clone(), *cfg).forward(x)
    }
}

/// Fully connected layer, a drop-in for `candle_nn::Linear`: `weight [out, in]`,
/// optional `bias [out]`.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// A layer from a weight `[out, in]` and an optional bias `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// The weight, `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `relu(self.forward(x))`, fused into the layer on the fast path (see
    /// [`crate::linear_relu`]). `x`: `[N, in]` → `[N, out]`.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        crate::linear_relu(x, &self.weight, self.bias.as_ref())
    }

    /// `sigmoid(self.forward(x))`, fused into the layer on the fast path (see
    /// [`crate::linear_sigmoid`]). `x`: `[N, in]` → `[N, out]`.
    pub fn forward_sigmoid(&self, x: &Tensor) -> Result<Tensor> {
        crate::linear_sigmoid(x, &self.weight, self.bias.as_ref())
    }
}

impl Module for Linear {
    /// `x Wᵀ + b`: `[N, in]` → `[N, out]` (one fused op on the CPU; other ranks and
    /// devices as `candle_nn::Linear`).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::linear(x, &self.weight, self.bias.as_ref())
    }
}

impl From<candle_nn::Linear> for Linear {
    fn from(l: candle_nn::Linear) -> Self {
        Self::new(l.weight().clone(), l.bias().cloned())
    }
}

impl From<Linear> for candle_nn::Linear {
    fn from(l: Linear) -> Self {
        Self::new(l.weight, l.bias)
    }
}

/// Same as `candle_nn::linear`: `weight [out, in]` (Kaiming-uniform init) and `bias [out]`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder<'_>) -> Result<Linear> {
    candle_nn::linear(in_dim, out_dim, vb).map(Linear::from)
}

/// Same as `candle_nn::linear_no_bias`.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder<'_>) -> Result<Linear> {
    candle_nn::linear_no_bias(in_dim, out_dim, vb).map(Linear::from)
}

/// Same as `candle_nn::conv2d`: a `kernel_size x kernel_size` convolution with `weight`
/// `[out, in / groups, k, k]` (Kaiming-normal init) and `bias` `[out]`.
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel_size: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder<'_>,
) -> Result<Conv2d> {
    candle_nn::conv2d(in_channels, out_channels, kernel_size, cfg, vb).map(Conv2d::from)
}

/// Same as `candle_nn::conv2d_no_bias`.
pub fn conv2d_no_bias(
    in_channels: usize,
    out_channels: usize,
    kernel_size: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder<'_>,
) -> Result<Conv2d> {
    candle_nn::conv2d_no_bias(in_channels, out_channels, kernel_size, cfg, vb).map(Conv2d::from)
}

/// Same as `candle_nn::conv_transpose2d`: `weight` `[in, out, k, k]` and `bias` `[out]`.
pub fn conv_transpose2d(
    in_channels: usize,
    out_channels: usize,
    kernel_size: usize,
    cfg: ConvTranspose2dConfig,
    vb: VarBuilder<'_>,
) -> Result<ConvTranspose2d> {
    candle_nn::conv_transpose2d(in_channels, out_channels, kernel_size, cfg, vb)
        .map(ConvTranspose2d::from)
}

/// Same as `candle_nn::conv_transpose2d_no_bias`.
pub fn conv_transpose2d_no_bias(
    in_channels: usize,
    out_channels: usize,
    kernel_size: usize,
    cfg: ConvTranspose2dConfig,
    vb: VarBuilder<'_>,
) -> Result<ConvTranspose2d> {
    candle_nn::conv_transpose2d_no_bias(in_channels, out_channels, kernel_size, cfg, vb)
        .map(ConvTranspose2d::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn layers_match_candle_nn() -> Result<()> {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let conv = conv2d(3, 4, 3, cfg, vb.pp("c"))?;
        let tcfg = ConvTranspose2dConfig {
            padding: 1,
            output_padding: 1,
            stride: 2,
            dilation: 1,
        };
        let convt = conv_transpose2d(4, 2, 3, tcfg, vb.pp("t"))?;
        let names: Vec<String> = {
            let data = vm
                .data()
                .lock()
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let mut v: Vec<String> = data.keys().cloned().collect();
            v.sort();
            v
        };
        assert_eq!(names, ["c.bias", "c.weight", "t.bias", "t.weight"]);
        assert_eq!(conv.weight().dims(), &[4, 3, 3, 3]);
        assert_eq!(convt.weight().dims(), &[4, 2, 3, 3]);

        let x = Tensor::randn(0f32, 1., (2, 3, 7, 5), &dev)?;
        let ours = convt.forward(&conv.forward(&x)?)?;
        let stock_c: candle_nn::Conv2d = conv.clone().into();
        let stock_t: candle_nn::ConvTranspose2d = convt.clone().into();
        let theirs = stock_t.forward(&stock_c.forward(&x)?)?;
        assert_eq!(ours.dims(), &[2, 2, 14, 10]);
        let diff = (ours - theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-4, "max diff {diff}");
        Ok(())
    }
}
