//! How per-element loss terms are reduced to a scalar.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::{LossError, Result};

/// How a tensor of per-element loss terms becomes a scalar.
///
/// For a tensor of shape `[N, d1, d2, ...]`:
/// - [`Mean`](Reduction::Mean): sum of all elements / (N·d1·d2·…): the
///   per-pixel mean Keras prints;
/// - [`SumPerSample`](Reduction::SumPerSample): sum of all elements / N: the
///   per-image sum averaged over the batch that PyTorch's VAE example prints;
/// - [`Sum`](Reduction::Sum): sum of all elements.
///
/// So `Sum = Mean · numel = SumPerSample · N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reduction {
    /// Mean over all elements.
    #[default]
    Mean,
    /// Sum over every dimension but the first (the batch), then mean over the batch.
    SumPerSample,
    /// Sum over all elements.
    Sum,
}

impl Reduction {
    /// Reduces `terms` (any shape; `[N, ...]` for `SumPerSample`) to a scalar
    /// tensor (shape `[]`).
    ///
    /// Fails on an empty tensor, and for `SumPerSample` on a rank-0 tensor
    /// (there is no batch dimension to average over).
    pub fn apply(self, terms: &Tensor) -> Result<Tensor> {
        let scale = self.scale(terms.dims())?;
        Ok(terms.sum_all()?.affine(scale, 0.0)?)
    }

    /// The factor that turns the sum of a tensor of shape `dims` into this reduction:
    /// `1 / numel`, `1 / N` or `1` (`1 /` [`divisor`](Reduction::divisor)).
    ///
    /// Fails on an empty shape, and for `SumPerSample` on a rank-0 shape (there is no
    /// batch dimension to average over).
    pub fn scale(self, dims: &[usize]) -> Result<f64> {
        Ok(1.0 / self.divisor(dims)?)
    }

    /// What the sum of a tensor of shape `dims` is divided by: `numel`, `N` or `1`. The one
    /// definition of each reduction's normalisation, for the tensor losses and their
    /// plain-slice forms alike.
    ///
    /// Fails as [`scale`](Reduction::scale) does.
    pub fn divisor(self, dims: &[usize]) -> Result<f64> {
        let numel: usize = dims.iter().product();
        if numel == 0 {
            return Err(LossError::InvalidArgument(format!(
                "cannot reduce an empty tensor of shape {dims:?}"
            )));
        }
        Ok(match self {
            Reduction::Mean => numel as f64,
            Reduction::Sum => 1.0,
            Reduction::SumPerSample => match dims.first() {
                Some(&n) => n as f64,
                None => {
                    return Err(LossError::InvalidArgument(
                        "SumPerSample needs a batch dimension, got a scalar".to_string(),
                    ));
                }
            },
        })
    }
}

impl std::fmt::Display for Reduction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reduction::Mean => "mean",
            Reduction::SumPerSample => "sum-per-sample",
            Reduction::Sum => "sum",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn reductions_of_a_known_tensor() {
        let t = Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.]], &Device::Cpu).unwrap();
        let v = |r: Reduction| r.apply(&t).unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(v(Reduction::Mean), 3.5);
        assert_eq!(v(Reduction::SumPerSample), 10.5);
        assert_eq!(v(Reduction::Sum), 21.0);
        // the result is a scalar tensor
        assert_eq!(Reduction::SumPerSample.apply(&t).unwrap().rank(), 0);
    }
}
