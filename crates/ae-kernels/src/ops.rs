//! candle custom ops wrapping the [`crate::conv`] and [`crate::dense`] kernels, with their
//! backward passes.
//!
//! Every op here has the form `(input, weight[, bias]) -> output`, optionally with a ReLU
//! fused after the bias, and is described by a [`FusedKernel`]; [`Fused`] turns any kernel
//! into a candle `CustomOp2` (no bias) and `CustomOp3` (with bias):
//!
//! * [`ConvKernel`]: image, weight (, bias) -> output (a convolution);
//! * [`DataKernel`]: output, weight (, bias) -> image (a transposed convolution);
//! * [`crate::dense::DenseKernel`]: rows, weight (, bias) -> rows (a fully connected layer).
//!
//! Each backward pass computes all the gradients it needs (input, weight, bias; only those
//! of tracked tensors) in one fused pass and returns plain tensors: gradients are first
//! order only.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, Device, Layout, Result, Shape, Storage, Tensor, bail,
};

use crate::conv::{self, Geom};
use crate::elem::Elem;
use crate::plan::{Grads, Need};

/// Runs `$body` with the type alias `$t` set to `f32` or `f64` after `$dtype`, failing with
/// an error naming `$what` for any other dtype.
macro_rules! float_dispatch {
    ($dtype:expr, $what:expr, |$t:ident| $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::F64 => {
                type $t = f64;
                $body
            }
            dt => candle_core::bail!("ae-kernels {}: unsupported dtype {dt:?}", $what),
        }
    };
}
pub(crate) use float_dispatch;

/// Element types with a CPU storage variant.
pub(crate) trait StorageElem: Elem + candle_core::WithDType {
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    fn storage(v: Vec<Self>) -> CpuStorage;
}

impl StorageElem for f32 {
    fn slice(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl StorageElem for f64 {
    fn slice(s: &CpuStorage) -> Option<&[Self]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

/// The contiguous data of `s` under layout `l`, checking its shape.
pub(crate) fn data<'a, T: StorageElem>(
    op: &str,
    s: &'a CpuStorage,
    l: &Layout,
    dims: &[usize],
) -> Result<&'a [T]> {
    if l.dims() != dims {
        bail!("{op}: expected shape {dims:?}, got {:?}", l.dims())
    }
    let Some(v) = T::slice(s) else {
        bail!("{op}: unexpected dtype {:?}", s.dtype())
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => bail!("{op}: input is not contiguous"),
    }
}

/// Runs a fused backward kernel on the CPU data of `inputs` (each checked against its
/// dims) and wraps the requested gradients as tensors shaped like `shapes` (first input,
/// weight, bias).
pub(crate) fn backward<T: StorageElem>(
    name: &str,
    inputs: &[(&Tensor, &[usize])],
    shapes: [&[usize]; 3],
    kernel: impl FnOnce(&[&[T]]) -> Grads<T>,
) -> Result<[Option<Tensor>; 3]> {
    let guards: Vec<_> = inputs.iter().map(|(t, _)| t.storage_and_layout()).collect();
    let mut slices: Vec<&[T]> = Vec::with_capacity(inputs.len());
    for ((guard, layout), (_, dims)) in guards.iter().zip(inputs) {
        let Storage::Cpu(s) = &**guard else {
            bail!("{name}: expected CPU tensors")
        };
        slices.push(data::<T>(name, s, layout, dims)?);
    }
    let g = kernel(&slices);
    drop(guards);
    let dev = Device::Cpu;
    let wrap = |v: Option<Vec<T>>, shape: &[usize]| -> Result<Option<Tensor>> {
        v.map(|v| Tensor::from_vec(v, shape, &dev)).transpose()
    };
    Ok([
        wrap(g.input, shapes[0])?,
        wrap(g.weight, shapes[1])?,
        wrap(g.bias, shapes[2])?,
    ])
}

/// A fused `(input, weight[, bias]) -> output` kernel on contiguous CPU slices.
pub(crate) trait FusedKernel: Copy + Send + Sync + 'static {
    /// The op's name in errors (`"conv2d"`, ...).
    const NAME: &'static str;
    /// candle's name of the op without a bias.
    const OP2: &'static str;
    /// candle's name of the op with a bias.
    const OP3: &'static str;
    /// The dims of the input, the weight, the bias and the output.
    fn dims(&self) -> [Vec<usize>; 4];
    /// Whether an activation is fused after the bias whose backward pass reads the op's
    /// output (a ReLU's mask, a sigmoid's `σ (1 - σ)`).
    fn reads_output(&self) -> bool;
    /// The output.
    fn forward<T: Elem>(&self, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<T>;
    /// The requested gradients from the output gradient `gy` (and the output `res` when a
    /// ReLU is fused).
    fn backward<T: Elem>(
        &self,
        x: &[T],
        w: &[T],
        gy: &[T],
        res: Option<&[T]>,
        need: Need,
    ) -> Grads<T>;
}

/// A [`FusedKernel`] as a candle custom op.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fused<K>(pub K);

impl<K: FusedKernel> Fused<K> {
    fn run<T: StorageElem>(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let [xd, wd, bd, yd] = self.0.dims();
        let x = data::<T>(K::NAME, x.0, x.1, &xd)?;
        let w = data::<T>(K::NAME, w.0, w.1, &wd)?;
        let b = match b {
            Some((s, l)) => Some(data::<T>(K::NAME, s, l, &bd)?),
            None => None,
        };
        let y = self.0.forward(x, w, b);
        Ok((T::storage(y), Shape::from(yd)))
    }

    fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        float_dispatch!(x.0.dtype(), K::NAME, |T| self.run::<T>(x, w, b))
    }

    /// Gradients w.r.t. `(x, w, b)` given the gradient `gy` of the output `res`.
    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        res: &Tensor,
        gy: &Tensor,
    ) -> Result<[Option<Tensor>; 3]> {
        let need = Need {
            input: x.track_op(),
            weight: w.track_op(),
            bias: b.is_some_and(|b| b.track_op()),
        };
        if !(need.input || need.weight || need.bias) {
            return Ok([None, None, None]);
        }
        let gy = gy.contiguous()?;
        let [xd, wd, bd, yd] = self.0.dims();
        let mut inputs: Vec<(&Tensor, &[usize])> = vec![(x, &xd), (w, &wd), (&gy, &yd)];
        if self.0.reads_output() {
            inputs.push((res, &yd));
        }
        let shapes: [&[usize]; 3] = [&xd, &wd, &bd];
        let k = self.0;
        float_dispatch!(x.dtype(), K::NAME, |T| backward::<T>(
            K::NAME,
            &inputs,
            shapes,
            |d| k.backward(d[0], d[1], d[2], d.get(3).copied(), need)
        ))
    }
}

impl<K: FusedKernel> CustomOp2 for Fused<K> {
    fn name(&self) -> &'static str {
        K::OP2
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.fwd((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [gx, gw, _] = self.grads(x, w, None, res, gy)?;
        Ok((gx, gw))
    }
}

impl<K: FusedKernel> CustomOp3 for Fused<K> {
    fn name(&self) -> &'static str {
        K::OP3
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.fwd((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [gx, gw, gb] = self.grads(x, w, Some(b), res, gy)?;
        Ok((gx, gw, gb))
    }
}

/// Applies `op` to `x`, `w` and the optional bias `b` (each made contiguous).
pub(crate) fn apply<K: FusedKernel>(
    op: K,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Result<Tensor> {
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, Fused(op)),
        None => x.apply_op2(&w, Fused(op)),
    }
}

/// Convolution: `image [n, c, h, w]`, `weight [o, c, kh, kw]` (, `bias [o]`) ->
/// `[n, o, ho, wo]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvKernel {
    pub g: Geom,
    pub n: usize,
    /// Whether a ReLU is fused after the bias.
    pub relu: bool,
}

impl FusedKernel for ConvKernel {
    const NAME: &'static str = "conv2d";
    const OP2: &'static str = "ae-conv2d";
    const OP3: &'static str = "ae-conv2d-bias";

    fn dims(&self) -> [Vec<usize>; 4] {
        let g = &self.g;
        [
            vec![self.n, g.c, g.h, g.w],
            vec![g.o, g.c, g.kh, g.kw],
            vec![g.o],
            vec![self.n, g.o, g.ho, g.wo],
        ]
    }

    fn reads_output(&self) -> bool {
        self.relu
    }

    fn forward<T: Elem>(&self, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<T> {
        conv::conv_fwd(&self.g, self.n, x, w, b, self.relu)
    }

    fn backward<T: Elem>(
        &self,
        x: &[T],
        w: &[T],
        gy: &[T],
        res: Option<&[T]>,
        need: Need,
    ) -> Grads<T> {
        conv::conv_bwd(&self.g, self.n, x, w, gy, res, need)
    }
}

/// Transposed convolution (the adjoint of [`ConvKernel`] w.r.t. its image):
/// `y [n, o, ho, wo]`, `weight [o, c, kh, kw]` (, `bias [c]`) -> `[n, c, h, w]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DataKernel {
    pub g: Geom,
    pub n: usize,
    /// Whether a ReLU is fused after the bias.
    pub relu: bool,
}

impl FusedKernel for DataKernel {
    const NAME: &'static str = "conv_transpose2d";
    const OP2: &'static str = "ae-conv-transpose2d";
    const OP3: &'static str = "ae-conv-transpose2d-bias";

    fn dims(&self) -> [Vec<usize>; 4] {
        let g = &self.g;
        [
            vec![self.n, g.o, g.ho, g.wo],
            vec![g.o, g.c, g.kh, g.kw],
            vec![g.c],
            vec![self.n, g.c, g.h, g.w],
        ]
    }

    fn reads_output(&self) -> bool {
        self.relu
    }

    fn forward<T: Elem>(&self, y: &[T], w: &[T], b: Option<&[T]>) -> Vec<T> {
        conv::conv_data(&self.g, self.n, y, w, b, self.relu)
    }

    fn backward<T: Elem>(
        &self,
        y: &[T],
        w: &[T],
        gx: &[T],
        res: Option<&[T]>,
        need: Need,
    ) -> Grads<T> {
        conv::conv_t_bwd(&self.g, self.n, y, w, gx, res, need)
    }
}
