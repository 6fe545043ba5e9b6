//! Adam (and AdamW when weight decay is set) over named candle variables, with
//! state that can be saved to and restored from safetensors for resuming.

use std::collections::HashMap;

use ae_kernels::{AdamMoments, AdamStep, adam_update, adam_update_slice};
use candle_core::{Tensor, Var, backprop::GradStore};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

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

/// The moments of every variable of one device and dtype, end to end in two flat tensors,
/// so that a step launches a dozen element-wise kernels for all of them instead of a dozen
/// per variable (on a GPU each kernel costs a launch and an allocation: Adam was a third
/// of a dense step on an H200, docs/performance.md).
struct Group {
    m: Tensor,
    v: Tensor,
    /// The slots whose moments live here, in order.
    members: Vec<usize>,
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
}

impl Adam {
    /// Adam over `vars` (name, variable), zero moments, step 0.
    pub fn new(mut vars: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut groups: Vec<Group> = Vec::new();
        let mut sizes: Vec<usize> = Vec::new();
        let mut slots = Vec::with_capacity(vars.len());
        for (i, (name, var)) in vars.into_iter().enumerate() {
            let fused = ae_kernels::cpu_kernels(var.device())
                .then(|| AdamMoments::zeros_for(var.as_tensor()))
                .flatten();
            let moments = match fused {
                Some(m) => Moments::Fused(m),
                None => {
                    let same = |g: &Group| {
                        g.m.device().same_device(var.device()) && g.m.dtype() == var.dtype()
                    };
                    let group = match groups.iter().position(same) {
                        Some(k) => k,
                        None => {
                            let z = Tensor::zeros(0, var.dtype(), var.device())?;
                            groups.push(Group {
                                m: z.clone(),
                                v: z,
                                members: Vec::new(),
                            });
                            sizes.push(0);
                            groups.len() - 1
                        }
                    };
                    groups[group].members.push(i);
                    let len = var.elem_count();
                    let offset = sizes[group];
                    sizes[group] += len;
                    Moments::Flat { group, offset, len }
                }
            };
            slots.push(Slot { name, var, moments });
        }
        for (g, &n) in groups.iter_mut().zip(&sizes) {
            g.m = Tensor::zeros(n, g.m.dtype(), g.m.device())?;
            g.v = g.m.zeros_like()?;
        }
        Ok(Self {
            cfg,
            slots,
            groups,
            step: 0,
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
    /// are left alone (their moments too).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let step = self.advance();
        // θ ← decay·θ - step_size · m / (sqrt(v / c2) + eps), as the fused kernel does.
        let f = Factors::new(&step);
        for slot in &mut self.slots {
            if let Moments::Fused(mo) = &mut slot.moments
                && let Some(g) = grads.get(slot.var.as_tensor())
            {
                adam_update(slot.var.as_tensor(), g, mo, &step)?;
            }
        }
        for group in &mut self.groups {
            // candle detaches the gradients of intermediate nodes but not those of variables,
            // and a variable's gradient can carry the forward graph: a conv weight's is
            // `conv2d(input activation, grad)`, and the activation is tracked. Built from it,
            // the moments would hold that graph and, through `m = b1·m + ...`, every previous
            // step's: the memory of every step kept (the CUDA leak of the conv models).
            let gs: Vec<Option<Tensor>> = group
                .members
                .iter()
                .map(|&i| grads.get(self.slots[i].var.as_tensor()).map(Tensor::detach))
                .collect();
            if gs.iter().all(Option::is_some) {
                let flat: Vec<Tensor> = gs
                    .iter()
                    .flatten()
                    .map(Tensor::flatten_all)
                    .collect::<candle_core::Result<_>>()?;
                let g = Tensor::cat(&flat, 0)?;
                let update;
                (group.m, group.v, update) = f.apply(&group.m, &group.v, &g)?;
                for &i in &group.members {
                    let slot = &self.slots[i];
                    if let Moments::Flat { offset, len, .. } = slot.moments {
                        let u = update.narrow(0, offset, len)?.reshape(slot.var.dims())?;
                        f.set(&slot.var, &u)?;
                    }
                }
            } else {
                // Some variable has no gradient this step: it and its moments stay as they
                // are, so the group is updated piece by piece.
                let (mut ms, mut vs) = (Vec::new(), Vec::new());
                for (&i, g) in group.members.iter().zip(&gs) {
                    let slot = &self.slots[i];
                    let Moments::Flat { offset, len, .. } = slot.moments else {
                        continue;
                    };
                    let m = group.m.narrow(0, offset, len)?;
                    let v = group.v.narrow(0, offset, len)?;
                    match g {
                        Some(g) => {
                            let (m, v, u) = f.apply(&m, &v, &g.flatten_all()?)?;
                            f.set(&slot.var, &u.reshape(slot.var.dims())?)?;
                            ms.push(m);
                            vs.push(v);
                        }
                        None => {
                            ms.push(m);
                            vs.push(v);
                        }
                    }
                }
                group.m = Tensor::cat(&ms, 0)?;
                group.v = Tensor::cat(&vs, 0)?;
            }
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
        let step = self.advance();
        for slot in &mut self.slots {
            let id = slot.var.as_tensor().id();
            let Some((_, g)) = grads.iter().find(|(t, _)| t.id() == id) else {
                continue;
            };
            match &mut slot.moments {
                Moments::Fused(mo) => adam_update_slice(slot.var.as_tensor(), g, mo, &step)?,
                Moments::Flat { .. } => {
                    return Err(TrainError::Mismatch(format!(
                        "adam: '{}' is not a CPU f32/f64 variable, so it takes tensor gradients",
                        slot.name
                    )));
                }
            }
        }
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
                    let part = |t: &Tensor| -> candle_core::Result<Tensor> {
                        t.narrow(0, *offset, *len)?.reshape(s.var.dims())?.copy()
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
        for (g, (ms, vs)) in self.groups.iter_mut().zip(flat) {
            g.m = Tensor::cat(&ms, 0)?;
            g.v = Tensor::cat(&vs, 0)?;
        }
        self.step = step;
        Ok(())
    }
}

/// One step's scalars for the tensor path.
struct Factors {
    beta1: f64,
    beta2: f64,
    eps: f64,
    step_size: f64,
    inv_c2: f64,
    /// `1 - lr·wd`; exactly 1 without weight decay.
    decay: f64,
}

impl Factors {
    fn new(s: &AdamStep) -> Self {
        let (step_size, inv_c2, decay) = s.factors();
        Self {
            beta1: s.beta1,
            beta2: s.beta2,
            eps: s.eps,
            step_size,
            inv_c2,
            decay: if s.weight_decay != 0.0 { decay } else { 1.0 },
        }
    }

    /// The new moments and the update `step_size · m / (sqrt(v / c2) + eps)` from `g`.
    fn apply(&self, m: &Tensor, v: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let m = ((m * self.beta1)? + (g * (1.0 - self.beta1))?)?;
        let v = ((v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
        let denom = ((&v * self.inv_c2)?.sqrt()? + self.eps)?;
        let update = ((&m / &denom)? * self.step_size)?;
        Ok((m, v, update))
    }

    /// `θ ← decay·θ - update`.
    fn set(&self, var: &Var, update: &Tensor) -> Result<()> {
        let mut theta = var.as_tensor().clone();
        if self.decay != 1.0 {
            theta = (&theta * self.decay)?;
        }
        var.set(&(theta - update)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn moments_built_from_a_tracked_gradient_hold_no_graph() {
        // d(x·y)/dx = y, a variable: candle hands back a gradient that tracks it (as a conv
        // weight's gradient tracks the forward graph). The moments must not.
        let dev = Device::Cpu;
        let x = Var::new(&[1f32, 2.0], &dev).unwrap();
        let y = Var::new(&[3f32, -1.0], &dev).unwrap();
        let vars = vec![("x".to_string(), x.clone()), ("y".to_string(), y.clone())];
        // The tensor moments (what a GPU uses): the portable path on the CPU.
        let mut adam =
            ae_kernels::with_portable(true, || Adam::new(vars, AdamConfig::default())).unwrap();
        for _ in 0..3 {
            let grads = (x.as_tensor() * y.as_tensor())
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            assert!(grads.get(x.as_tensor()).unwrap().track_op());
            adam.step(&grads).unwrap();
        }
        let state = adam.state_tensors().unwrap();
        assert_eq!(state.len(), 4);
        for (name, t) in &state {
            assert!(!t.track_op(), "{name} holds a graph");
        }
    }

    /// Minimises (θ - 3)² and checks the first step against Adam's closed form.
    #[test]
    fn first_step_moves_by_lr_and_converges() {
        let dev = Device::Cpu;
        let var = Var::from_tensor(&Tensor::new(&[0.0f32], &dev).unwrap()).unwrap();
        let cfg = AdamConfig {
            lr: 0.1,
            ..Default::default()
        };
        let mut opt = Adam::new(vec![("w".into(), var.clone())], cfg).unwrap();
        for i in 0..500 {
            let loss = (var.as_tensor() - 3.0)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads).unwrap();
            if i == 0 {
                // m̂ / sqrt(v̂) = sign(g) on the first step: θ moves by lr exactly.
                let w = var.as_tensor().to_vec1::<f32>().unwrap()[0];
                assert!((w - 0.1).abs() < 1e-5, "{w}");
            }
        }
        let w = var.as_tensor().to_vec1::<f32>().unwrap()[0];
        assert!((w - 3.0).abs() < 1e-2, "{w}");
        assert_eq!(opt.step_count(), 500);
    }

    #[test]
    fn weight_decay_is_decoupled_from_the_adam_step() {
        let dev = Device::Cpu;
        let var = Var::ones(2, DType::F32, &dev).unwrap();
        let cfg = AdamConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..Default::default()
        };
        let mut opt = Adam::new(vec![("w".into(), var.clone())], cfg).unwrap();
        // g = 1: Adam's first step moves by lr (0.1), the decay by lr*wd*θ (0.05).
        let loss = var.as_tensor().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        let w = var.as_tensor().to_vec1::<f32>().unwrap();
        assert!((w[0] - 0.85).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let dev = Device::Cpu;
        let run = |split: bool| -> Vec<f32> {
            let var = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0], &dev).unwrap()).unwrap();
            let mut opt =
                Adam::new(vec![("w".into(), var.clone())], AdamConfig::default()).unwrap();
            for i in 0..10 {
                if split && i == 5 {
                    let state = opt.state_tensors().unwrap();
                    let step = opt.step_count();
                    opt =
                        Adam::new(vec![("w".into(), var.clone())], AdamConfig::default()).unwrap();
                    opt.load_state(&state, step, "mem").unwrap();
                }
                let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
                opt.step(&loss.backward().unwrap()).unwrap();
            }
            var.as_tensor().to_vec1::<f32>().unwrap()
        };
        assert_eq!(run(false), run(true));
    }

    /// The flat tensor path (what a GPU runs) gives the CPU kernel's result, with a variable
    /// that misses its gradient on some steps, across a save and restore.
    #[test]
    fn flat_moments_match_the_cpu_kernel() {
        let dev = Device::Cpu;
        let run = |portable: bool| -> Vec<Vec<f32>> {
            ae_kernels::with_portable(portable, || {
                let a = Var::new(&[[1f32, -2.0], [0.5, 3.0]], &dev).unwrap();
                let b = Var::new(&[0.25f32, -0.75, 2.0], &dev).unwrap();
                let c = Var::new(&[4f32], &dev).unwrap();
                let vars = || {
                    vec![
                        ("a".to_string(), a.clone()),
                        ("b".to_string(), b.clone()),
                        ("c".to_string(), c.clone()),
                    ]
                };
                let cfg = AdamConfig {
                    lr: 0.05,
                    weight_decay: 0.1,
                    ..Default::default()
                };
                let mut opt = Adam::new(vars(), cfg).unwrap();
                for i in 0..12 {
                    if i == 6 {
                        let (state, step) = (opt.state_tensors().unwrap(), opt.step_count());
                        opt = Adam::new(vars(), cfg).unwrap();
                        opt.load_state(&state, step, "mem").unwrap();
                    }
                    let mut loss = (a.as_tensor().sqr().unwrap().sum_all().unwrap()
                        + (b.as_tensor() * 3.0)
                            .unwrap()
                            .sin()
                            .unwrap()
                            .sum_all()
                            .unwrap())
                    .unwrap();
                    if i % 3 != 0 {
                        // c gets a gradient on two steps of three.
                        loss = (loss + c.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
                    }
                    opt.step(&loss.backward().unwrap()).unwrap();
                }
                [&a, &b, &c]
                    .iter()
                    .map(|v| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
                    .collect()
            })
        };
        let (kernel, flat) = (run(false), run(true));
        assert_ne!(kernel[2], vec![4f32], "c moved");
        for (k, f) in kernel.iter().zip(&flat) {
            for (x, y) in k.iter().zip(f) {
                assert!((x - y).abs() <= 1e-6 * x.abs().max(1.0), "{k:?} vs {f:?}");
            }
        }
    }

    #[test]
    fn missing_state_is_named() {
        let dev = Device::Cpu;
        let var = Var::ones(2, DType::F32, &dev).unwrap();
        let mut opt = Adam::new(vec![("enc.w".into(), var)], AdamConfig::default()).unwrap();
        let err = opt
            .load_state(&HashMap::new(), 3, "opt.safetensors")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("opt.safetensors") && err.contains("m.enc.w"),
            "{err}"
        );
    }
}
