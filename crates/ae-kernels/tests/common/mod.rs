//! Helpers shared by the kernel tests.

pub use ae_kernels::test_utils::rel_err;
