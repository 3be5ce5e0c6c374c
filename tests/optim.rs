//! The optimiser and the losses against hand-computed values, as PyTorch defines them.

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::prelude::*;
use mixsweep::spec::types::{LossKind, OptimizerKind, ScheduleKind, TrainSpec};

#[derive(Module, Debug)]
struct Scalar {
    w: Param<Tensor<1>>,
}

fn spec(momentum: f64, nesterov: bool, weight_decay: f64) -> TrainSpec {
    TrainSpec {
        input_noise: 0.0,
        epochs: 1,
        batch_size: 1,
        optimizer: OptimizerKind::Sgd,
        lr: 0.1,
        momentum: Some(momentum),
        nesterov: Some(nesterov),
        weight_decay,
        schedule: ScheduleKind::Multistep,
        milestones: vec![],
        gamma: 0.1,
        loss: LossKind::SoftCe,
    }
}

/// Two SGD steps on loss = 3·w from w = 1 (gradient 3 + wd·w), returning w after each.
fn two_steps(train: &TrainSpec) -> Vec<f32> {
    let d = Device::flex().autodiff();
    let mut m = Scalar {
        w: Param::from_tensor(Tensor::<1>::from_data(
            TensorData::new(vec![1.0f32], [1]),
            &d,
        )),
    };
    let mut optim = mixsweep::train::optim::optimizer(train);
    let mut out = Vec::new();
    for _ in 0..2 {
        let loss = m.w.val().mul_scalar(3.0).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        m = optim.step(train.lr, m, grads);
        out.push(m.w.val().into_data().try_to_vec::<f32>().unwrap()[0]);
    }
    out
}

fn close(a: &[f32], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| (*x as f64 - y).abs() < 1e-5)
}

#[test]
fn sgd_momentum_has_no_dampening_as_pytorch() {
    // torch.optim.SGD: buf = g on the first step, then buf = 0.9·buf + g (dampening 0).
    // w: 1 − 0.1·3 = 0.7, then 0.7 − 0.1·(0.9·3 + 3) = 0.13. (burn's default dampening 0.1
    // would give 0.7 − 0.1·(0.9·3 + 0.9·3) = 0.16.)
    assert!(
        close(&two_steps(&spec(0.9, false, 0.0)), &[0.7, 0.13]),
        "{:?}",
        two_steps(&spec(0.9, false, 0.0))
    );
    // Nesterov: step with g + 0.9·buf: 1 − 0.1·5.7 = 0.43, then 0.43 − 0.1·(3 + 0.9·5.7) = −0.383.
    assert!(
        close(&two_steps(&spec(0.9, true, 0.0)), &[0.43, -0.383]),
        "{:?}",
        two_steps(&spec(0.9, true, 0.0))
    );
    // Weight decay is added to the gradient: g = 3 + 0.5·w. Plain SGD: 1 − 0.1·3.5 = 0.65,
    // then 0.65 − 0.1·(3 + 0.325) = 0.3175.
    assert!(
        close(&two_steps(&spec(0.0, false, 0.5)), &[0.65, 0.3175]),
        "{:?}",
        two_steps(&spec(0.0, false, 0.5))
    );
}

#[test]
fn losses_match_their_definitions() {
    // Logits (0, 0, ln 2): softmax (¼, ¼, ½); target class 3, one-hot (0, 0, 1).
    // soft CE = −ln ½. BCE on softmax (nn.BCELoss, mean over the 3 classes) =
    // −⅓·[ln(1 − ¼) + ln(1 − ¼) + ln ½]. The two differ for more than two classes.
    let d = Device::flex();
    let z = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 0.0, 2f32.ln()], [1, 3]), &d);
    let t = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 0.0, 1.0], [1, 3]), &d);
    let ce: f32 = mixsweep::train::loss::loss(LossKind::SoftCe, z.clone(), t.clone()).into_scalar();
    let bce: f32 = mixsweep::train::loss::loss(LossKind::BceSoftmax, z, t).into_scalar();
    assert!((ce as f64 - 2f64.ln()).abs() < 1e-6, "{ce}");
    let want = -(2.0 * 0.75f64.ln() + 0.5f64.ln()) / 3.0;
    assert!((bce as f64 - want).abs() < 1e-6, "{bce} vs {want}");
}
