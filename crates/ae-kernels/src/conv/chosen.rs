//! The layout a geometry runs on, chosen once at run time ([`Chosen`]): the wide layout when
//! it applies and pays, else plain im2col. The batched drivers pick it per call through the
//! `on_layout!` macro (a static dispatch); code that keeps one layout per layer for a whole
//! step (`crate::conv_chain`) holds a [`Chosen`] instead.

use gemm::Parallelism;

use super::Geom;
use super::im2col::{self, Im2col};
use super::layout::{BwdIo, FwdIo, Layout};
use super::wide::{self, Wide};
use crate::elem::Elem;

/// Either layout, as [`super::chosen`] picks it for a geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chosen {
    /// The padded-width layout.
    Wide(Wide),
    /// Plain im2col / col2im.
    Plain(Im2col),
}

/// The scratch of a [`Chosen`] layout.
pub(crate) enum ChosenScratch<T> {
    Wide(wide::Scratch<T>),
    Plain(im2col::Scratch<T>),
}

impl Chosen {
    /// The layout the batched drivers use for `g`.
    pub(crate) fn of(g: &Geom) -> Self {
        match super::chosen(g) {
            Some(w) => Self::Wide(w),
            None => Self::Plain(Im2col(*g)),
        }
    }
}

impl Layout for Chosen {
    type Scratch<T: Elem> = ChosenScratch<T>;

    fn scratch<T: Elem>(&self) -> ChosenScratch<T> {
        match self {
            Self::Wide(l) => ChosenScratch::Wide(l.scratch()),
            Self::Plain(l) => ChosenScratch::Plain(l.scratch()),
        }
    }

    fn fwd<T: Elem>(&self, s: &mut ChosenScratch<T>, io: FwdIo<'_, T>, par: Parallelism) {
        match (self, s) {
            (Self::Wide(l), ChosenScratch::Wide(s)) => l.fwd(s, io, par),
            (Self::Plain(l), ChosenScratch::Plain(s)) => l.fwd(s, io, par),
            _ => unreachable!("a layout's scratch comes from the same layout"),
        }
    }

    fn bwd<T: Elem>(&self, s: &mut ChosenScratch<T>, io: BwdIo<'_, T>, par: Parallelism) {
        match (self, s) {
            (Self::Wide(l), ChosenScratch::Wide(s)) => l.bwd(s, io, par),
            (Self::Plain(l), ChosenScratch::Plain(s)) => l.bwd(s, io, par),
            _ => unreachable!("a layout's scratch comes from the same layout"),
        }
    }

    fn flush<T: Elem>(&self, s: &mut ChosenScratch<T>, gw: &mut [T]) {
        match (self, s) {
            (Self::Wide(l), ChosenScratch::Wide(s)) => l.flush(s, gw),
            (Self::Plain(l), ChosenScratch::Plain(s)) => l.flush(s, gw),
            _ => unreachable!("a layout's scratch comes from the same layout"),
        }
    }
}
