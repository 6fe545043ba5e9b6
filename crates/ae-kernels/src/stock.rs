//! ReLU and max-pool built from candle's stock ops, with the gradients of this crate's CPU
//! kernels: what every device other than the CPU (and the CPU on the portable path) runs.
//!
//! candle 0.11's own ops differ from the kernels (and from PyTorch) in their gradients:
//! `Tensor::relu` passes the gradient where `x >= 0` (ours: `x > 0`), and
//! `Tensor::max_pool2d` multiplies it by `(number of maxima in the window) / k²` (ours: all of
//! it to the first maximum). The formulations here use only ops that every candle backend
//! has, so the gradients are the same on every device without device code of our own.
//!
//! The masks are computed from detached values: they are `u8` tensors (which candle never
//! differentiates) and hold no reference to the graph.

use candle_core::{D, DType, Result, Tensor};

/// `max(x, 0)` with the gradient `grad · (x > 0)`: `where(x > 0, x, 0)`.
pub(crate) fn relu(x: &Tensor) -> Result<Tensor> {
    let mask = x.detach().gt(0.0)?;
    let zero = Tensor::zeros((), x.dtype(), x.device())?.broadcast_as(x.shape())?;
    mask.where_cond(x, &zero)
}

/// `k x k` max pooling with stride `k` and no padding over `[N, C, H, W]` (output
/// `[N, C, H / k, W / k]`; trailing rows and columns that do not fill a window are dropped,
/// and get a zero gradient), with the whole gradient of each window going to its first
/// maximal element in row-major order, as [`crate::max_pool2d`]'s CPU kernel does.
///
/// The windows are gathered into a last axis of `k²` values; `first` marks the first
/// position whose value equals the window's maximum (the smallest index among the maxima);
/// the output is `Σ where(first, x, 0)` over that axis, whose gradient is `first`.
pub(crate) fn max_pool2d(x: &Tensor, k: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (ho, wo) = (h / k, w / k);
    let mut xs = x.clone();
    if ho * k != h {
        xs = xs.narrow(2, 0, ho * k)?;
    }
    if wo * k != w {
        xs = xs.narrow(3, 0, wo * k)?;
    }
    // [N, C, Ho, k, Wo, k] -> [N, C, Ho, Wo, k, k] -> [N, C, Ho, Wo, k²].
    let windows = xs
        .reshape((n, c, ho, k, wo, k))?
        .permute((0, 1, 2, 4, 3, 5))?
        .contiguous()?
        .reshape((n, c, ho, wo, k * k))?;
    let plain = windows.detach();
    let max = plain.max_keepdim(D::Minus1)?;
    let is_max = plain.broadcast_eq(&max)?;
    // The index of each position, and a sentinel past the last one for positions that are
    // not maximal: the minimum over the window is the first maximum.
    let index = Tensor::arange(0u32, (k * k) as u32, x.device())?
        .to_dtype(DType::F32)?
        .broadcast_as(is_max.shape())?;
    let past = Tensor::new((k * k) as f32, x.device())?.broadcast_as(is_max.shape())?;
    let first_index = is_max.where_cond(&index, &past)?.min_keepdim(D::Minus1)?;
    let first = index.broadcast_eq(&first_index)?;
    let zero = Tensor::zeros((), x.dtype(), x.device())?.broadcast_as(windows.shape())?;
    first
        .where_cond(&windows, &zero)?
        .sum(D::Minus1)?
        .reshape((n, c, ho, wo))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn relu_passes_the_gradient_only_where_x_is_positive() {
        let x = Var::new(&[-1f32, 0.0, -0.0, 2.0, 0.5], &Device::Cpu).unwrap();
        let y = relu(x.as_tensor()).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [0.0, 0.0, 0.0, 2.0, 0.5]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g, [0.0, 0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn max_pool_sends_the_gradient_to_the_first_maximum_of_each_window() {
        // One 5x4 plane, 2x2 windows (the last row is dropped): a window of four equal values,
        // one with two maxima (positions 1 and 2), one with a single maximum, one of zeros
        // and negative zeros.
        #[rustfmt::skip]
        let v = [
            3f32, 3.0,  1.0, 7.0,
            3.0,  3.0,  7.0, 2.0,
            -1.0, 5.0,  0.0, -0.0,
            -2.0, -3.0, -0.0, 0.0,
            9.0,  9.0,  9.0, 9.0,
        ];
        let x =
            Var::from_tensor(&Tensor::from_slice(&v, (1, 1, 5, 4), &Device::Cpu).unwrap()).unwrap();
        let y = max_pool2d(x.as_tensor(), 2).unwrap();
        assert_eq!(y.dims(), [1, 1, 2, 2]);
        let yv = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(yv, [3.0, 7.0, 5.0, 0.0]);
        let weights = Tensor::new(&[[[[1f32, 2.0], [3.0, 4.0]]]], &Device::Cpu).unwrap();
        let g = (y * weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = g.get(x.as_tensor()).unwrap();
        let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        #[rustfmt::skip]
        let want = [
            1f32, 0.0, 0.0, 2.0,
            0.0,  0.0, 0.0, 0.0,
            0.0,  3.0, 4.0, 0.0,
            0.0,  0.0, 0.0, 0.0,
            0.0,  0.0, 0.0, 0.0,
        ];
        assert_eq!(g, want);
    }
}
