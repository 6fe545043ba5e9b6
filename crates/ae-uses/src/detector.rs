//! The one-class detector recipe shared by `ae anomaly fit` and `cargo xtask
//! anomaly-benchmark`: the default detector with the caller's overrides, and
//! ensembles of several detectors of the same class, each member's scores
//! standardised by its own scores of the normal training images.

use ae_data::{DataConfig, ImageSet};
use ae_models::{Autoencoder, DenseConfig, ImageShape, ModelConfig, ModelKind, VaeArch};
use ae_train::RunConfig;
use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::anomaly::{
    AnomalySpec, ScoreKind, ThresholdRule, anomaly_scores, default_detector,
    default_detector_training, mean_scores, standardize_by,
};
use crate::error::{Result, UsesError};

/// A one-class detector: the default one ([`default_detector`], or
/// [`table_detector`] on a table; trained as [`default_detector_training`])
/// with any of its settings replaced.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// The model: vanilla (the default dense 256-64-16 detector on images,
    /// [`table_detector`]'s on a table), sparse or vae.
    pub model: Option<ModelKind>,
    /// Code size.
    pub latent_dim: Option<usize>,
    /// Hidden layer sizes.
    pub hidden: Option<Vec<usize>>,
    /// Epochs (default 60).
    pub epochs: Option<usize>,
    /// Images per batch (default 64).
    pub batch_size: Option<usize>,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Seed of every random draw.
    pub seed: u64,
}

impl DetectorConfig {
    /// Checks that the model is one a detector can be.
    pub fn validate(&self) -> Result<()> {
        match self.model {
            None | Some(ModelKind::Vanilla | ModelKind::Sparse | ModelKind::Vae) => Ok(()),
            Some(k) => Err(UsesError::Invalid(format!(
                "--model {k}: an anomaly detector is vanilla, sparse or vae"
            ))),
        }
    }

    /// The detector's model for images of `input`.
    pub fn model(&self, input: ImageShape) -> Result<ModelConfig> {
        self.validate()?;
        let mut model = match self.model {
            None | Some(ModelKind::Vanilla) => default_detector(input),
            Some(k) => ModelConfig::default_for(k, input),
        };
        match &mut model {
            ModelConfig::Vanilla(d) => self.apply_dense(d),
            ModelConfig::Sparse(s) => self.apply_dense(&mut s.dense),
            ModelConfig::Vae(v) => {
                if let Some(k) = self.latent_dim {
                    v.latent_dim = k;
                }
                if let (Some(h), VaeArch::Dense { hidden }) = (&self.hidden, &mut v.arch) {
                    *hidden = h.clone();
                }
            }
            _ => {}
        }
        Ok(model)
    }

    fn apply_dense(&self, d: &mut DenseConfig) {
        if let Some(k) = self.latent_dim {
            d.latent_dim = k;
        }
        if let Some(h) = &self.hidden {
            d.hidden = h.clone();
        }
    }

    /// The whole run of the detector on `data`, whose training set is
    /// `train`: on a table ([`ImageSet::is_table`]) an unset hidden size or
    /// code comes from [`table_detector`], sized by its columns (`config.json`
    /// records them); the rest is as [`DetectorConfig::run_config`].
    pub fn run_config_for(&self, data: DataConfig, train: &ImageSet) -> Result<RunConfig> {
        let input = crate::batches::input_shape(train);
        if !train.is_table() {
            return self.run_config(data, input);
        }
        let t = table_detector(input.dim());
        let mut d = self.clone();
        d.hidden.get_or_insert(t.hidden);
        d.latent_dim.get_or_insert(t.latent_dim);
        d.run_config(data, input)
    }

    /// The whole run of the detector on `data` with the image defaults
    /// ([`default_detector`], [`default_detector_training`]), checked.
    pub fn run_config(&self, data: DataConfig, input: ImageShape) -> Result<RunConfig> {
        let model = self.model(input)?;
        let mut cfg = RunConfig::for_kind(model.kind(), data, input);
        cfg.model = model;
        cfg.train = default_detector_training(self.seed);
        if let Some(e) = self.epochs {
            cfg.train.epochs = e;
        }
        if let Some(b) = self.batch_size {
            cfg.train.batch_size = b;
        }
        if let Some(lr) = self.lr {
            cfg.train.lr = lr;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The table detector's model ([`table_detector`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TableDetector {
    /// Hidden layer sizes of the dense encoder (the decoder mirrors them).
    pub hidden: Vec<usize>,
    /// Code size.
    pub latent_dim: usize,
}

/// A table's code is its column count over this, rounded up (at least 2).
pub const TABLE_CODE_DIVISOR: usize = 4;

/// The default one-class detector of a table of `columns` standardised
/// features, chosen on other tables than the one docs/results.md tests it on
/// (scripts/table_anomaly_selection.py): a dense model with a code of
/// `columns / 4` rounded up (at least 2) and hidden layers of 8 and 4 times
/// the code; for example 30 columns give 30-64-32-8, 13 give 13-32-16-4.
/// It trains as the image detector does ([`default_detector_training`]: 60
/// epochs of batch 64 at Adam 1e-3, so its steps grow with the table's rows).
pub fn table_detector(columns: usize) -> TableDetector {
    let latent_dim = columns.div_ceil(TABLE_CODE_DIVISOR).max(2);
    TableDetector {
        hidden: vec![8 * latent_dim, 4 * latent_dim],
        latent_dim,
    }
}

/// One member of an ensemble: its raw scores of its normal training images
/// and of the images judged.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberScores {
    /// Scores of the member's normal training images.
    pub train: Vec<f64>,
    /// Scores of the images judged.
    pub scores: Vec<f64>,
}

/// What an ensemble says about the images judged.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleScores {
    /// The mean of the members' standardised scores, per image.
    pub scores: Vec<f64>,
    /// The first member's rule applied to the mean of the members'
    /// standardised training scores: scores above it are anomalies.
    pub threshold: f64,
    /// The first member's score kind.
    pub score: ScoreKind,
}

/// Detectors of one normal class whose standardised scores are averaged.
#[derive(Debug, Clone)]
pub struct Ensemble {
    normal_class: u8,
    first: Option<(ThresholdRule, ScoreKind)>,
    members: Vec<MemberScores>,
}

impl Ensemble {
    /// An empty ensemble of detectors of `normal_class`.
    pub fn new(normal_class: u8) -> Self {
        Ensemble {
            normal_class,
            first: None,
            members: Vec::new(),
        }
    }

    /// Adds the detector `model` (made with `spec`, named `name` in errors):
    /// scores its normal training images `train` and the images judged. A
    /// detector of another normal class is refused; one trained on all its
    /// training rows (no class: one-class data such as a table of normal rows)
    /// joins any ensemble, its whole training set being normal.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        name: &str,
        model: &dyn Autoencoder,
        spec: &AnomalySpec,
        train: &ImageSet,
        images: &ImageSet,
        batch: usize,
        device: &Device,
    ) -> Result<&MemberScores> {
        let normal = self.normal_class;
        if let Some(class) = spec.normal_class.filter(|&c| c != normal) {
            return Err(UsesError::Mismatch(format!(
                "{name} was trained on class {class}, not on class {normal}"
            )));
        }
        let member = MemberScores {
            train: anomaly_scores(model, train, spec.score, batch, device)?,
            scores: anomaly_scores(model, images, spec.score, batch, device)?,
        };
        self.push(member, spec.rule, spec.score)
    }

    /// Adds a member whose scores are already measured.
    pub fn push(
        &mut self,
        member: MemberScores,
        rule: ThresholdRule,
        score: ScoreKind,
    ) -> Result<&MemberScores> {
        // Standardising fails on constant or empty training scores: say so now.
        standardize_by(&member.train, &[])?;
        self.first.get_or_insert((rule, score));
        self.members.push(member);
        Ok(&self.members[self.members.len() - 1])
    }

    /// The members so far, in the order added.
    pub fn members(&self) -> &[MemberScores] {
        &self.members
    }

    /// The ensemble's scores and threshold.
    pub fn finish(&self) -> Result<EnsembleScores> {
        let Some((rule, score)) = self.first else {
            return Err(UsesError::Invalid(
                "an ensemble needs at least one detector".into(),
            ));
        };
        let (mut scores, mut train) = (Vec::new(), Vec::new());
        for m in &self.members {
            scores.push(standardize_by(&m.train, &m.scores)?);
            train.push(standardize_by(&m.train, &m.train)?);
        }
        Ok(EnsembleScores {
            scores: mean_scores(&scores)?,
            threshold: rule.threshold(&mean_scores(&train)?)?,
            score,
        })
    }
}
