//! mixsweep: declarative experiment sweeps that reproduce and extend Manifold Mixup
//! (Verma et al., ICML 2019). See the README for use and ../design.md for the architecture.
//!
//! Orchestration (`spec`, `store`, `schedule`, `slurm`, `report`) never touches burn; `train`, `models`
//! and `data` do the learning.

pub mod cli;
pub mod data;
pub mod eval;
pub mod exec;
pub mod external;
pub mod models;
pub mod report;
pub mod rng;
pub mod schedule;
pub mod signals;
pub mod slurm;
pub mod spec;
pub mod store;
pub mod testing;
pub mod train;
