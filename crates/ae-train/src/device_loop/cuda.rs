//! A training step recorded once into a CUDA graph and replayed (builds with the `cuda`
//! feature). The host-side work of a step through candle (building the graph of ops,
//! allocating, launching a few hundred kernels) was the whole time of a step on an H200
//! (docs/performance.md); a replayed graph launches them all at once.
//!
//! Per batch size: the first step runs eagerly with candle's capture caches on (kernel
//! modules are loaded, the launch parameters of non-contiguous layouts uploaded and kept);
//! the second is recorded (`cuStreamBeginCapture` on the device's stream, thread-local mode)
//! and then launched; every later step is one launch. Every tensor the step makes is
//! dropped inside the recording, so the graph owns its scratch memory (its allocations and
//! frees are nodes of the graph); its results are written in place into buffers that live
//! for the whole run (the variables, Adam's moments, the index buffer, the loss sum).
//!
//! The step draws no host randomness (the VAE's noise is drawn before it and written to a
//! buffer, `super::DeviceLoop::step`). A step that CUDA refuses to record (an operation that
//! is not allowed while capturing) runs eagerly from then on, with a note on stderr and the
//! eager step's results.

use ae_models::Autoencoder;
use candle_core::cuda::CudaDevice;
use candle_core::cuda::cudarc::driver::{CudaGraph, sys};
use candle_core::{Device, Error as CandleError};

use super::StepBody;
use crate::adam::Adam;
use crate::{Result, TrainError};

/// Where one batch size's recording is.
pub(super) enum GraphState {
    /// Not on CUDA, or recording is off: every step runs eagerly.
    Off,
    /// No step of this size has run yet: the next one warms candle's caches.
    Cold(CudaDevice),
    /// Warmed: the next step is recorded.
    Warm(CudaDevice),
    /// Recorded: every step is one launch.
    Ready(CudaGraph),
}

impl GraphState {
    /// The state of a new batch size on `device`; `Off` unless `on` and a CUDA device.
    pub fn new(on: bool, device: &Device) -> Self {
        match (on, device) {
            (true, Device::Cuda(d)) => Self::Cold(d.clone()),
            _ => Self::Off,
        }
    }

    /// Whether steps of this size are replayed from a recording.
    pub fn is_recorded(&self) -> bool {
        matches!(self, Self::Ready(_))
    }

    /// Runs one step: eagerly, or recorded and launched, or replayed.
    pub fn run(
        &mut self,
        body: &StepBody<'_>,
        model: &dyn Autoencoder,
        adam: &mut Adam,
    ) -> Result<()> {
        match self {
            Self::Off => body.run(model, adam),
            Self::Cold(dev) => {
                let dev = dev.clone();
                {
                    let _cache = dev.enable_cuda_graph_htod_cache();
                    body.run(model, adam)?;
                }
                *self = Self::Warm(dev);
                Ok(())
            }
            Self::Warm(dev) => {
                let dev = dev.clone();
                match record(&dev, body, model, adam) {
                    Ok(graph) => {
                        graph.launch().map_err(cuda_err)?;
                        *self = Self::Ready(graph);
                        Ok(())
                    }
                    Err(why) => {
                        eprintln!(
                            "note: this training step cannot be recorded into a CUDA graph \
                             ({why}); it runs op by op (--no-cuda-graph says so up front)"
                        );
                        *self = Self::Off;
                        body.run(model, adam)
                    }
                }
            }
            Self::Ready(graph) => graph.launch().map_err(cuda_err),
        }
    }
}

/// Records one step into a graph, without running it. On failure nothing of the step has
/// run (a recording does not execute) and Adam's staged step is staged again.
fn record(
    dev: &CudaDevice,
    body: &StepBody<'_>,
    model: &dyn Autoencoder,
    adam: &mut Adam,
) -> std::result::Result<CudaGraph, String> {
    let stream = dev.cuda_stream();
    let _cache = dev.enable_cuda_graph_htod_cache();
    let restore = adam.staged_step();
    stream
        .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .map_err(|e| format!("begin capture: {e:?}"))?;
    let ran = body.run(model, adam);
    let ended = stream.end_capture(
        sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH,
    );
    let why = match (ran, ended) {
        (Ok(()), Ok(Some(graph))) => return Ok(graph),
        (Ok(()), Ok(None)) => "the capture recorded nothing".to_string(),
        (Err(e), _) => format!("{e}"),
        (Ok(()), Err(e)) => format!("end capture: {e:?}"),
    };
    adam.restage(restore);
    Err(why)
}

/// A CUDA driver error as the crate's error.
fn cuda_err(e: impl std::fmt::Debug) -> TrainError {
    TrainError::Candle(CandleError::Msg(format!("CUDA graph launch: {e:?}")))
}
