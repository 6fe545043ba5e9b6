//! Multinomial logistic regression for the linear probe, fitted by argmin's
//! L-BFGS with a More-Thuente line search: the solver, its settings and its
//! stopping rule are those of `linfa-logistic`'s `MultiLogisticRegression`
//! (memory 10, gradient norm below 1e-4, cost change below `f64::EPSILON`,
//! `max_iter` iterations, the best parameters seen), with the objective written
//! here instead of linfa's:
//!
//! `Σ_i (logsumexp(h_i) - h_i[y_i]) + α/2 ‖W‖²`, `h_i = x_i W + b` (the
//! intercept `b` not penalised), and its gradient `Xᵀ(P - Y) + αW`, `Σ_i (p_i - y_i)`.
//!
//! linfa evaluates the cost and then the gradient at the same point with two
//! passes of three `ndarray` products each; here one pass gives both (the line
//! search asks for the gradient right after the cost, so it is kept), over
//! fixed blocks of rows in parallel, each block's two products by `gemm`, the
//! blocks' sums added in block order (the same sums on any number of threads).
//! Each row's log-sum-exp subtracts that row's largest logit, so it is exact
//! (scikit-learn's objective). linfa subtracts the largest logit of the whole
//! matrix and clamps the sum at 1e-15, which overstates the log-sum-exp of
//! every row whose logits all lie more than 34.5 below that maximum: thousands
//! of the 60,000 rows per evaluation on the MNIST probes. With that and the
//! sums taken in another order the 300 iterations end at slightly different
//! weights; the accuracies stay within 0.05 points of linfa's (docs/uses.md).

use std::sync::Mutex;

use argmin::core::{CostFunction, Error as ArgminError, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use ndarray::Array1;
use rayon::prelude::*;

/// Rows per block of the objective: the blocks are the unit of parallel work and
/// of the (ordered) final sum.
const BLOCK: usize = 1024;
/// linfa-logistic's defaults: L-BFGS memory and gradient-norm tolerance.
const MEMORY: usize = 10;
const TOL_GRAD: f64 = 1e-4;

/// Training data of a multinomial logistic regression: `x` is `[n, d]`
/// row-major, `y[i]` the class index (`< classes`) of row `i`.
#[derive(Debug)]
pub(crate) struct Objective<'a> {
    x: &'a [f64],
    y: &'a [usize],
    d: usize,
    classes: usize,
    alpha: f64,
    /// The last point the cost was evaluated at, with its gradient.
    last: Mutex<Option<(Array1<f64>, Array1<f64>)>>,
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]`, each given by its column and row strides.
#[allow(clippy::too_many_arguments)]
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f64],
    accumulate: bool,
    lhs: &[f64],
    (lhs_cs, lhs_rs): (usize, usize),
    rhs: &[f64],
    (rhs_cs, rhs_rs): (usize, usize),
) {
    assert!(dst.len() >= m * n, "matmul: destination too short");
    assert!(
        m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs,
        "matmul: left operand too short"
    );
    assert!(
        n == 0 || k == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs,
        "matmul: right operand too short"
    );
    // SAFETY: the asserts above keep every index gemm reads or writes inside the
    // slices (dst row-major `m×n`, lhs and rhs by their strides), and `dst` is
    // borrowed mutably, so it overlaps neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

impl<'a> Objective<'a> {
    /// The objective of `x` (`[y.len(), d]`) with class indices `y` among `classes`, L2 weight `alpha`.
    pub(crate) fn new(x: &'a [f64], y: &'a [usize], d: usize, classes: usize, alpha: f64) -> Self {
        assert_eq!(x.len(), y.len() * d, "logreg: x is not [n, d]");
        assert!(
            y.iter().all(|&c| c < classes),
            "logreg: class index out of range"
        );
        Objective {
            x,
            y,
            d,
            classes,
            alpha,
            last: Mutex::new(None),
        }
    }

    /// Parameters: `(d + 1) × classes` row-major, the last row the intercept.
    pub(crate) fn n_params(&self) -> usize {
        (self.d + 1) * self.classes
    }

    /// The cost and its gradient at `w` (`(d + 1) × classes` row-major).
    pub(crate) fn cost_and_gradient(&self, w: &[f64]) -> (f64, Vec<f64>) {
        let (d, c) = (self.d, self.classes);
        assert_eq!(w.len(), self.n_params(), "logreg: parameter length");
        let (weights, intercept) = w.split_at(d * c);
        let blocks: Vec<(f64, Vec<f64>)> = self
            .x
            .par_chunks(BLOCK * d)
            .zip(self.y.par_chunks(BLOCK))
            .map(|(xb, yb)| {
                let r = yb.len();
                // Logits, then P - Y in place.
                let mut h = vec![0.0; r * c];
                matmul((r, c, d), &mut h, false, xb, (1, d), weights, (1, c));
                let mut grad = vec![0.0; (d + 1) * c];
                let mut loss = 0.0;
                {
                    let gb = &mut grad[d * c..];
                    for (row, &yi) in h.chunks_exact_mut(c).zip(yb) {
                        let mut max = f64::NEG_INFINITY;
                        for (v, &b) in row.iter_mut().zip(intercept) {
                            *v += b;
                            max = max.max(*v);
                        }
                        let shifted_y = row[yi] - max;
                        let mut sum = 0.0;
                        for v in row.iter_mut() {
                            *v = (*v - max).exp();
                            sum += *v;
                        }
                        // -log p_y = lse - h_y = ln(sum) - (h_y - max).
                        loss += sum.ln() - shifted_y;
                        let inv = 1.0 / sum;
                        for v in row.iter_mut() {
                            *v *= inv;
                        }
                        row[yi] -= 1.0;
                        for (g, &v) in gb.iter_mut().zip(row.iter()) {
                            *g += v;
                        }
                    }
                }
                // Xᵀ (P - Y): lhs is the block's transpose.
                matmul((d, c, r), &mut grad[..d * c], false, xb, (d, 1), &h, (1, c));
                (loss, grad)
            })
            .collect();
        let mut loss = 0.0;
        let mut grad = vec![0.0; (d + 1) * c];
        for (l, g) in &blocks {
            loss += l;
            for (a, b) in grad.iter_mut().zip(g) {
                *a += b;
            }
        }
        let mut penalty = 0.0;
        for (g, &wv) in grad[..d * c].iter_mut().zip(weights) {
            *g += self.alpha * wv;
            penalty += wv * wv;
        }
        (loss + 0.5 * self.alpha * penalty, grad)
    }

    fn evaluate(&self, p: &Array1<f64>) -> (f64, Array1<f64>) {
        let w = p.as_slice().map_or_else(|| p.to_vec(), <[f64]>::to_vec);
        let (cost, grad) = self.cost_and_gradient(&w);
        let grad = Array1::from(grad);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((p.clone(), grad.clone()));
        }
        (cost, grad)
    }
}

impl CostFunction for Objective<'_> {
    type Param = Array1<f64>;
    type Output = f64;

    fn cost(&self, p: &Self::Param) -> Result<f64, ArgminError> {
        Ok(self.evaluate(p).0)
    }
}

impl Gradient for Objective<'_> {
    type Param = Array1<f64>;
    type Gradient = Array1<f64>;

    fn gradient(&self, p: &Self::Param) -> Result<Array1<f64>, ArgminError> {
        if let Ok(last) = self.last.lock()
            && let Some((at, grad)) = last.as_ref()
            && at == p
        {
            return Ok(grad.clone());
        }
        Ok(self.evaluate(p).1)
    }
}

/// A fitted regression: `(d + 1) × classes` row-major parameters, the last row the intercept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fitted {
    d: usize,
    classes: usize,
    params: Vec<f64>,
}

impl Fitted {
    /// The class index of each row of `x` (`[n, d]`): the largest logit, the first on ties.
    pub(crate) fn predict(&self, x: &[f64]) -> Vec<usize> {
        let (d, c) = (self.d, self.classes);
        let (weights, intercept) = self.params.split_at(d * c);
        x.par_chunks(BLOCK * d)
            .flat_map_iter(|xb| {
                let r = xb.len() / d;
                let mut h = vec![0.0; r * c];
                matmul((r, c, d), &mut h, false, xb, (1, d), weights, (1, c));
                h.chunks_exact(c)
                    .map(|row| {
                        let mut best = 0;
                        for (j, (&v, &b)) in row.iter().zip(intercept).enumerate() {
                            if v + b > row[best] + intercept[best] {
                                best = j;
                            }
                        }
                        best
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Fits the regression of `obj` from zero parameters: at most `max_iter` L-BFGS iterations.
pub(crate) fn fit(obj: Objective<'_>, max_iter: u64) -> Result<Fitted, ArgminError> {
    let (d, classes) = (obj.d, obj.classes);
    let init = Array1::<f64>::zeros(obj.n_params());
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), MEMORY).with_tolerance_grad(TOL_GRAD)?;
    let result = Executor::new(obj, solver)
        .configure(|state| state.param(init.clone()).max_iters(max_iter))
        .run()?;
    let best = result.state().get_best_param().cloned().unwrap_or(init);
    Ok(Fitted {
        d,
        classes,
        params: best.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::prelude::*;
    use linfa_logistic::MultiLogisticRegression;
    use ndarray::Array2;

    /// Deterministic values in [-1, 1).
    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    /// `n` rows of `d` features around one centre per class (`spread` apart), labels cycling.
    fn clusters(
        n: usize,
        d: usize,
        classes: usize,
        spread: f64,
        seed: u64,
    ) -> (Vec<f64>, Vec<usize>) {
        let mut r = lcg(seed);
        let centres: Vec<f64> = (0..classes * d).map(|_| spread * r()).collect();
        let mut x = Vec::with_capacity(n * d);
        let y: Vec<usize> = (0..n).map(|i| (i * 7 + i / 3) % classes).collect();
        for &c in &y {
            for j in 0..d {
                x.push(centres[c * d + j] + r() + r());
            }
        }
        (x, y)
    }

    /// The objective written out row by row, straight from its definition.
    fn naive_cost(x: &[f64], y: &[usize], d: usize, c: usize, alpha: f64, w: &[f64]) -> f64 {
        let mut cost = 0.0;
        for (row, &yi) in x.chunks_exact(d).zip(y) {
            let h: Vec<f64> = (0..c)
                .map(|k| w[d * c + k] + (0..d).map(|j| row[j] * w[j * c + k]).sum::<f64>())
                .collect();
            let lse = h.iter().map(|v| v.exp()).sum::<f64>().ln();
            cost += lse - h[yi];
        }
        cost + 0.5 * alpha * w[..d * c].iter().map(|v| v * v).sum::<f64>()
    }

    #[test]
    fn cost_and_gradient_match_the_definition_and_finite_differences() {
        // More rows than a block, so the blocks' sums are exercised.
        let (d, c, alpha) = (5, 4, 0.7);
        let (x, y) = clusters(2 * BLOCK + 37, d, c, 1.5, 1);
        let obj = Objective::new(&x, &y, d, c, alpha);
        let mut r = lcg(2);
        let w: Vec<f64> = (0..obj.n_params()).map(|_| 0.5 * r()).collect();
        let (cost, grad) = obj.cost_and_gradient(&w);
        let naive = naive_cost(&x, &y, d, c, alpha, &w);
        assert!(
            (cost - naive).abs() <= 1e-9 * naive.abs(),
            "{cost} vs {naive}"
        );
        let h = 1e-5;
        for i in 0..w.len() {
            let (mut up, mut down) = (w.clone(), w.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (obj.cost_and_gradient(&up).0 - obj.cost_and_gradient(&down).0) / (2.0 * h);
            assert!(
                (grad[i] - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
                "parameter {i}: gradient {} vs finite difference {fd}",
                grad[i]
            );
        }
    }

    #[test]
    fn the_gradient_follows_the_cost_through_the_solver_cache() {
        let (x, y) = clusters(300, 3, 3, 2.0, 3);
        let obj = Objective::new(&x, &y, 3, 3, 1.0);
        let a = Array1::from_iter((0..obj.n_params()).map(|i| 0.1 * i as f64));
        let b = Array1::from_iter((0..obj.n_params()).map(|i| -0.2 * i as f64));
        // Cost at a, then the gradient at b: b's, not the cached one of a.
        obj.cost(&a).expect("cost");
        let gb = obj.gradient(&b).expect("gradient");
        let want = obj.cost_and_gradient(b.as_slice().expect("contiguous")).1;
        assert_eq!(gb.to_vec(), want);
    }

    /// Train accuracy and parameters of ours and of linfa's fit.
    fn both(x: &[f64], y: &[usize], d: usize, c: usize, iters: u64) -> (f64, f64, f64) {
        let ours = fit(Objective::new(x, y, d, c, 1.0), iters).expect("our fit");
        let data = Dataset::new(
            Array2::from_shape_vec((y.len(), d), x.to_vec()).expect("shape"),
            Array1::from(y.to_vec()),
        );
        let theirs = MultiLogisticRegression::default()
            .alpha(1.0)
            .max_iterations(iters)
            .fit(&data)
            .expect("linfa fit");
        let acc =
            |p: &[usize]| p.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len() as f64;
        let linfa_pred = theirs.predict(data.records()).to_vec();
        let mut diff = 0.0f64;
        for j in 0..d {
            for k in 0..c {
                diff = diff.max((ours.params[j * c + k] - theirs.params()[[j, k]]).abs());
            }
        }
        for k in 0..c {
            diff = diff.max((ours.params[d * c + k] - theirs.intercept()[k]).abs());
        }
        (acc(&ours.predict(x)), acc(&linfa_pred), diff)
    }

    #[test]
    fn fits_as_linfa_does_on_separable_classes() {
        let (x, y) = clusters(400, 4, 3, 8.0, 4);
        let (ours, theirs, _) = both(&x, &y, 4, 3, 300);
        assert_eq!(ours, 1.0);
        assert_eq!(theirs, 1.0);
    }

    #[test]
    fn fits_as_linfa_does_on_overlapping_classes() {
        let (x, y) = clusters(900, 6, 4, 1.0, 5);
        let (ours, theirs, diff) = both(&x, &y, 6, 4, 300);
        assert!(ours > 0.4 && ours < 0.99, "not a separable problem: {ours}");
        // Both converge (gradient norm below 1e-4) to the same optimum.
        assert!(diff < 1e-4, "parameters differ by {diff}");
        assert_eq!(ours, theirs);
    }
}
