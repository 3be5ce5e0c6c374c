//! Evaluation beyond clean error and NLL (issue 5, in progress): FGSM, calibration, the
//! flattening measure and the paper's test-time deformations, as functions on predictions,
//! images and hidden states. Not wired into runs
//! yet: how evaluation settings relate to a run's identity (a re-evaluation must not retrain)
//! is decided with `mixsweep eval`.

pub mod attacks;
pub mod calibration;
pub mod deform;
pub mod flattening;
