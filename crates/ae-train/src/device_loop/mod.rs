//! The training loop's steps when the training set lives on the model's device (a GPU, or
//! the CPU's portable path, `ae_kernels::portable`): each batch is gathered there by index,
//! the step's loss is added into a sum on the device, read once per epoch, and nothing else
//! crosses between host and device but the batch's row numbers and Adam's step scalars.
//!
//! The device work of a step is the same every step: the batch's rows come from a fixed
//! index buffer (one per batch size), Adam writes in place and reads its step scalars from
//! the device ([`Adam::stage`]), the loss sum is updated in place. On CUDA that lets the
//! whole step (gather, forward, loss, backward, update: a few hundred kernel launches, whose
//! host-side cost was the time of a step on an H200) be recorded once into a CUDA graph and
//! replayed with one launch ([`cuda`]). The VAE's noise is drawn on the host as before and
//! written to a fixed buffer per step ([`Autoencoder::draw_noise`]). A step CUDA refuses to
//! record runs eagerly, with the same results.

use ae_data::rng::AeRng;
use ae_models::Autoencoder;
use candle_core::{DType, Device, Tensor, Var};

use crate::adam::Adam;
use crate::{Result, TrainError};

#[cfg(feature = "cuda")]
mod cuda;

/// One batch size's fixed buffers (and, on CUDA, its recorded step).
struct Slot {
    rows: usize,
    /// The batch's row numbers in the training set, `u32 [rows]`, rewritten every step.
    idx: Var,
    /// The step's noise (the VAE's `eps`, drawn on the host), rewritten every step.
    eps: Option<Var>,
    #[cfg(feature = "cuda")]
    graph: cuda::GraphState,
}

/// The training set on the device and the buffers its steps use: what [`crate::train`] runs
/// off the CPU kernels for models without input noise.
pub struct DeviceLoop {
    /// The training set, `[N, ...]` in the model's input layout.
    images: Tensor,
    /// Sum over the epoch's steps of the batch loss times the batch's rows, `f32 [1]`.
    loss_sum: Var,
    slots: Vec<Slot>,
    /// Record steps into CUDA graphs where the device is a CUDA device.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    graphs: bool,
}

impl DeviceLoop {
    /// A loop over `images` (`[N, ...]` in the model's input layout, on the model's device);
    /// `graphs` asks for CUDA graphs (ignored on other devices).
    pub fn new(images: Tensor, graphs: bool) -> Result<Self> {
        let loss_sum = Var::zeros(1, DType::F32, images.device())?;
        Ok(Self {
            images,
            loss_sum,
            slots: Vec::new(),
            graphs,
        })
    }

    /// The device.
    fn device(&self) -> &Device {
        self.images.device()
    }

    /// The slot of batches of `rows` rows, made on first use.
    fn slot(&mut self, rows: usize) -> Result<usize> {
        if let Some(k) = self.slots.iter().position(|s| s.rows == rows) {
            return Ok(k);
        }
        let idx = Var::zeros(rows, DType::U32, self.device())?;
        self.slots.push(Slot {
            rows,
            idx,
            eps: None,
            #[cfg(feature = "cuda")]
            graph: cuda::GraphState::new(self.graphs, self.device()),
        });
        Ok(self.slots.len() - 1)
    }

    /// One training step on the rows `idx` of the training set: Adam's step is staged
    /// (counted, its scalars written to the device), the rows written to the batch size's
    /// index buffer, then the step's device work runs (replayed from a CUDA graph where one
    /// is recorded). The VAE's noise is drawn from `rng`, as a training forward pass draws it.
    pub fn step(
        &mut self,
        model: &dyn Autoencoder,
        adam: &mut Adam,
        idx: &[usize],
        rng: &mut AeRng,
    ) -> Result<()> {
        let n = self.images.dim(0)?;
        if idx.is_empty() {
            return Err(TrainError::Mismatch(
                "a training step needs at least one row".into(),
            ));
        }
        if let Some(&bad) = idx.iter().find(|&&i| i >= n) {
            // Checked here: a GPU's gather does not check its indices.
            return Err(TrainError::Mismatch(format!(
                "batch row {bad} is past the training set's {n} rows"
            )));
        }
        let rows = idx
            .iter()
            .map(|&i| u32::try_from(i))
            .collect::<std::result::Result<Vec<u32>, _>>()
            .map_err(|_| TrainError::Mismatch("a batch index does not fit in u32".into()))?;
        let k = self.slot(rows.len())?;
        self.slots[k]
            .idx
            .set(&Tensor::from_vec(rows, idx.len(), self.device())?)?;
        if let Some(eps) = model.draw_noise(idx.len(), rng, self.device())? {
            match &self.slots[k].eps {
                Some(buf) => buf.set(&eps)?,
                // `from_tensor` copies a tensor that is not a variable into a new buffer.
                None => self.slots[k].eps = Some(Var::from_tensor(&eps)?),
            }
        }
        adam.stage()?;
        let slot = &mut self.slots[k];
        let body = StepBody {
            images: &self.images,
            idx: slot.idx.as_tensor(),
            eps: slot.eps.as_ref().map(Var::as_tensor),
            loss_sum: &self.loss_sum,
        };
        #[cfg(feature = "cuda")]
        return slot.graph.run(&body, model, adam);
        #[cfg(not(feature = "cuda"))]
        body.run(model, adam)
    }

    /// How many batch sizes' steps are replayed from a recorded CUDA graph (0 off CUDA).
    pub fn graphs_recorded(&self) -> usize {
        #[cfg(feature = "cuda")]
        return self.slots.iter().filter(|s| s.graph.is_recorded()).count();
        #[cfg(not(feature = "cuda"))]
        0
    }

    /// The epoch's loss sum (read from the device: the one synchronisation of an epoch),
    /// set back to zero for the next.
    pub fn take_loss_sum(&mut self) -> Result<f64> {
        let sum = self.loss_sum.as_tensor().to_vec1::<f32>()?[0];
        self.loss_sum
            .set(&Tensor::zeros(1, DType::F32, self.device())?)?;
        Ok(f64::from(sum))
    }
}

/// What a step computes on the device once Adam is staged and the index buffer written.
struct StepBody<'a> {
    images: &'a Tensor,
    idx: &'a Tensor,
    eps: Option<&'a Tensor>,
    loss_sum: &'a Var,
}

impl StepBody<'_> {
    /// Gather, forward, loss, backward, Adam's staged update, and the loss added to the sum;
    /// every tensor it makes is dropped before it returns, and every result is written in
    /// place (what recording it into a CUDA graph needs).
    fn run(&self, model: &dyn Autoencoder, adam: &mut Adam) -> Result<()> {
        let x = self.images.index_select(self.idx, 0)?;
        let out = model.forward_with_noise(&x, self.eps)?;
        let parts = model.loss(&out, &x)?;
        adam.apply_staged(&parts.total.backward()?)?;
        let rows = self.idx.dim(0)? as f64;
        let weighted = parts
            .total
            .detach()
            .affine(rows, 0.0)?
            .to_dtype(DType::F32)?
            .reshape(1)?;
        self.loss_sum
            .set(&(self.loss_sum.as_tensor() + weighted)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adam::AdamConfig;
    use crate::checkpoint::named_vars;
    use crate::trainer::train_step_on_device;
    use ae_models::{ConvConfig, DenseConfig, ImageShape, ModelConfig, VaeConfig};

    /// Rows past the set and empty batches are refused before anything reaches the device.
    #[test]
    fn bad_batches_are_refused() {
        let input = ImageShape::new(1, 12, 12);
        let cfg = ModelConfig::Vanilla(DenseConfig::for_input(input));
        let dev = Device::Cpu;
        let (model, varmap) =
            ae_models::init::seeded_model(&cfg, &dev, &mut ae_data::rng::seeded(0)).unwrap();
        let mut adam = Adam::new(named_vars(&varmap), AdamConfig::default()).unwrap();
        let images = Tensor::zeros((5, 144), DType::F32, &dev).unwrap();
        let mut dl = DeviceLoop::new(images, true).unwrap();
        let mut rng = ae_data::rng::seeded(1);
        let err = dl
            .step(model.as_ref(), &mut adam, &[0, 5], &mut rng)
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 5") && err.contains("5 rows"), "{err}");
        assert!(dl.step(model.as_ref(), &mut adam, &[], &mut rng).is_err());
        assert_eq!(adam.step_count(), 0, "nothing was staged");
        dl.step(model.as_ref(), &mut adam, &[4, 0], &mut rng)
            .unwrap();
        assert_eq!(adam.step_count(), 1);
    }

    /// The loop's steps (index buffer, staged Adam, the loss summed on the device) train
    /// exactly as a step on a batch handed over whole, on the portable path (what a GPU
    /// runs), for a dense and a conv model and the VAE (its noise drawn before the step, the
    /// same draws), with a last batch of another size.
    #[test]
    fn loop_steps_match_whole_batch_steps() {
        let input = ImageShape::new(1, 12, 12);
        let cfgs = [
            ModelConfig::Vanilla(DenseConfig::for_input(input)),
            ModelConfig::Vae(VaeConfig::for_input(input)),
            ModelConfig::Conv(ConvConfig {
                input,
                channels: vec![3, 4],
                kernel: 3,
                ..ConvConfig::default()
            }),
        ];
        let dev = Device::Cpu;
        let n = 14;
        let data: Vec<f32> = (0..n * 144)
            .map(|i| ((i * 37) % 97) as f32 / 96.0)
            .collect();
        let batches: Vec<Vec<usize>> = vec![
            vec![3, 0, 7, 9, 1, 12],
            vec![2, 13, 4, 5, 11, 6],
            vec![8, 10],
        ];
        for cfg in &cfgs {
            let run = |looped: bool| -> (Vec<Vec<f32>>, f64) {
                ae_kernels::with_portable(true, || {
                    let (model, varmap) =
                        ae_models::init::seeded_model(cfg, &dev, &mut ae_data::rng::seeded(0))
                            .unwrap();
                    let shape = model.input_layout().shape(n);
                    let images = Tensor::from_slice(&data, shape.as_slice(), &dev).unwrap();
                    let mut adam = Adam::new(named_vars(&varmap), AdamConfig::default()).unwrap();
                    let mut rng = ae_data::rng::seeded(1);
                    let mut dl = DeviceLoop::new(images.clone(), true).unwrap();
                    let mut sum = 0f64;
                    for _epoch in 0..2 {
                        for idx in &batches {
                            if looped {
                                dl.step(model.as_ref(), &mut adam, idx, &mut rng).unwrap();
                            } else {
                                let rows: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
                                let rows = Tensor::new(rows.as_slice(), &dev).unwrap();
                                let x = images.index_select(&rows, 0).unwrap();
                                let loss = train_step_on_device(
                                    model.as_ref(),
                                    &mut adam,
                                    &x,
                                    &x,
                                    &mut rng,
                                )
                                .unwrap();
                                sum +=
                                    f64::from(loss.to_scalar::<f32>().unwrap()) * idx.len() as f64;
                            }
                        }
                        if looped {
                            sum += dl.take_loss_sum().unwrap();
                        }
                    }
                    let weights = named_vars(&varmap)
                        .iter()
                        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
                        .collect();
                    (weights, sum)
                })
            };
            let (whole, sum_whole) = run(false);
            let (looped, sum_looped) = run(true);
            assert_eq!(whole, looped, "{cfg:?}: weights differ");
            assert!(
                (sum_whole - sum_looped).abs() <= 1e-5 * sum_whole,
                "{sum_whole} vs {sum_looped}"
            );
        }
    }
}
