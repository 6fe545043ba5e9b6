//! Parameters: tensor names and shapes (checked against docs/models.md),
//! counts, and the seeded initialisation.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

mod common;

use ae_models::init::{fan_sum, glorot_limit, named_shapes, param_count, seeded_init};
use ae_models::{ConvConfig, ImageShape, ModelConfig, ModelKind, VaeArch, VaeConfig};
use candle_core::{DType, Tensor};
use candle_nn::VarMap;

/// The default models whose tensors docs/models.md lists, with their titles there.
fn documented_models() -> Vec<(&'static str, ModelConfig)> {
    let mnist = ImageShape::default();
    vec![
        (
            "vanilla",
            ModelConfig::default_for(ModelKind::Vanilla, mnist),
        ),
        ("sparse", ModelConfig::default_for(ModelKind::Sparse, mnist)),
        (
            "denoising",
            ModelConfig::default_for(ModelKind::Denoising, mnist),
        ),
        ("conv", ModelConfig::default_for(ModelKind::Conv, mnist)),
        (
            "conv-dense-32",
            ModelConfig::Conv(ConvConfig::default().with_dense_code(Some(32))),
        ),
        ("vae", ModelConfig::default_for(ModelKind::Vae, mnist)),
        (
            "vae-conv",
            ModelConfig::Vae(VaeConfig::default().with_arch(VaeArch::conv_default())),
        ),
    ]
}

type Names = Vec<(&'static str, Vec<usize>)>;

fn dense_names() -> Names {
    vec![
        ("decoder.0.bias", vec![64]),
        ("decoder.0.weight", vec![64, 32]),
        ("decoder.1.bias", vec![128]),
        ("decoder.1.weight", vec![128, 64]),
        ("decoder.2.bias", vec![784]),
        ("decoder.2.weight", vec![784, 128]),
        ("encoder.0.bias", vec![128]),
        ("encoder.0.weight", vec![128, 784]),
        ("encoder.1.bias", vec![64]),
        ("encoder.1.weight", vec![64, 128]),
        ("encoder.2.bias", vec![32]),
        ("encoder.2.weight", vec![32, 64]),
    ]
}

fn conv_names() -> Names {
    vec![
        ("decoder.0.bias", vec![32]),
        ("decoder.0.weight", vec![32, 32, 3, 3]),
        ("decoder.1.bias", vec![32]),
        ("decoder.1.weight", vec![32, 32, 3, 3]),
        ("decoder.2.bias", vec![1]),
        ("decoder.2.weight", vec![1, 32, 3, 3]),
        ("encoder.0.bias", vec![32]),
        ("encoder.0.weight", vec![32, 1, 3, 3]),
        ("encoder.1.bias", vec![32]),
        ("encoder.1.weight", vec![32, 32, 3, 3]),
    ]
}

fn conv_dense_names() -> Names {
    let mut names = conv_names();
    names.extend([
        ("decoder.fc.bias", vec![1568]),
        ("decoder.fc.weight", vec![1568, 32]),
        ("encoder.fc.bias", vec![32]),
        ("encoder.fc.weight", vec![32, 1568]),
    ]);
    names.sort_by(|a, b| a.0.cmp(b.0));
    names
}

fn vae_dense_names() -> Names {
    vec![
        ("decoder.0.bias", vec![400]),
        ("decoder.0.weight", vec![400, 20]),
        ("decoder.1.bias", vec![784]),
        ("decoder.1.weight", vec![784, 400]),
        ("encoder.0.bias", vec![400]),
        ("encoder.0.weight", vec![400, 784]),
        ("logvar.bias", vec![20]),
        ("logvar.weight", vec![20, 400]),
        ("mu.bias", vec![20]),
        ("mu.weight", vec![20, 400]),
    ]
}

fn vae_conv_names() -> Names {
    vec![
        ("decoder.0.bias", vec![64]),
        ("decoder.0.weight", vec![64, 64, 3, 3]),
        ("decoder.1.bias", vec![32]),
        ("decoder.1.weight", vec![64, 32, 3, 3]),
        ("decoder.2.bias", vec![1]),
        ("decoder.2.weight", vec![1, 32, 3, 3]),
        ("decoder.fc.bias", vec![3136]),
        ("decoder.fc.weight", vec![3136, 20]),
        ("encoder.0.bias", vec![32]),
        ("encoder.0.weight", vec![32, 1, 3, 3]),
        ("encoder.1.bias", vec![64]),
        ("encoder.1.weight", vec![64, 32, 3, 3]),
        ("logvar.bias", vec![20]),
        ("logvar.weight", vec![20, 3136]),
        ("mu.bias", vec![20]),
        ("mu.weight", vec![20, 3136]),
    ]
}

/// The markdown table docs/models.md shows for one model.
fn render(title: &str, shapes: &[(String, Vec<usize>)]) -> String {
    let total: usize = shapes
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    let mut out = format!(
        "<!-- {title}: {} parameters -->\n| tensor | shape | values |\n|---|---|---|\n",
        total
    );
    for (name, shape) in shapes {
        out.push_str(&format!(
            "| `{name}` | {shape:?} | {} |\n",
            shape.iter().product::<usize>()
        ));
    }
    out
}

fn shapes_of(cfg: &ModelConfig) -> (VarMap, Vec<(String, Vec<usize>)>) {
    let (varmap, _model) = common::build_seeded(cfg, DType::F32, 0);
    let shapes = named_shapes(&varmap);
    (varmap, shapes)
}

#[test]
fn tensor_names_and_shapes_of_the_defaults() {
    let expected: Vec<(&str, Names, usize)> = vec![
        ("vanilla", dense_names(), 222_384),
        ("sparse", dense_names(), 222_384),
        ("denoising", conv_names(), 28_353),
        ("conv", conv_names(), 28_353),
        ("conv-dense-32", conv_dense_names(), 130_305),
        ("vae", vae_dense_names(), 652_824),
        ("vae-conv", vae_conv_names(), 265_833),
    ];
    for ((title, cfg), (title2, names, count)) in documented_models().into_iter().zip(expected) {
        assert_eq!(title, title2);
        let (varmap, shapes) = shapes_of(&cfg);
        let want: Vec<(String, Vec<usize>)> =
            names.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
        assert_eq!(shapes, want, "{title}");
        assert_eq!(param_count(&varmap), count, "{title}");
    }
}

#[test]
fn docs_models_md_lists_the_same_tensors() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/models.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut missing = String::new();
    for (title, cfg) in documented_models() {
        let (_vm, shapes) = shapes_of(&cfg);
        let table = render(title, &shapes);
        if !doc.contains(&table) {
            missing.push_str(&table);
            missing.push('\n');
        }
    }
    assert!(
        missing.is_empty(),
        "docs/models.md is out of date; it should contain:\n{missing}"
    );
}

#[test]
fn default_vanilla_has_222_384_parameters() {
    let (varmap, _model) = common::build_seeded(&ModelConfig::default(), DType::F32, 0);
    assert_eq!(param_count(&varmap), 222_384);
}

fn values(varmap: &VarMap) -> Vec<(String, Vec<f32>)> {
    named_shapes(varmap)
        .into_iter()
        .map(|(name, _)| {
            let t = varmap.get_existing(&name);
            (name, t)
        })
        .map(|(name, t)| (name, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

trait GetExisting {
    fn get_existing(&self, name: &str) -> Tensor;
}

impl GetExisting for VarMap {
    fn get_existing(&self, name: &str) -> Tensor {
        self.data().lock().unwrap()[name].as_tensor().clone()
    }
}

#[test]
fn seeded_init_is_reproducible() {
    for kind in ModelKind::ALL {
        let cfg = ModelConfig::default_for(kind, ImageShape::new(1, 12, 12));
        let (a, _) = common::build_seeded(&cfg, DType::F32, 42);
        let (b, _) = common::build_seeded(&cfg, DType::F32, 42);
        let (c, _) = common::build_seeded(&cfg, DType::F32, 43);
        let (va, vb, vc) = (values(&a), values(&b), values(&c));
        // bit-identical with the same seed (compare the bits, not the floats)
        let bits = |v: &[(String, Vec<f32>)]| -> Vec<(String, Vec<u32>)> {
            v.iter()
                .map(|(n, x)| (n.clone(), x.iter().map(|f| f.to_bits()).collect()))
                .collect()
        };
        assert_eq!(bits(&va), bits(&vb), "{kind}");
        assert_ne!(bits(&va), bits(&vc), "{kind}");
        for ((name, x), (_, y)) in va.iter().zip(&vc) {
            if name.ends_with("weight") {
                assert_ne!(x, y, "{kind} {name}");
            }
        }
    }
    // re-initialising the same VarMap gives the same values again
    let (varmap, _) = common::build_seeded(&ModelConfig::default(), DType::F32, 7);
    let before = values(&varmap);
    seeded_init(&varmap, &mut ae_data::seeded(7)).unwrap();
    assert_eq!(before, values(&varmap));
}

#[test]
fn seeded_init_is_glorot_uniform_with_zero_biases() {
    let cfg = ModelConfig::default_for(ModelKind::Conv, ImageShape::default());
    let (varmap, _) = common::build_seeded(&cfg, DType::F32, 1);
    for (name, v) in values(&varmap) {
        if name.ends_with("bias") {
            assert!(v.iter().all(|x| *x == 0.0), "{name}");
            continue;
        }
        let dims = named_shapes(&varmap)
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1;
        let limit = glorot_limit(&dims) as f32;
        assert!(v.iter().all(|x| x.abs() <= limit), "{name}");
        // spread over the interval: the max is close to the limit, the mean close to 0
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(max > 0.9 * limit, "{name}: max {max} vs limit {limit}");
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.1 * limit, "{name}: mean {mean}");
    }
    assert_eq!(fan_sum(&[128, 784]), 912);
    assert_eq!(fan_sum(&[32, 1, 3, 3]), 33 * 9);
    assert!((glorot_limit(&[128, 784]) - (6.0f64 / 912.0).sqrt()).abs() < 1e-15);
}

#[test]
fn seeded_init_works_in_f64() {
    let cfg = ModelConfig::default_for(ModelKind::Vae, ImageShape::new(1, 6, 6));
    let (a, _) = common::build_seeded(&cfg, DType::F64, 9);
    let (b, _) = common::build_seeded(&cfg, DType::F32, 9);
    for (name, _) in named_shapes(&a) {
        let x = a.get_existing(&name).to_dtype(DType::F32).unwrap();
        let y = b.get_existing(&name);
        let diff = (x - y).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{name}");
    }
}
