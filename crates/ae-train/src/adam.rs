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
/// fused pass (`ae_kernels::adam_update`) on the CPU, candle tensors elsewhere (and on the
/// CPU with the portable path forced: `ae_kernels::portable`).
enum Moments {
    Fused(AdamMoments),
    Tensors { m: Tensor, v: Tensor },
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
    step: u64,
}

impl Adam {
    /// Adam over `vars` (name, variable), zero moments, step 0.
    pub fn new(mut vars: Vec<(String, Var)>, cfg: AdamConfig) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let fused = ae_kernels::cpu_kernels(var.device())
                    .then(|| AdamMoments::zeros_for(var.as_tensor()))
                    .flatten();
                let moments = match fused {
                    Some(m) => Moments::Fused(m),
                    None => Moments::Tensors {
                        m: var.zeros_like()?,
                        v: var.zeros_like()?,
                    },
                };
                Ok(Slot { name, var, moments })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg,
            slots,
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
        let AdamStep {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } = step;
        // θ ← decay·θ - step_size · m / (sqrt(v / c2) + eps), as the fused kernel does.
        let (step_size, inv_c2, decay) = step.factors();
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let (m, v) = match &mut slot.moments {
                Moments::Fused(mo) => {
                    adam_update(slot.var.as_tensor(), g, mo, &step)?;
                    continue;
                }
                Moments::Tensors { m, v } => (m, v),
            };
            // candle detaches the gradients of intermediate nodes but not those of variables,
            // and a variable's gradient can carry the forward graph: a conv weight's is
            // `conv2d(input activation, grad)`, and the activation is tracked. Built from it,
            // the moments would hold that graph and, through `m = b1·m + ...`, every previous
            // step's: the memory of every step kept (the CUDA leak of the conv models).
            let g = &g.detach();
            *m = ((&*m * beta1)? + (g * (1.0 - beta1))?)?;
            *v = ((&*v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let denom = ((&*v * inv_c2)?.sqrt()? + eps)?;
            let update = ((&*m / &denom)? * step_size)?;
            let mut theta = slot.var.as_tensor().clone();
            if weight_decay != 0.0 {
                theta = (&theta * decay)?;
            }
            slot.var.set(&(theta - update)?)?;
        }
        Ok(())
    }

    /// One update from gradients held as plain values, `(the parameter's tensor,
    /// ∂loss/∂parameter)` (what `ae_kernels::step` returns). Variables without a
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
                Moments::Tensors { .. } => {
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
                Moments::Tensors { m, v } => (m.clone(), v.clone()),
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
            s.moments = match &s.moments {
                Moments::Fused(_) => {
                    Moments::Fused(AdamMoments::from_tensors(m, v, s.var.dtype())?)
                }
                Moments::Tensors { .. } => Moments::Tensors {
                    m: m.clone(),
                    v: v.clone(),
                },
            };
        }
        self.step = step;
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
