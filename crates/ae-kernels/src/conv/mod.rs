//! The convolution drivers: batched forward and fused backward passes of a convolution and a
//! transposed convolution over plain slices.
//!
//! Everything here works on contiguous NCHW buffers. A convolution is described by a
//! [`Geom`]: an *image* of `c` channels and `h x w` pixels is convolved by a kernel of
//! `o` filters of shape `c x kh x kw` into an *output* of `o` channels and `ho x wo`
//! pixels. Per image there are three passes: forward `W @ im2col(x)`, data
//! `col2im(W^T @ g)` and filter `g @ im2col(x)^T`. They are combined into
//!
//! * [`conv_fwd`]: a convolution's forward pass (image, weight -> output),
//! * [`conv_data`]: a transposed convolution's forward pass (output, weight -> image),
//! * [`conv_bwd`] / [`conv_t_bwd`]: their fused backward passes, producing every needed
//!   gradient (input, weight, bias) in one pass over the images.
//!
//! Work is split over the images of the batch with rayon ([`crate::plan`]); each task keeps
//! its own scratch buffers, small enough to stay in cache, and calls a single-threaded GEMM.
//!
//! Each driver is written once against the per-image interface [`layout::Layout`], and the
//! transposed convolution goes through the same two per-image passes (its forward pass is a
//! convolution's data pass, its backward pass a filter pass and a forward pass). Geometries
//! whose column matrix is at least as large as their output (all of the conv autoencoder's
//! but the 1→32 input convolution) run on the padded-width layout of [`wide`], where im2col
//! and col2im are a few long slice copies; the plain layout [`im2col::Im2col`] remains for
//! the others (and the 1x1 stride-1 unpadded case, whose column matrix is the image itself,
//! and empty images) and is the reference the wide layout is tested against.

mod chosen;
mod geom;
mod im2col;
mod layout;
mod wide;

pub(crate) use chosen::Chosen;
pub(crate) use geom::Geom;
use im2col::Im2col;
pub(crate) use layout::{BwdIo, FwdIo, Layout, masked};
use wide::Wide;

use crate::elem::{Elem, add_channel_sums};
use crate::plan::{Grads, Need, block, run_tasks, split_acc};

/// Runs `$run` with `$lay` bound to the layout `$wide` (an `Option<Wide>`) when given, else to
/// the plain im2col layout of `$g`.
macro_rules! on_layout {
    ($wide:expr, $g:expr, |$lay:ident| $run:expr) => {
        match $wide {
            Some($lay) => $run,
            None => {
                let $lay = Im2col(*$g);
                $run
            }
        }
    };
}

/// The layout a geometry runs on: the wide one when it applies and pays.
fn chosen(g: &Geom) -> Option<Wide> {
    Wide::new(g).filter(Wide::pays)
}

/// Convolution forward: `x` `[n, c, h, w]`, `weight` `[o, c, kh, kw]`, optional `bias` `[o]`
/// -> `[n, o, ho, wo]`, followed by a ReLU when `relu`.
pub(crate) fn conv_fwd<T: Elem>(
    g: &Geom,
    n: usize,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    relu: bool,
) -> Vec<T> {
    conv_fwd_via(g, n, x, weight, bias, relu, chosen(g))
}

/// [`conv_fwd`] on the wide layout `wide` when given, else on plain im2col.
fn conv_fwd_via<T: Elem>(
    g: &Geom,
    n: usize,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    relu: bool,
    wide: Option<Wide>,
) -> Vec<T> {
    on_layout!(wide, g, |lay| forward(lay, g, n, x, weight, bias, relu))
}

/// The forward driver: [`Layout::fwd`] over the images.
fn forward<T: Elem, L: Layout>(
    lay: L,
    g: &Geom,
    n: usize,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    relu: bool,
) -> Vec<T> {
    let mut y = vec![T::ZERO; n * g.out_len()];
    run_tasks(n, &mut y, g.out_len(), 0, |imgs, y_chunk, _, par| {
        let mut s = lay.scratch();
        for (i, y_i) in imgs.zip(y_chunk.chunks_mut(g.out_len())) {
            let io = FwdIo {
                weight,
                x: block(x, i, g.img_len()),
                y: y_i,
                bias,
                relu,
                reuse_cols: false,
            };
            lay.fwd(&mut s, io, par);
        }
    });
    y
}

/// Transposed-convolution forward (a convolution's input gradient): `y` `[n, o, ho, wo]`,
/// `weight` `[o, c, kh, kw]`, optional `bias` `[c]` -> `[n, c, h, w]`, followed by a ReLU when
/// `relu`.
pub(crate) fn conv_data<T: Elem>(
    g: &Geom,
    n: usize,
    y: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    relu: bool,
) -> Vec<T> {
    conv_data_via(g, n, y, weight, bias, relu, chosen(g))
}

/// [`conv_data`] on the wide layout `wide` when given, else on plain col2im: the backward
/// driver asked for the image gradient only, with the bias and ReLU applied to it.
fn conv_data_via<T: Elem>(
    g: &Geom,
    n: usize,
    y: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    relu: bool,
    wide: Option<Wide>,
) -> Vec<T> {
    let need = Need {
        input: true,
        weight: false,
        bias: false,
    };
    let data = Data {
        x: &[],
        weight,
        gy: y,
        res: None,
    };
    let grads = on_layout!(wide, g, |lay| backward(lay, g, n, data, need, bias, relu));
    grads.input.unwrap_or_default()
}

/// Convolution backward, one pass over the images: from `x` `[n, c, h, w]`, `weight` and the
/// output gradient `gy` `[n, o, ho, wo]`: the image gradient `col2im(W^T @ gy_i)`, the weight
/// gradient `sum_i gy_i @ im2col(x_i)^T` and the bias gradient (channel sums of `gy`).
/// With a fused ReLU, `res` is the op's output and `gy` is first masked by `res > 0`.
pub(crate) fn conv_bwd<T: Elem>(
    g: &Geom,
    n: usize,
    x: &[T],
    weight: &[T],
    gy: &[T],
    res: Option<&[T]>,
    need: Need,
) -> Grads<T> {
    conv_bwd_via(g, n, x, weight, gy, res, need, chosen(g))
}

/// [`conv_bwd`] on the wide layout `wide` when given, else on plain im2col.
#[allow(clippy::too_many_arguments)]
fn conv_bwd_via<T: Elem>(
    g: &Geom,
    n: usize,
    x: &[T],
    weight: &[T],
    gy: &[T],
    res: Option<&[T]>,
    need: Need,
    wide: Option<Wide>,
) -> Grads<T> {
    let data = Data { x, weight, gy, res };
    on_layout!(wide, g, |lay| backward(lay, g, n, data, need, None, false))
}

/// The batched inputs of a backward pass.
#[derive(Clone, Copy)]
struct Data<'a, T> {
    /// The images `[n, c, h, w]` (read only for the weight gradient).
    x: &'a [T],
    /// The weight `[o, c, kh, kw]`.
    weight: &'a [T],
    /// The output gradients `[n, o, ho, wo]`.
    gy: &'a [T],
    /// The op's outputs, whose zeros mask `gy` when a ReLU is fused.
    res: Option<&'a [T]>,
}

/// Where a task's accumulator `[gw | gb]` splits: the weight gradient's length, or 0 when it
/// is not needed.
fn weight_part(g: &Geom, need: Need) -> usize {
    if need.weight { g.weight_len() } else { 0 }
}

/// The backward driver: [`Layout::bwd`] over the images, producing the gradients `need`
/// asks for; the image gradient is offset by `bias` and passed through a ReLU when `relu`.
fn backward<T: Elem, L: Layout>(
    lay: L,
    g: &Geom,
    n: usize,
    d: Data<'_, T>,
    need: Need,
    bias: Option<&[T]>,
    relu: bool,
) -> Grads<T> {
    let wlen = weight_part(g, need);
    let mut gx = vec![T::ZERO; if need.input { n * g.img_len() } else { 0 }];
    let acc_len = wlen + if need.bias { g.o } else { 0 };
    let acc = run_tasks(
        n,
        &mut gx,
        g.img_len(),
        acc_len,
        |imgs, gx_chunk, acc, par| {
            let mut s = lay.scratch();
            let mut gx_iter = gx_chunk.chunks_mut(g.img_len());
            let (gw, gb) = acc.split_at_mut(wlen);
            for i in imgs {
                let io = BwdIo {
                    weight: d.weight,
                    x: if need.weight {
                        block(d.x, i, g.img_len())
                    } else {
                        &[]
                    },
                    gy: block(d.gy, i, g.out_len()),
                    res: d.res.map(|r| block(r, i, g.out_len())),
                    gx: gx_iter.next(),
                    gw: need.weight.then_some(&mut *gw),
                    gb: need.bias.then_some(&mut *gb),
                    bias,
                    relu,
                    reuse_cols: false,
                };
                lay.bwd(&mut s, io, par);
            }
            if need.weight {
                lay.flush(&mut s, gw);
            }
        },
    );
    let (gw, gb) = split_acc(acc, wlen, need);
    Grads {
        input: need.input.then_some(gx),
        weight: gw,
        bias: gb,
    }
}

/// Transposed-convolution backward, one pass over the images: from its input `y`
/// `[n, o, ho, wo]`, `weight` `[o, c, kh, kw]` and the gradient `gx` `[n, c, h, w]` of its
/// output: the input gradient `W @ im2col(gx_i)`, the weight gradient
/// `sum_i y_i @ im2col(gx_i)^T` (both from one unfolding of `gx_i`) and the bias gradient
/// (channel sums of `gx`). With a fused ReLU, `res` is the op's output and `gx` is first
/// masked by `res > 0`.
pub(crate) fn conv_t_bwd<T: Elem>(
    g: &Geom,
    n: usize,
    y: &[T],
    weight: &[T],
    gx: &[T],
    res: Option<&[T]>,
    need: Need,
) -> Grads<T> {
    conv_t_bwd_via(g, n, y, weight, gx, res, need, chosen(g))
}

/// [`conv_t_bwd`] on the wide layout `wide` when given, else on plain im2col.
#[allow(clippy::too_many_arguments)]
fn conv_t_bwd_via<T: Elem>(
    g: &Geom,
    n: usize,
    y: &[T],
    weight: &[T],
    gx: &[T],
    res: Option<&[T]>,
    need: Need,
    wide: Option<Wide>,
) -> Grads<T> {
    let data = Data {
        x: gx,
        weight,
        gy: y,
        res,
    };
    on_layout!(wide, g, |lay| transposed_backward(lay, g, n, data, need))
}

/// The transposed convolution's backward driver, per image: the weight gradient as a
/// convolution's filter pass ([`Layout::bwd`] with `x` the output gradient `gx_i`, `gy` the
/// op's input `y_i`), then the input gradient as a convolution's forward pass of `gx_i`
/// reusing that pass's unfolding. `d.x` holds the output gradients, `d.gy` the op's inputs
/// and `d.res` its outputs.
fn transposed_backward<T: Elem, L: Layout>(
    lay: L,
    g: &Geom,
    n: usize,
    d: Data<'_, T>,
    need: Need,
) -> Grads<T> {
    let wlen = weight_part(g, need);
    let mut gy = vec![T::ZERO; if need.input { n * g.out_len() } else { 0 }];
    let acc_len = wlen + if need.bias { g.c } else { 0 };
    let acc = run_tasks(
        n,
        &mut gy,
        g.out_len(),
        acc_len,
        |imgs, gy_chunk, acc, par| {
            let mut s = lay.scratch();
            let mut buf = vec![T::ZERO; if d.res.is_some() { g.img_len() } else { 0 }];
            let mut gy_iter = gy_chunk.chunks_mut(g.out_len());
            let (gw, gb) = acc.split_at_mut(wlen);
            for i in imgs {
                let res_i = d.res.map(|r| block(r, i, g.img_len()));
                let gx_i = masked(block(d.x, i, g.img_len()), res_i, &mut buf);
                if need.bias {
                    add_channel_sums(gb, gx_i, g.h * g.w);
                }
                let y_i = block(d.gy, i, g.out_len());
                if need.weight {
                    let io = BwdIo {
                        weight: d.weight,
                        x: gx_i,
                        gy: y_i,
                        res: None,
                        gx: None,
                        gw: Some(&mut *gw),
                        gb: None,
                        bias: None,
                        relu: false,
                        reuse_cols: false,
                    };
                    lay.bwd(&mut s, io, par);
                }
                if let Some(gy_i) = gy_iter.next() {
                    let io = FwdIo {
                        weight: d.weight,
                        x: gx_i,
                        y: gy_i,
                        bias: None,
                        relu: false,
                        reuse_cols: need.weight,
                    };
                    lay.fwd(&mut s, io, par);
                }
            }
            if need.weight {
                lay.flush(&mut s, gw);
            }
        },
    );
    let (gw, gb) = split_acc(acc, wlen, need);
    Grads {
        input: need.input.then_some(gy),
        weight: gw,
        bias: gb,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Direct (quadruple loop) convolution used to check the GEMM path.
    fn naive(g: &Geom, n: usize, x: &[f64], w: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; n * g.out_len()];
        for i in 0..n {
            for oc in 0..g.o {
                for oy in 0..g.ho {
                    for ox in 0..g.wo {
                        let mut acc = 0.0;
                        for ci in 0..g.c {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                                    let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv =
                                        x[((i * g.c + ci) * g.h + iy as usize) * g.w + ix as usize];
                                    let wv = w[((oc * g.c + ci) * g.kh + ky) * g.kw + kx];
                                    acc += xv * wv;
                                }
                            }
                        }
                        y[((i * g.o + oc) * g.ho + oy) * g.wo + ox] = acc;
                    }
                }
            }
        }
        y
    }

    /// A deterministic pseudo-random sequence in [-0.5, 0.5), for kernel tests.
    pub(crate) use crate::test_utils::centred_f64 as seq;

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn gemm_paths_match_naive_and_are_adjoint() {
        let shapes = [
            (2, 3, (5, 7), 4, (3, 2), 1, 2),
            (3, 2, (6, 6), 3, (1, 1), 0, 1),
            (1, 1, (4, 3), 2, (3, 3), 2, 3),
            (5, 2, (8, 8), 2, (2, 2), 0, 2),
            (2, 3, (7, 6), 1, (3, 3), 1, 2),
            (3, 2, (6, 6), 1, (3, 2), 1, 1),
        ];
        for (seed, &(n, c, hw, o, k, pad, stride)) in shapes.iter().enumerate() {
            let Some(g) = Geom::conv(c, hw, o, k, pad, stride) else {
                panic!("bad test shape");
            };
            let x = seq(n * g.img_len(), seed as u64);
            let w = seq(g.weight_len(), seed as u64 + 100);
            let gy = seq(n * g.out_len(), seed as u64 + 200);
            let y = conv_fwd(&g, n, &x, &w, None, false);
            let want = naive(&g, n, &x, &w);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-10, "{a} vs {b}");
            }
            // <conv(x), gy> == <x, conv_data(gy)> == <w, gw>
            let lhs = dot(&y, &gy);
            let all = Need {
                input: true,
                weight: true,
                bias: true,
            };
            let gx = conv_data(&g, n, &gy, &w, None, false);
            let Grads {
                input: Some(gx2),
                weight: Some(gw),
                bias: Some(gb),
            } = conv_bwd(&g, n, &x, &w, &gy, None, all)
            else {
                panic!("missing gradients")
            };
            assert!((lhs - dot(&x, &gx)).abs() < 1e-9);
            assert_eq!(gx, gx2);
            assert!((lhs - dot(&w, &gw)).abs() < 1e-9);
            let sums: Vec<f64> = (0..g.o)
                .map(|oc| {
                    (0..n)
                        .map(|i| block(&gy, i * g.o + oc, g.l()).iter().sum::<f64>())
                        .sum()
                })
                .collect();
            for (a, b) in gb.iter().zip(&sums) {
                assert!((a - b).abs() < 1e-9);
            }
            // Transposed convolution: conv_data is the op, conv_t_bwd its backward.
            let Grads {
                input: Some(gy2),
                weight: Some(gw2),
                bias: Some(_),
            } = conv_t_bwd(&g, n, &gy, &w, &x, None, all)
            else {
                panic!("missing gradients")
            };
            // <conv_data(gy), x> == <gy, conv_fwd(x)> == <w, gw2>
            assert!((dot(&gx, &x) - dot(&gy, &gy2)).abs() < 1e-9);
            assert!((dot(&gx, &x) - dot(&w, &gw2)).abs() < 1e-9);
        }
    }

    fn close(a: &[f64], b: &[f64], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() < 1e-10 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// The wide (padded-width) path against plain im2col: forward with and without bias and
    /// ReLU, and every subset of backward gradients with and without a fused-ReLU mask.
    fn check_wide(n: usize, g: &Geom, seed: u64) {
        let Some(wd) = Wide::new(g) else {
            panic!("wide path does not apply to {g:?}")
        };
        let x = seq(n * g.img_len(), seed);
        let w = seq(g.weight_len(), seed + 1);
        let b = seq(g.o, seed + 2);
        let gy = seq(n * g.out_len(), seed + 3);
        for (bias, relu) in [(None, false), (Some(&b[..]), true), (Some(&b[..]), false)] {
            let want = conv_fwd_via(g, n, &x, &w, bias, relu, None);
            let got = conv_fwd_via(g, n, &x, &w, bias, relu, Some(wd));
            close(&got, &want, "forward");
        }
        let bc = seq(g.c, seed + 4);
        for (bias, relu) in [(None, false), (Some(&bc[..]), true), (Some(&bc[..]), false)] {
            let want = conv_data_via(g, n, &gy, &w, bias, relu, None);
            let got = conv_data_via(g, n, &gy, &w, bias, relu, Some(wd));
            close(&got, &want, "transposed forward");
        }
        let res = conv_fwd_via(g, n, &x, &w, Some(&b), true, None);
        let res_t = conv_data_via(g, n, &gy, &w, Some(&bc), true, None);
        for (mask, mask_t) in [(None, None), (Some(&res[..]), Some(&res_t[..]))] {
            for bits in 1..8u8 {
                let need = Need {
                    input: bits & 1 != 0,
                    weight: bits & 2 != 0,
                    bias: bits & 4 != 0,
                };
                let want = conv_bwd_via(g, n, &x, &w, &gy, mask, need, None);
                let got = conv_bwd_via(g, n, &x, &w, &gy, mask, need, Some(wd));
                let want_t = conv_t_bwd_via(g, n, &gy, &w, &x, mask_t, need, None);
                let got_t = conv_t_bwd_via(g, n, &gy, &w, &x, mask_t, need, Some(wd));
                for (what, a, b) in [
                    ("transposed input", &got_t.input, &want_t.input),
                    ("transposed weight", &got_t.weight, &want_t.weight),
                    ("transposed bias", &got_t.bias, &want_t.bias),
                    ("input", &got.input, &want.input),
                    ("weight", &got.weight, &want.weight),
                    ("bias", &got.bias, &want.bias),
                ] {
                    match (a, b) {
                        (Some(a), Some(b)) => close(a, b, what),
                        (None, None) => {}
                        _ => panic!("{what}: presence differs"),
                    }
                }
            }
        }
    }

    #[test]
    fn wide_path_covers_the_mnist_shapes() {
        // The convolutions, then the transposed ones (as the convolutions they are adjoint to).
        for (c, hw, o, stride) in [
            (1, 28, 32, 1),
            (32, 14, 32, 1),
            (32, 28, 1, 1),
            (3, 5, 2, 1),
            (32, 14, 32, 2),
            (32, 28, 32, 2),
        ] {
            let Some(g) = Geom::conv(c, (hw, hw), o, (3, 3), 1, stride) else {
                panic!("bad test shape")
            };
            check_wide(3, &g, c as u64 * 7 + o as u64);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        #[test]
        fn wide_path_matches_im2col(
            n in 1usize..=3,
            c in 1usize..=5,
            o in 1usize..=7,
            h in 1usize..=9,
            w in 1usize..=9,
            kh in 1usize..=4,
            kw in 1usize..=4,
            pad in 0usize..=2,
            stride in 1usize..=3,
            seed in 0u64..1000,
        ) {
            if let Some(g) = Geom::conv(c, (h, w), o, (kh, kw), pad, stride)
                && Wide::new(&g).is_some() {
                    check_wide(n, &g, seed);
                }
        }
    }

    #[test]
    fn bias_and_channel_sum() {
        let g = Geom::conv(1, (2, 2), 2, (1, 1), 0, 1);
        let Some(g) = g else { panic!("bad test shape") };
        let x = vec![1.0f32; 2 * 4];
        let w = vec![0.0f32, 0.0];
        let y = conv_fwd(&g, 2, &x, &w, Some(&[1.0, 2.0]), false);
        assert_eq!(
            y,
            vec![
                1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0
            ]
        );
        let mut acc = vec![0.0f32; 2];
        for i in 0..2 {
            add_channel_sums(&mut acc, block(&y, i, 8), 4);
        }
        assert_eq!(acc, vec![8.0, 16.0]);
    }
}
