//! The wiring behind the `clinker` binary, as a library so the integration
//! tests start exactly what `clinker serve` starts.

pub mod manage;
pub mod ops;
pub mod wiring;
