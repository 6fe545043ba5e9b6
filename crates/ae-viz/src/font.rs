//! The font charts are labelled with: a subset of DejaVu Sans embedded in the
//! binary (printable ASCII and a few symbols; `fonts/LICENSE.txt`), registered
//! with plotters' `ab_glyph` backend, so text renders the same on every machine
//! without fontconfig or system fonts.

use std::sync::OnceLock;

use plotters::style::FontStyle;

use crate::{Result, VizError};

/// The family name charts ask for.
pub(crate) const FAMILY: &str = "ae-sans";

static FONT_BYTES: &[u8] = include_bytes!("../fonts/DejaVuSans-subset.ttf");

static REGISTERED: OnceLock<bool> = OnceLock::new();

/// Registers the embedded font with plotters (once per process).
pub(crate) fn ensure_registered() -> Result<()> {
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(VizError::Chart {
            chart: "font".into(),
            message: "the embedded DejaVu Sans subset could not be parsed".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_registers() {
        ensure_registered().unwrap();
        ensure_registered().unwrap();
    }
}
