//! The MNIST convolutional autoencoder used to benchmark the kernels, built either from
//! candle's stock conv layers or from `ae_kernels::nn` (same variables, same numbers).
//!
//! Conv(1→32,3x3,pad1)-ReLU-MaxPool2-Conv(32→32,3x3,pad1)-ReLU-MaxPool2-
//! ConvTranspose(32→32,3x3,stride2,pad1,output_pad1)-ReLU-ConvTranspose(32→32, same)-ReLU-
//! Conv(32→1,3x3,pad1); one training step = forward, BCE-with-logits loss, backward.

#![allow(dead_code)]

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, VarBuilder, VarMap};

/// Which implementation a model uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `candle_nn::Conv2d` / `candle_nn::ConvTranspose2d`, `Tensor::relu`, `Tensor::max_pool2d`.
    Stock,
    /// `ae_kernels::nn` convolutions; candle's relu and max-pool.
    FastConv,
    /// `ae_kernels` convolutions, `ae_kernels::relu` and `ae_kernels::max_pool2d`.
    FastAll,
    /// As `FastAll`, with the ReLUs fused into the convolutions (`forward_relu`).
    FastFused,
}

/// Config of the 3x3 padded convolutions.
pub fn conv_cfg() -> Conv2dConfig {
    Conv2dConfig {
        padding: 1,
        ..Default::default()
    }
}

/// Config of the upsampling transposed convolutions.
pub fn conv_t_cfg() -> ConvTranspose2dConfig {
    ConvTranspose2dConfig {
        padding: 1,
        output_padding: 1,
        stride: 2,
        dilation: 1,
    }
}

/// One convolution layer of either implementation.
enum Layer {
    Stock(Box<dyn Module>),
    Conv(ae_kernels::Conv2d),
    ConvT(ae_kernels::ConvTranspose2d),
}

impl Layer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Stock(m) => m.forward(x),
            Self::Conv(c) => c.forward(x),
            Self::ConvT(c) => c.forward(x),
        }
    }

    fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Stock(m) => m.forward(x)?.relu(),
            Self::Conv(c) => c.forward_relu(x),
            Self::ConvT(c) => c.forward_relu(x),
        }
    }
}

/// The conv autoencoder.
pub struct ConvAe {
    layers: Vec<Layer>,
    backend: Backend,
}

impl ConvAe {
    /// Builds the model; models from the same `VarMap` share their weights.
    pub fn new(vb: VarBuilder<'_>, backend: Backend) -> Result<Self> {
        let stock = backend == Backend::Stock;
        let conv = |i, o, name: &str| -> Result<Layer> {
            Ok(if stock {
                Layer::Stock(Box::new(candle_nn::conv2d(
                    i,
                    o,
                    3,
                    conv_cfg(),
                    vb.pp(name),
                )?))
            } else {
                Layer::Conv(ae_kernels::nn::conv2d(i, o, 3, conv_cfg(), vb.pp(name))?)
            })
        };
        let conv_t = |i, o, name: &str| -> Result<Layer> {
            let cfg = conv_t_cfg();
            Ok(if stock {
                let c = candle_nn::conv_transpose2d(i, o, 3, cfg, vb.pp(name))?;
                Layer::Stock(Box::new(c))
            } else {
                Layer::ConvT(ae_kernels::nn::conv_transpose2d(i, o, 3, cfg, vb.pp(name))?)
            })
        };
        Ok(Self {
            layers: vec![
                conv(1, 32, "enc1")?,
                conv(32, 32, "enc2")?,
                conv_t(32, 32, "dec1")?,
                conv_t(32, 32, "dec2")?,
                conv(32, 1, "out")?,
            ],
            backend,
        })
    }

    /// Logits `[n, 1, 28, 28]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let l = &self.layers;
        let b = self.backend;
        let fast_pointwise = matches!(b, Backend::FastAll | Backend::FastFused);
        let conv_relu = |layer: &Layer, t: &Tensor| -> Result<Tensor> {
            match b {
                Backend::FastFused => layer.forward_relu(t),
                Backend::FastAll => ae_kernels::relu(&layer.forward(t)?),
                Backend::Stock | Backend::FastConv => layer.forward(t)?.relu(),
            }
        };
        let pool = |t: Tensor| {
            if fast_pointwise {
                ae_kernels::max_pool2d(&t, 2)
            } else {
                t.max_pool2d(2)
            }
        };
        let h = pool(conv_relu(&l[0], x)?)?;
        let h = pool(conv_relu(&l[1], &h)?)?;
        let h = conv_relu(&l[2], &h)?;
        let h = conv_relu(&l[3], &h)?;
        l[4].forward(&h)
    }

    /// One training step without the optimizer: forward, loss, backward. Returns the loss.
    pub fn step(&self, x: &Tensor) -> Result<f32> {
        let logits = self.forward(x)?;
        let loss = candle_nn::loss::binary_cross_entropy_with_logit(&logits, x)?;
        let _grads = loss.backward()?;
        loss.to_scalar::<f32>()
    }
}

impl ConvAe {
    /// The model as `ae_kernels::conv_chain` stages (the ae-kernels backends only).
    pub fn stages(&self) -> Result<Vec<ae_kernels::conv_chain::Stage>> {
        use ae_kernels::conv_chain::Stage;
        let params = |l: &Layer| -> Result<(Tensor, Tensor)> {
            let (w, b) = match l {
                Layer::Conv(c) => (c.weight(), c.bias()),
                Layer::ConvT(c) => (c.weight(), c.bias()),
                Layer::Stock(_) => candle_core::bail!("the stock model has no conv chain"),
            };
            let b = b.ok_or_else(|| candle_core::Error::msg("a layer without bias"))?;
            Ok((w.clone(), b.clone()))
        };
        let l = &self.layers;
        let conv = |i: usize, relu| params(&l[i]).and_then(|(w, b)| Stage::conv(&w, &b, relu));
        let conv_t = |i: usize| params(&l[i]).and_then(|(w, b)| Stage::conv_t(&w, &b, true));
        Ok(vec![
            conv(0, true)?,
            Stage::pool2(),
            conv(1, true)?,
            Stage::pool2(),
            conv_t(2)?,
            conv_t(3)?,
            conv(4, false)?,
        ])
    }

    /// [`ConvAe::step`] as one `ae_kernels::conv_chain` step (image at a time, no graph):
    /// the loss and every parameter's gradient from `x` `[n, 1, 28, 28]`.
    pub fn chain_step(&self, stages: &[ae_kernels::conv_chain::Stage], x: &[f32]) -> Result<f64> {
        let n = x.len() / 784;
        let (sum, _grads) =
            ae_kernels::conv_chain::bce_step(stages, [1, 28, 28], x, x, n, 1.0 / x.len() as f32)?;
        Ok(sum / x.len() as f64)
    }
}

/// The variants (stock, fast convs, all fast, fused) on shared random weights, and a random
/// `[batch, 1, 28, 28]` batch in [0, 1).
pub fn setup(batch: usize) -> Result<([ConvAe; 4], Tensor)> {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let models = [
        ConvAe::new(vb.clone(), Backend::Stock)?,
        ConvAe::new(vb.clone(), Backend::FastConv)?,
        ConvAe::new(vb.clone(), Backend::FastAll)?,
        ConvAe::new(vb, Backend::FastFused)?,
    ];
    let x = Tensor::rand(0f32, 1., (batch, 1, 28, 28), &dev)?;
    Ok((models, x))
}
