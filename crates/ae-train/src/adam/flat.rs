//! Adam's tensor path, what a GPU runs (and the CPU with the portable path forced,
//! `ae_kernels::portable`): the moments of every variable of one device and dtype end to end
//! in two flat buffers, so that a step launches a dozen element-wise kernels for all of them
//! instead of a dozen per variable (on a GPU each kernel costs a launch and an allocation:
//! Adam was a third of a dense step on an H200, docs/performance.md).
//!
//! A step writes its results **in place**: into the moment buffers and the variables, which
//! keep their storage for the whole run. The step's own scalars (the bias-corrected step size,
//! `1/c2`, the weight decay factor) are read from a small device buffer written before the
//! step ([`Group::stage`]), not baked into the kernels. So the device work of a step, once
//! staged, is the same every step: it can be recorded once into a CUDA graph and replayed
//! (`crate::device_loop`), and the moments can never hold a gradient's graph.

use ae_kernels::AdamStep;
use candle_core::{DType, Device, Tensor, Var};

use crate::Result;

/// The constants of every step (the betas and eps do not change during a run).
#[derive(Debug, Clone, Copy)]
pub(super) struct Consts {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Whether θ is decayed (AdamW); fixed by the config, so the step's kernels are too.
    pub decays: bool,
}

/// The moments of the variables of one device and dtype.
pub(super) struct Group {
    /// First moments of every member, end to end, `[len]`.
    pub m: Var,
    /// Second moments, `[len]`.
    pub v: Var,
    /// `[step_size, 1/c2, decay]` of the staged step, in the group's dtype.
    factors: Var,
    /// The slots whose moments live here, in order.
    pub members: Vec<usize>,
}

impl Group {
    /// Zero moments for `len` values.
    pub fn new(len: usize, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self {
            m: Var::zeros(len, dtype, device)?,
            v: Var::zeros(len, dtype, device)?,
            factors: Var::zeros(3, dtype, device)?,
            members: Vec::new(),
        })
    }

    /// Writes the scalars of step `s` into the device buffer the next [`Group::apply`] reads.
    pub fn stage(&self, s: &AdamStep) -> Result<()> {
        let (step_size, inv_c2, decay) = s.factors();
        let host = Tensor::from_vec(vec![step_size, inv_c2, decay], 3, &Device::Cpu)?
            .to_dtype(self.factors.dtype())?;
        self.factors.set(&host.to_device(self.factors.device())?)?;
        Ok(())
    }

    /// Replaces the moments by `m` and `v` (`[len]` each, copied in place).
    pub fn load(&self, m: &Tensor, v: &Tensor) -> Result<()> {
        self.m.set(m)?;
        self.v.set(v)?;
        Ok(())
    }

    /// Scalar `k` of the staged step, `[1]`.
    fn factor(&self, k: usize) -> Result<Tensor> {
        Ok(self.factors.as_tensor().narrow(0, k, 1)?)
    }

    /// The new moments and the update `step_size · m / (sqrt(v / c2) + eps)` from `g`.
    fn moments(
        &self,
        m: &Tensor,
        v: &Tensor,
        g: &Tensor,
        c: &Consts,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let m = ((m * c.beta1)? + (g * (1.0 - c.beta1))?)?;
        let v = ((v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
        let denom = (v.broadcast_mul(&self.factor(1)?)?.sqrt()? + c.eps)?;
        let update = (&m / &denom)?.broadcast_mul(&self.factor(0)?)?;
        Ok((m, v, update))
    }

    /// `θ ← decay·θ - update`, in place.
    fn set_var(&self, var: &Var, update: &Tensor, c: &Consts) -> Result<()> {
        let update = update.reshape(var.dims())?;
        let theta = match c.decays {
            true => var.as_tensor().broadcast_mul(&self.factor(2)?)?,
            false => var.as_tensor().clone(),
        };
        var.set(&(theta - update)?)?;
        Ok(())
    }

    /// One staged step of every member: `items` are the members' variables in order, each
    /// with its gradient this step (`None`: the variable and its moments stay as they are).
    pub fn apply(&self, items: &[(&Var, Option<Tensor>)], c: &Consts) -> Result<()> {
        if items.iter().all(|(_, g)| g.is_none()) {
            return Ok(());
        }
        if items.iter().all(|(_, g)| g.is_some()) {
            let flat: Vec<Tensor> = items
                .iter()
                .filter_map(|(_, g)| g.as_ref().map(Tensor::flatten_all))
                .collect::<candle_core::Result<_>>()?;
            let g = Tensor::cat(&flat, 0)?;
            let (m, v, update) = self.moments(self.m.as_tensor(), self.v.as_tensor(), &g, c)?;
            self.load(&m, &v)?;
            let mut offset = 0;
            for (var, _) in items {
                let len = var.elem_count();
                self.set_var(var, &update.narrow(0, offset, len)?, c)?;
                offset += len;
            }
            return Ok(());
        }
        // Some variable has no gradient this step: it and its moments stay as they are, so
        // the group is updated piece by piece.
        let (mut ms, mut vs) = (Vec::new(), Vec::new());
        let mut offset = 0;
        for (var, g) in items {
            let len = var.elem_count();
            let m = self.m.as_tensor().narrow(0, offset, len)?;
            let v = self.v.as_tensor().narrow(0, offset, len)?;
            offset += len;
            match g {
                Some(g) => {
                    let (m, v, u) = self.moments(&m, &v, &g.flatten_all()?, c)?;
                    self.set_var(var, &u, c)?;
                    ms.push(m);
                    vs.push(v);
                }
                None => {
                    ms.push(m.copy()?);
                    vs.push(v.copy()?);
                }
            }
        }
        self.load(&Tensor::cat(&ms, 0)?, &Tensor::cat(&vs, 0)?)
    }
}
