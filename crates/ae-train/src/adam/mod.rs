//! Adam (and AdamW when weight decay is set) over named candle variables, with
//! state that can be saved to and restored from safetensors for resuming.

use std::collections::HashMap;

use ae_kernels::{AdamMoments, AdamStep, adam_update_all, adam_update_slices};
use candle_core::{Tensor, Var, backprop::GradStore};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

mod flat;

use flat::{Consts, Group};

/// Adam's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay (0: plain Adam, as Keras and PyTorch default).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
        }
    }
}

/// The moments of one variable: plain vectors updated in place with the variable by one
/// fused pass (`ae_kernels::adam_update`) on the CPU; elsewhere (and on the CPU with the
/// portable path forced: `ae_kernels::portable`) a stretch of a [`Group`]'s flat tensors.
enum Moments {
    Fused(AdamMoments),
    /// In group `group`, elements `offset..offset + len`.
    Flat {
        group: usize,
        offset: usize,
        len: usize,
    },
}

struct Slot {
    name: String,
    var: Var,
    moments: Moments,
}

/// Adam over a fixed, name-sorted list of variables.
///
/// The update is the textbook one (Kingma & Ba) with bias correction:
/// `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g²`,
/// `θ -= lr · m̂ / (sqrt(v̂) + eps)`, plus `θ -= lr · wd · θ` when weight decay
/// is set (AdamW).
pub struct Adam {
    cfg: AdamConfig,
    slots: Vec<Slot>,
    groups: Vec<Group>,
    step: u64,
    /// The step [`Adam::stage`] counted, for [`Adam::apply_staged`].
    staged: Option<AdamStep>,
}

impl Adam {
    /// Adam over `vars` (name, variable), zero moments, step 0.
    pub fn new(mut vars: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kinds = Vec::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut sizes: Vec<usize> = Vec::new();
        let mut slots = Vec::with_capacity(vars.len());
        for (i, (name, var)) in vars.into_iter().enumerate() {
            let fused = ae_kernels::cpu_kernels(var.device())
                .then(|| AdamMoments::zeros_for(var.as_tensor()))
                .flatten();
            let moments = match fused {
                Some(m) => Moments::Fused(m),
                None => {
                    let group = match kinds.iter().position(
                        |(d, t): &(candle_core::Device, candle_core::DType)| {
                            d.same_device(var.device()) && *t == var.dtype()
                        },
                    ) {
                        Some(k) => k,
                        None => {
                            kinds.push((var.device().clone(), var.dtype()));
                            members.push(Vec::new());
                            sizes.push(0);
                            kinds.len() - 1
                        }
                    };
                    members[group].push(i);
                    let len = var.elem_count();
                    let offset = sizes[group];
                    sizes[group] += len;
                    Moments::Flat { group, offset, len }
                }
            };
            slots.push(Slot { name, var, moments });
        }
        let mut groups = Vec::with_capacity(kinds.len());
        for (((device, dtype), members), &n) in kinds.iter().zip(members).zip(&sizes) {
            let mut g = Group::new(n, *dtype, device)?;
            g.members = members;
            groups.push(g);
        }
        Ok(Self {
            cfg,
            slots,
            groups,
            step: 0,
            staged: None,
        })
    }

    /// The learning rate used by the next step.
    pub fn lr(&self) -> f64 {
        self.cfg.lr
    }

    /// Sets the learning rate of the next steps (the trainer calls this before every step).
    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Counts one more step and returns its scalars.
    fn advance(&mut self) -> AdamStep {
        self.step += 1;
        let c = self.cfg;
        AdamStep {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: c.weight_decay,
            t: self.step,
        }
    }

    /// One update from the gradients in `grads`. Variables without a gradient
    /// are left alone (their moments too). The same as [`Adam::stage`] then
    /// [`Adam::apply_staged`].
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.stage()?;
        self.apply_staged(grads)
    }

    /// Counts one more step at the current learning rate and writes its scalars where the
    /// next [`Adam::apply_staged`] reads them (for the tensor path, a small buffer on each
    /// device). A step recorded into a CUDA graph is staged like this before every replay.
    pub fn stage(&mut self) -> Result<()> {
        let step = self.advance();
        for g in &self.groups {
            g.stage(&step)?;
        }
        self.staged = Some(step);
        Ok(())
    }

    /// The step staged and not yet applied (to put back with [`Adam::restage`] when a
    /// recording of the step into a CUDA graph fails).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn staged_step(&self) -> Option<AdamStep> {
        self.staged
    }

    /// Puts back a staged step taken by [`Adam::staged_step`].
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn restage(&mut self, step: Option<AdamStep>) {
        self.staged = step;
    }

    /// The update of the step [`Adam::stage`] counted, from the gradients in `grads`.
    /// Variables without a gradient are left alone (their moments too). Off the CPU kernels
    /// every result is written in place, into the variables and the moment buffers, and the
    /// work is the same every step (the step's scalars are read from the device), so it can
    /// be recorded once into a CUDA graph and replayed after each [`Adam::stage`].
    pub fn apply_staged(&mut self, grads: &GradStore) -> Result<()> {
        let step = self.staged.take().ok_or_else(|| {
            TrainError::Mismatch("adam: apply_staged without a staged step".into())
        })?;
        // The CPU variables in one parallel pass (the same values as one update each).
        let mut params = Vec::new();
        for slot in &mut self.slots {
            if let Moments::Fused(mo) = &mut slot.moments
                && let Some(g) = grads.get(slot.var.as_tensor())
            {
                params.push((slot.var.as_tensor(), g, mo));
            }
        }
        adam_update_all(&mut params, &step)?;
        let consts = Consts {
            beta1: step.beta1,
            beta2: step.beta2,
            eps: step.eps,
            decays: step.weight_decay != 0.0,
        };
        for group in &self.groups {
            // candle detaches the gradients of intermediate nodes but not those of variables,
            // and a variable's gradient can carry the forward graph (a conv weight's is
            // `conv2d(input activation, grad)`). The group copies values in place, so nothing
            // of it is kept past the step (kept, it was the CUDA leak of the conv models).
            let items: Vec<(&Var, Option<Tensor>)> = group
                .members
                .iter()
                .map(|&i| {
                    let var = &self.slots[i].var;
                    (var, grads.get(var.as_tensor()).map(Tensor::detach))
                })
                .collect();
            group.apply(&items, &consts)?;
        }
        Ok(())
    }

    /// One update from gradients held as plain values, `(the parameter's tensor,
    /// ∂loss/∂parameter)` (what [`crate::fused`] returns). Variables without a
    /// gradient are left alone; a gradient for a tensor that is not one of the
    /// variables, or for a variable whose moments are not on the CPU in `f32`,
    /// is an error.
    pub fn step_slices(&mut self, grads: &[(Tensor, Vec<f32>)]) -> Result<()> {
        for (t, _) in grads {
            if !self.slots.iter().any(|s| s.var.as_tensor().id() == t.id()) {
                return Err(TrainError::Mismatch(format!(
                    "adam: a gradient for a tensor {:?} that is not one of the optimised variables",
                    t.dims()
                )));
            }
        }
        for slot in &self.slots {
            let id = slot.var.as_tensor().id();
            if matches!(slot.moments, Moments::Flat { .. })
                && grads.iter().any(|(t, _)| t.id() == id)
            {
                return Err(TrainError::Mismatch(format!(
                    "adam: '{}' is not a CPU f32/f64 variable, so it takes tensor gradients",
                    slot.name
                )));
            }
        }
        let step = self.advance();
        // Every variable in one parallel pass (the same values as one update per variable).
        let mut params = Vec::with_capacity(grads.len());
        for slot in &mut self.slots {
            let id = slot.var.as_tensor().id();
            if let Moments::Fused(mo) = &mut slot.moments
                && let Some((_, g)) = grads.iter().find(|(t, _)| t.id() == id)
            {
                params.push((slot.var.as_tensor(), g.as_slice(), mo));
            }
        }
        adam_update_slices(&mut params, &step)?;
        Ok(())
    }

    /// The moments as named tensors (`m.<name>`, `v.<name>`), to save.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for s in &self.slots {
            let (m, v) = match &s.moments {
                Moments::Fused(mo) => mo.to_tensors(s.var.dims())?,
                Moments::Flat { group, offset, len } => {
                    let g = &self.groups[*group];
                    let part = |t: &Var| -> candle_core::Result<Tensor> {
                        t.as_tensor()
                            .narrow(0, *offset, *len)?
                            .reshape(s.var.dims())?
                            .copy()
                            .map(|t| t.detach())
                    };
                    (part(&g.m)?, part(&g.v)?)
                }
            };
            out.insert(format!("m.{}", s.name), m);
            out.insert(format!("v.{}", s.name), v);
        }
        Ok(out)
    }

    /// Restores the moments saved by [`Adam::state_tensors`] and the step count.
    /// Every variable must be present with its shape; `what` names the source in errors.
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        step: u64,
        what: &str,
    ) -> Result<()> {
        let mut flat: Vec<(Vec<Tensor>, Vec<Tensor>)> = self
            .groups
            .iter()
            .map(|_| (Vec::new(), Vec::new()))
            .collect();
        for s in &mut self.slots {
            let mut loaded = Vec::with_capacity(2);
            for prefix in ["m", "v"] {
                let key = format!("{prefix}.{}", s.name);
                let t = tensors.get(&key).ok_or_else(|| TrainError::Checkpoint {
                    path: what.into(),
                    message: format!("optimizer state has no tensor '{key}'"),
                })?;
                if t.dims() != s.var.dims() {
                    return Err(TrainError::Checkpoint {
                        path: what.into(),
                        message: format!(
                            "optimizer tensor '{key}' has shape {:?}, the model needs {:?}",
                            t.dims(),
                            s.var.dims()
                        ),
                    });
                }
                loaded.push(t.to_device(s.var.device())?.to_dtype(s.var.dtype())?);
            }
            let (m, v) = (&loaded[0], &loaded[1]);
            match &s.moments {
                Moments::Fused(_) => {
                    s.moments = Moments::Fused(AdamMoments::from_tensors(m, v, s.var.dtype())?);
                }
                Moments::Flat { group, .. } => {
                    // Members are in slot order, as the offsets were given out.
                    flat[*group].0.push(m.flatten_all()?);
                    flat[*group].1.push(v.flatten_all()?);
                }
            }
        }
        for (g, (ms, vs)) in self.groups.iter().zip(flat) {
            if !ms.is_empty() {
                g.load(&Tensor::cat(&ms, 0)?, &Tensor::cat(&vs, 0)?)?;
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
