//! candle custom ops wrapping the [`crate::cpu`] kernels, with their backward passes.
//!
//! * [`ConvOp`]: image, weight (, bias) -> output (a convolution).
//! * [`DataOp`]: output, weight (, bias) -> image (a transposed convolution).
//!
//! Each backward pass computes all the gradients it needs in one fused pass over the images
//! ([`cpu::conv_bwd`], [`cpu::conv_t_bwd`]) and returns plain tensors: gradients are first
//! order only.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Storage, Tensor, bail,
};

use crate::cpu::{self, Elem, Geom, Need};

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
    kernel: impl FnOnce(&[&[T]]) -> cpu::Grads<T>,
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

/// Which kind of fused backward pass to run.
#[derive(Clone, Copy, Debug)]
enum Pass {
    /// [`cpu::conv_bwd`].
    Conv,
    /// [`cpu::conv_t_bwd`].
    ConvT,
}

/// Gradients of a [`ConvOp`] / [`DataOp`] w.r.t. `(first, w, b)` given the gradient of its
/// output `res` (which the backward pass reads only when a ReLU is fused).
#[allow(clippy::too_many_arguments)]
fn grads(
    pass: Pass,
    g: Geom,
    n: usize,
    relu: bool,
    first: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    res: &Tensor,
    grad: &Tensor,
) -> Result<[Option<Tensor>; 3]> {
    let need = Need {
        input: first.track_op(),
        weight: w.track_op(),
        bias: b.is_some_and(|b| b.track_op()),
    };
    if !(need.input || need.weight || need.bias) {
        return Ok([None, None, None]);
    }
    let grad = grad.contiguous()?;
    let img = [n, g.c, g.h, g.w];
    let out = [n, g.o, g.ho, g.wo];
    let wd = [g.o, g.c, g.kh, g.kw];
    let (first_dims, grad_dims, bias_len) = match pass {
        Pass::Conv => (img, out, g.o),
        Pass::ConvT => (out, img, g.c),
    };
    let mut inputs: Vec<(&Tensor, &[usize])> =
        vec![(first, &first_dims), (w, &wd), (&grad, &grad_dims)];
    if relu {
        inputs.push((res, &grad_dims));
    }
    let shapes: [&[usize]; 3] = [&first_dims, &wd, &[bias_len]];
    macro_rules! run {
        ($t:ty) => {
            backward::<$t>("conv backward", &inputs, shapes, |d| {
                let res = d.get(3).copied();
                match pass {
                    Pass::Conv => cpu::conv_bwd(&g, n, d[0], d[1], d[2], res, need),
                    Pass::ConvT => cpu::conv_t_bwd(&g, n, d[0], d[1], d[2], res, need),
                }
            })
        };
    }
    match first.dtype() {
        DType::F32 => run!(f32),
        DType::F64 => run!(f64),
        dt => bail!("ae-kernels conv backward: unsupported dtype {dt:?}"),
    }
}

/// Convolution: `image [n, c, h, w]`, `weight [o, c, kh, kw]` (, `bias [o]`) ->
/// `[n, o, ho, wo]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvOp {
    pub g: Geom,
    pub n: usize,
    /// Whether a ReLU is fused after the bias.
    pub relu: bool,
}

impl ConvOp {
    fn run<T: StorageElem>(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let name = "conv2d";
        let x = data::<T>(name, x.0, x.1, &[self.n, g.c, g.h, g.w])?;
        let w = data::<T>(name, w.0, w.1, &[g.o, g.c, g.kh, g.kw])?;
        let b = match b {
            Some((s, l)) => Some(data::<T>(name, s, l, &[g.o])?),
            None => None,
        };
        let y = cpu::conv_fwd(g, self.n, x, w, b, self.relu);
        Ok((T::storage(y), Shape::from((self.n, g.o, g.ho, g.wo))))
    }

    fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        match x.0.dtype() {
            DType::F32 => self.run::<f32>(x, w, b),
            DType::F64 => self.run::<f64>(x, w, b),
            dt => bail!("ae-kernels conv2d: unsupported dtype {dt:?}"),
        }
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "ae-conv2d"
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
        let [gx, gw, _] = grads(Pass::Conv, self.g, self.n, self.relu, x, w, None, res, gy)?;
        Ok((gx, gw))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "ae-conv2d-bias"
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
        let [gx, gw, gb] = grads(
            Pass::Conv,
            self.g,
            self.n,
            self.relu,
            x,
            w,
            Some(b),
            res,
            gy,
        )?;
        Ok((gx, gw, gb))
    }
}

/// Transposed convolution (the adjoint of [`ConvOp`] w.r.t. its image):
/// `y [n, o, ho, wo]`, `weight [o, c, kh, kw]` (, `bias [c]`) -> `[n, c, h, w]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DataOp {
    pub g: Geom,
    pub n: usize,
    /// Whether a ReLU is fused after the bias.
    pub relu: bool,
}

impl DataOp {
    fn run<T: StorageElem>(
        &self,
        y: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let name = "conv_transpose2d";
        let y = data::<T>(name, y.0, y.1, &[self.n, g.o, g.ho, g.wo])?;
        let w = data::<T>(name, w.0, w.1, &[g.o, g.c, g.kh, g.kw])?;
        let b = match b {
            Some((s, l)) => Some(data::<T>(name, s, l, &[g.c])?),
            None => None,
        };
        let x = cpu::conv_data(g, self.n, y, w, b, self.relu);
        Ok((T::storage(x), Shape::from((self.n, g.c, g.h, g.w))))
    }

    fn fwd(
        &self,
        y: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        match y.0.dtype() {
            DType::F32 => self.run::<f32>(y, w, b),
            DType::F64 => self.run::<f64>(y, w, b),
            dt => bail!("ae-kernels conv_transpose2d: unsupported dtype {dt:?}"),
        }
    }
}

impl CustomOp2 for DataOp {
    fn name(&self) -> &'static str {
        "ae-conv-transpose2d"
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
        y: &Tensor,
        w: &Tensor,
        res: &Tensor,
        gx: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [gy, gw, _] = grads(Pass::ConvT, self.g, self.n, self.relu, y, w, None, res, gx)?;
        Ok((gy, gw))
    }
}

impl CustomOp3 for DataOp {
    fn name(&self) -> &'static str {
        "ae-conv-transpose2d-bias"
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
        y: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        gx: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [gy, gw, gb] = grads(
            Pass::ConvT,
            self.g,
            self.n,
            self.relu,
            y,
            w,
            Some(b),
            res,
            gx,
        )?;
        Ok((gy, gw, gb))
    }
}
