//! Fused fully connected layer `y = act(x Wᵀ + b)` as a candle custom op, with a one-pass
//! backward.
//!
//! candle 0.11 builds a `Linear` + ReLU out of four graph nodes (matmul of a transposed view,
//! broadcast add, ReLU) whose backward passes allocate a dozen full-size temporaries: the
//! weight gradient comes out transposed and is copied through a strided add, the bias
//! gradient is a `sum_keepdim` + squeeze, and the ReLU gradient is a `ge` mask, its cast and
//! a product. Here the forward pass is one GEMM with the bias and the ReLU applied while the
//! output rows are in cache, and the backward pass is one masking pass that also sums the
//! bias gradient, plus one GEMM per requested gradient (input, weight).

use rayon::prelude::*;

use crate::elem::Elem;
use crate::matmul::MatView;
use crate::ops::FusedKernel;
use crate::par_gemm::{Epilogue, par_matmul};
use crate::plan::{Grads, Need};

/// The activation fused into a fully connected layer, after the bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DenseAct {
    /// None: the layer's output is `x Wᵀ + b`.
    Identity,
    /// `max(·, 0)`.
    Relu,
    /// `1 / (1 + e^{-·})`, the same values as [`crate::sigmoid`].
    Sigmoid,
}

impl DenseAct {
    /// `Relu` when `relu`, else `Identity`.
    pub fn relu_if(relu: bool) -> Self {
        if relu { Self::Relu } else { Self::Identity }
    }
}

/// Shape of one fully connected layer over a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DenseGeom {
    /// Rows of the batch.
    pub n: usize,
    /// Input features.
    pub inp: usize,
    /// Output features.
    pub out: usize,
}

/// `relu?(x Wᵀ + b)`: `x [n, inp]`, `w [out, inp]`, `b [out]` -> `[n, out]`.
pub(crate) fn dense_fwd<T: Elem>(
    g: DenseGeom,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    act: DenseAct,
) -> Vec<T> {
    // The bias and the activation on each block's rows while they are in cache, in parallel.
    let epilogue = |c0: usize, row: &mut [T]| {
        if let Some(b) = b {
            for (v, &bias) in row.iter_mut().zip(&b[c0..]) {
                *v += bias;
            }
        }
        match act {
            DenseAct::Identity => {}
            DenseAct::Relu => {
                for v in row.iter_mut() {
                    *v = if *v > T::ZERO { *v } else { T::ZERO };
                }
            }
            DenseAct::Sigmoid => T::sigmoid_in_place(row),
        }
    };
    par_matmul(
        g.out,
        x,
        MatView::row_major(g.n, g.inp),
        w,
        MatView::row_major(g.out, g.inp).t(),
        (b.is_some() || act != DenseAct::Identity).then_some(&epilogue as Epilogue<'_, T>),
    )
}

/// Gradients of [`dense_fwd`] given the output gradient `gy [n, out]` (and, with a fused
/// activation `act`, the forward output `res`: a ReLU's zeros mask the gradient, a sigmoid's
/// values scale it by `σ (1 - σ)`).
pub(crate) fn dense_bwd<T: Elem>(
    g: DenseGeom,
    x: &[T],
    w: &[T],
    gy: &[T],
    res: Option<&[T]>,
    act: DenseAct,
    need: Need,
) -> Grads<T> {
    // The output gradient through the activation (one parallel pass), then the bias
    // gradient, its column sums over column bands in parallel: each band's sums run down the
    // rows in order, as one thread would, so the bits do not depend on the thread count.
    // (One pass doing both, band by band, was 5-7% slower on a vanilla epoch: the
    // element-wise pass vectorises better on its own.)
    let mut masked = Vec::new();
    if let Some(res) = res {
        masked = gy
            .par_iter()
            .zip(res.par_iter())
            .with_min_len(1 << 14)
            .map(|(&d, &r)| match act {
                DenseAct::Sigmoid => T::sigmoid_bwd(r, d),
                _ => {
                    if r > T::ZERO {
                        d
                    } else {
                        T::ZERO
                    }
                }
            })
            .collect();
    }
    let gm: &[T] = if res.is_some() { &masked } else { gy };
    // The bias gradient and the input and weight gradients (independent GEMMs of the same
    // size) side by side, in one parallel region (each also splits its work when it has the
    // threads to itself).
    let (bias, (input, weight)) = rayon::join(
        || need.bias.then(|| column_sums(gm, g.n, g.out)),
        || {
            rayon::join(
                || {
                    need.input.then(|| {
                        par_matmul(
                            g.inp,
                            gm,
                            MatView::row_major(g.n, g.out),
                            w,
                            MatView::row_major(g.out, g.inp),
                            None,
                        )
                    })
                },
                || {
                    need.weight.then(|| {
                        par_matmul(
                            g.inp,
                            gm,
                            MatView::row_major(g.n, g.out).t(),
                            x,
                            MatView::row_major(g.n, g.inp),
                            None,
                        )
                    })
                },
            )
        },
    );
    Grads {
        input,
        weight,
        bias,
    }
}

/// Column sums of the row-major `[rows, cols]` matrix `a`, over bands of columns in
/// parallel; each column summed down its rows in order.
fn column_sums<T: Elem>(a: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut acc = vec![T::ZERO; cols];
    if cols == 0 {
        return acc;
    }
    const BAND: usize = 64;
    let band_work = |(bi, band): (usize, &mut [T])| {
        let c0 = bi * BAND;
        for row in a.chunks_exact(cols).take(rows) {
            for (s, &v) in band.iter_mut().zip(&row[c0..]) {
                *s += v;
            }
        }
    };
    if rows * cols < 1 << 15 {
        acc.chunks_mut(BAND).enumerate().for_each(band_work);
    } else {
        acc.par_chunks_mut(BAND).enumerate().for_each(band_work);
    }
    acc
}

/// `x [n, inp]`, `weight [out, inp]` (, `bias [out]`) -> `act(x Wᵀ + b) [n, out]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DenseKernel {
    pub g: DenseGeom,
    /// The activation fused after the bias.
    pub act: DenseAct,
}

impl FusedKernel for DenseKernel {
    const NAME: &'static str = "linear";
    const OP2: &'static str = "ae-linear";
    const OP3: &'static str = "ae-linear-bias";

    fn dims(&self) -> [Vec<usize>; 4] {
        let g = self.g;
        [
            vec![g.n, g.inp],
            vec![g.out, g.inp],
            vec![g.out],
            vec![g.n, g.out],
        ]
    }

    fn reads_output(&self) -> bool {
        self.act != DenseAct::Identity
    }

    fn forward<T: Elem>(&self, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<T> {
        dense_fwd(self.g, x, w, b, self.act)
    }

    fn backward<T: Elem>(
        &self,
        x: &[T],
        w: &[T],
        gy: &[T],
        res: Option<&[T]>,
        need: Need,
    ) -> Grads<T> {
        dense_bwd(self.g, x, w, gy, res, self.act, need)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::seq;

    #[test]
    fn forward_and_backward_match_naive_loops() {
        let g = DenseGeom {
            n: 5,
            inp: 7,
            out: 3,
        };
        let (x, w, b, gy) = (seq(35, 1), seq(21, 2), seq(3, 3), seq(15, 4));
        for act in [DenseAct::Identity, DenseAct::Relu, DenseAct::Sigmoid] {
            let y = dense_fwd(g, &x, &w, Some(&b), act);
            // The factor the activation's derivative puts on each output's gradient.
            let mut mask = vec![1.0; 15];
            for r in 0..5 {
                for o in 0..3 {
                    let mut s = b[o];
                    for i in 0..7 {
                        s += x[r * 7 + i] * w[o * 7 + i];
                    }
                    match act {
                        DenseAct::Relu if s <= 0.0 => {
                            s = 0.0;
                            mask[r * 3 + o] = 0.0;
                        }
                        DenseAct::Sigmoid => {
                            s = 1.0 / (1.0 + (-s).exp());
                            mask[r * 3 + o] = s * (1.0 - s);
                        }
                        _ => {}
                    }
                    assert!((y[r * 3 + o] - s).abs() < 1e-12, "{act:?}");
                }
            }
            let need = Need {
                input: true,
                weight: true,
                bias: true,
            };
            let res = (act != DenseAct::Identity).then_some(y.as_slice());
            let gr = dense_bwd(g, &x, &w, &gy, res, act, need);
            let gm: Vec<f64> = gy.iter().zip(&mask).map(|(a, m)| a * m).collect();
            let (gx, gw, gb) = (gr.input.unwrap(), gr.weight.unwrap(), gr.bias.unwrap());
            for r in 0..5 {
                for i in 0..7 {
                    let e: f64 = (0..3).map(|o| gm[r * 3 + o] * w[o * 7 + i]).sum();
                    assert!((gx[r * 7 + i] - e).abs() < 1e-12);
                }
            }
            for o in 0..3 {
                for i in 0..7 {
                    let e: f64 = (0..5).map(|r| gm[r * 3 + o] * x[r * 7 + i]).sum();
                    assert!((gw[o * 7 + i] - e).abs() < 1e-12);
                }
                let e: f64 = (0..5).map(|r| gm[r * 3 + o]).sum();
                assert!((gb[o] - e).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn only_requested_gradients_are_computed() {
        let g = DenseGeom {
            n: 2,
            inp: 3,
            out: 2,
        };
        let need = Need {
            input: false,
            weight: true,
            bias: false,
        };
        let gr = dense_bwd(
            g,
            &seq(6, 1),
            &seq(6, 2),
            &seq(4, 3),
            None,
            DenseAct::Identity,
            need,
        );
        assert!(gr.input.is_none() && gr.bias.is_none() && gr.weight.is_some());
    }
}
