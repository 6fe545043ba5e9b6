//! Where an inference pass's time goes (encode, decode, output activation), per model
//! variant, over 10,000 seeded inputs in batches of 1,024 (the shape of `cargo xtask bench`'s
//! inference rows): `cargo run --release -p ae-benches --example infer_profile -- vanilla 5`.
//! Prints the minimum over the repetitions of each phase, in milliseconds per pass.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use ae_models::ModelKind;
use candle_core::{Device, Tensor};

fn main() {
    // SAFETY: first thing in main, before any thread exists.
    unsafe { ae_kernels::tune_candle_threads() };
    ae_kernels::tune_glibc_malloc();
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("vanilla");
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let model_kind: ModelKind = serde_json::from_value(serde_json::json!(kind)).unwrap();
    let dev = Device::Cpu;
    let (model, _vars) = ae_benches::model(model_kind).unwrap();
    let layout = model.input_layout();
    let batches: Vec<Tensor> = [1024usize; 9]
        .into_iter()
        .chain([784])
        .map(|n| {
            let v: Vec<f32> = (0..n * layout.dim())
                .map(|i| (i.wrapping_mul(2_654_435_761) % 1000) as f32 / 1000.0)
                .collect();
            Tensor::from_vec(v, layout.shape(n).as_slice(), &dev).unwrap()
        })
        .collect();
    let codes: Vec<Tensor> = batches.iter().map(|x| model.encode(x).unwrap()).collect();
    let logits: Vec<Tensor> = codes.iter().map(|z| model.decode(z).unwrap()).collect();
    let time = |f: &dyn Fn(usize)| {
        (0..reps + 1)
            .map(|_| {
                let t = Instant::now();
                (0..batches.len()).for_each(f);
                t.elapsed().as_secs_f64() * 1e3
            })
            .skip(1)
            .fold(f64::INFINITY, f64::min)
    };
    let enc = time(&|i| drop(model.encode(&batches[i]).unwrap()));
    let dec = time(&|i| drop(model.decode(&codes[i]).unwrap()));
    let out = time(&|i| drop(model.output(&logits[i]).unwrap()));
    let rec = time(&|i| drop(model.reconstruct(&batches[i]).unwrap()));
    println!(
        "{kind}: encode {enc:.2} ms, decode {dec:.2} ms, output {out:.2} ms, reconstruct {rec:.2} ms \
         ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}
