//! A task's buffers for a conv chain ([`Work`]), kept per thread between steps
//! ([`with_work`]).

use std::any::Any;
use std::cell::RefCell;

use super::Op;
use crate::conv::{Chosen, Layout};
use crate::elem::Elem;

/// One task's buffers, reused from image to image.
pub(super) struct Work<T: Elem> {
    /// Each stage's output for the current image.
    pub(super) acts: Vec<Vec<T>>,
    /// Each convolution's layout scratch (`None` for the pools and linear stages).
    pub(super) scratch: Vec<Option<<Chosen as Layout>::Scratch<T>>>,
    /// The gradient reaching the current stage's output, and the one it passes back.
    pub(super) grad: Vec<T>,
    pub(super) back: Vec<T>,
    /// A transposed convolution's output gradient masked by its ReLU.
    pub(super) mask: Vec<T>,
}

impl<T: Elem> Work<T> {
    fn new(ops: &[Op]) -> Self {
        let widest = ops
            .iter()
            .map(|o| o.in_len().max(o.out_len()))
            .max()
            .unwrap_or(0);
        Self {
            acts: ops.iter().map(|o| vec![T::ZERO; o.out_len()]).collect(),
            scratch: ops
                .iter()
                .map(|o| match o {
                    Op::Conv { lay, .. } | Op::ConvT { lay, .. } => Some(lay.scratch()),
                    Op::Pool(_) | Op::Linear { .. } => None,
                })
                .collect(),
            grad: vec![T::ZERO; widest],
            back: vec![T::ZERO; widest],
            mask: vec![T::ZERO; widest],
        }
    }
}

impl<T: Elem> Work<T> {
    /// Flushes every convolution's scratch into its weight gradient in `acc` (laid out as
    /// `params`).
    pub(super) fn flush(&mut self, ops: &[Op], params: &[&[T]], acc: &mut [T]) {
        let mut at = 0;
        let mut p = 0;
        for (op, s) in ops.iter().zip(&mut self.scratch) {
            if matches!(op, Op::Pool(_)) {
                continue;
            }
            let wlen = params[p].len();
            if let (Op::Conv { lay, .. } | Op::ConvT { lay, .. }, Some(s)) = (op, s) {
                lay.flush(s, &mut acc[at..at + wlen]);
            }
            at += wlen + params[p + 1].len();
            p += 2;
        }
    }
}

/// Runs `f` with this thread's buffers for `ops`, kept from one call to the next (a training
/// run calls the same chain every step: its scratch, about 1.5 MB for the MNIST model, is
/// allocated and zeroed once per thread instead of once per task and step). Every buffer is
/// either overwritten before it is read or, like the padded images' borders and the
/// flushed weight gradients, left as it was found (zero).
pub(super) fn with_work<T: Elem, R>(ops: &[Op], f: impl FnOnce(&mut Work<T>) -> R) -> R {
    thread_local! {
        static CACHE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }
    CACHE.with(|cache| {
        let kept = cache
            .borrow_mut()
            .take()
            .and_then(|b| b.downcast::<(Vec<Op>, Work<T>)>().ok())
            .filter(|kept| kept.0 == ops);
        let mut entry = kept.unwrap_or_else(|| Box::new((ops.to_vec(), Work::new(ops))));
        let r = f(&mut entry.1);
        *cache.borrow_mut() = Some(entry);
        r
    })
}
