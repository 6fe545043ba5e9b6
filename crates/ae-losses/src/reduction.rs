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
        if terms.elem_count() == 0 {
            return Err(LossError::InvalidArgument(format!(
                "cannot reduce an empty tensor of shape {:?}",
                terms.dims()
            )));
        }
        let out = match self {
            Reduction::Mean => terms.mean_all()?,
            Reduction::Sum => terms.sum_all()?,
            Reduction::SumPerSample => {
                let n = match terms.dims().first() {
                    Some(&n) => n,
                    None => {
                        return Err(LossError::InvalidArgument(
                            "SumPerSample needs a batch dimension, got a scalar".to_string(),
                        ));
                    }
                };
                terms.sum_all()?.affine(1.0 / n as f64, 0.0)?
            }
        };
        Ok(out)
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
