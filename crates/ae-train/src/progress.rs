//! Training progress: an indicatif bar on a terminal, plain log lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, log lines otherwise.
    #[default]
    Auto,
    /// Log lines only (one per epoch, through `tracing`).
    Lines,
    /// Nothing.
    Off,
}

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    mode: ProgressMode,
}

impl Progress {
    pub(crate) fn new(mode: ProgressMode) -> Self {
        Self { bar: None, mode }
    }

    pub(crate) fn start_epoch(&mut self, epoch: usize, epochs: usize, batches: usize) {
        if self.mode == ProgressMode::Auto && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(batches as u64);
            let style = ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(format!("{epoch}/{epochs}"));
            self.bar = Some(bar);
        }
    }

    /// One more batch done; `loss` is the epoch's running mean where it is known on the host
    /// (the device path reads it once per epoch).
    pub(crate) fn batch(&self, loss: Option<f64>, images_per_sec: f64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(match loss {
                Some(loss) => format!("loss {loss:.4} {images_per_sec:.0} img/s"),
                None => format!("{images_per_sec:.0} img/s"),
            });
        }
    }

    pub(crate) fn end_epoch(&mut self, line: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.mode != ProgressMode::Off {
            tracing::info!("{line}");
        }
    }
}
