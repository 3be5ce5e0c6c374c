//! The paper's networks: parameter counts against the official definitions, mix points, and a
//! few training steps of each at a narrow width.
//!
//! Expected counts are PyTorch's `sum(p.numel() for p in model.parameters())` of the official
//! `supervised/models/preresnet.py` and `wide_resnet.py`, counted layer by layer by the
//! functions below (convs without bias in PreActResNet, with bias in WRN; BN has γ and β).
//! Cross-check: PreActResNet18 for 10 classes has 11,171,146 parameters, the figure
//! kuangliu/pytorch-cifar (whose PreActResNet the official code copies) is known for.
//! burn also counts BatchNorm's running mean and variance, so we add 2 per BN channel.

use burn::module::Module;
use burn::prelude::*;
use mixsweep::models::Network;
use mixsweep::spec::types::{
    Alpha, LayerSet, LossKind, ModelSpec, OptimizerKind, ScheduleKind, TrainSpec,
};
use mixsweep::train::mixing::MixStreams;
use mixsweep::train::step::{Batch, StepConfig, one_hot, step};

/// (parameters, BN running-stat buffers) of a PreActResNet.
fn preact_counts(depth: usize, width: usize, c_in: usize, classes: usize) -> (usize, usize) {
    let (blocks, bottleneck) = match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        101 => ([3, 4, 23, 3], true),
        _ => ([3, 8, 36, 3], true),
    };
    let exp = if bottleneck { 4 } else { 1 };
    let (mut params, mut bn) = (c_in * width * 9, 0);
    let mut c = width;
    for (s, &n) in blocks.iter().enumerate() {
        let planes = width << s;
        for b in 0..n {
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            let out = planes * exp;
            if bottleneck {
                params += 2 * c
                    + c * planes
                    + 2 * planes
                    + planes * planes * 9
                    + 2 * planes
                    + planes * out;
                bn += c + planes + planes;
            } else {
                params += 2 * c + c * planes * 9 + 2 * planes + planes * planes * 9;
                bn += c + planes;
            }
            if stride != 1 || c != out {
                params += c * out;
            }
            c = out;
        }
    }
    params += c * classes + classes;
    (params, 2 * bn)
}

/// (parameters, BN buffers) of WRN-depth-widen.
fn wrn_counts(depth: usize, widen: usize, c_in: usize, classes: usize) -> (usize, usize) {
    let n = (depth - 4) / 6;
    let (mut params, mut bn) = (c_in * 16 * 9 + 16, 0);
    let mut c = 16;
    for (s, width) in [16 * widen, 32 * widen, 64 * widen].into_iter().enumerate() {
        for b in 0..n {
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            params += 2 * c + c * width * 9 + width + 2 * width + width * width * 9 + width;
            bn += c + width;
            if stride != 1 || c != width {
                params += c * width + width;
            }
            c = width;
        }
    }
    params += 2 * c + c * classes + classes;
    bn += c;
    (params, 2 * bn)
}

fn build(spec: &ModelSpec, shape: [usize; 3], classes: usize, device: &Device) -> Network {
    Network::new(
        spec,
        &shape,
        classes,
        &mut mixsweep::rng::stream(0, "init"),
        device,
    )
}

#[test]
fn parameter_counts_match_the_official_definitions() {
    assert_eq!(preact_counts(18, 64, 3, 10).0, 11_171_146);
    let d = Device::flex();
    for depth in [18, 34, 50, 101, 152] {
        let net = build(
            &ModelSpec::PreactResnet {
                depth,
                width: 64,
                stem_stride: 1,
                bn_gamma: Default::default(),
            },
            [3, 32, 32],
            10,
            &d,
        );
        let (p, b) = preact_counts(depth, 64, 3, 10);
        assert_eq!(net.num_params(), p + b, "PreActResNet{depth}");
    }
    // CIFAR-100 head, and a narrow 1-channel variant (the width multiplier).
    let net = build(
        &ModelSpec::PreactResnet {
            depth: 18,
            width: 64,
            stem_stride: 1,
            bn_gamma: Default::default(),
        },
        [3, 32, 32],
        100,
        &d,
    );
    let (p, b) = preact_counts(18, 64, 3, 100);
    assert_eq!(net.num_params(), p + b);
    let net = build(
        &ModelSpec::PreactResnet {
            depth: 18,
            width: 16,
            stem_stride: 1,
            bn_gamma: Default::default(),
        },
        [1, 28, 28],
        10,
        &d,
    );
    let (p, b) = preact_counts(18, 16, 1, 10);
    assert_eq!(net.num_params(), p + b);
    let net = build(
        &ModelSpec::WideResnet {
            depth: 28,
            widen: 10,
            stem_stride: 1,
            bn_gamma: Default::default(),
        },
        [3, 32, 32],
        10,
        &d,
    );
    let (p, b) = wrn_counts(28, 10, 3, 10);
    // About 36.5M, as the papers-with-code listing of WRN-28-10 says (ours has conv biases).
    assert!((36_400_000..36_600_000).contains(&p), "{p}");
    assert_eq!(net.num_params(), p + b, "WRN-28-10");
}

fn sgd() -> TrainSpec {
    TrainSpec {
        input_noise: 0.0,
        epochs: 1,
        batch_size: 4,
        optimizer: OptimizerKind::Sgd,
        lr: 0.05,
        momentum: Some(0.9),
        nesterov: Some(true),
        weight_decay: 1e-4,
        schedule: ScheduleKind::Multistep,
        milestones: vec![],
        gamma: 0.1,
        loss: LossKind::SoftCe,
    }
}

/// A few SGD steps of the training loop's own step (`train::step`) with mixing at `layer`, on
/// random images; returns the losses.
fn train_steps(spec: &ModelSpec, shape: [usize; 3], layer: usize) -> Vec<f32> {
    let d = Device::flex().autodiff();
    let mut net = build(spec, shape, 5, &d);
    let mut optim = mixsweep::train::optim::optimizer(&sgd());
    let n = 4;
    let features: usize = shape.iter().product();
    let x: Vec<f32> = (0..n * features)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5)
        .collect();
    let cfg = StepConfig {
        seed: 0,
        loss: LossKind::SoftCe,
        input_noise: 0.0,
        dropout: None,
        mixing: Some((Alpha::new(1.0).unwrap(), LayerSet::new(vec![layer]))),
    };
    let mut streams = MixStreams::new(0);
    let mut losses = Vec::new();
    for s in 0..3 {
        let batch = Batch {
            inputs: x.clone(),
            features,
            targets: one_hot((0..n).map(|i| i % 5), 5),
            classes: 5,
            epoch: 0,
            step: s,
        };
        let stepped = step(net, &mut optim, batch, &cfg, &mut streams, 0.05, &d).unwrap();
        losses.push(stepped.loss as f32);
        net = stepped.model;
    }
    losses
}

#[test]
fn every_network_trains_a_few_steps_with_mixing_at_each_mix_point() {
    for depth in [18, 34, 50, 101, 152] {
        let spec = ModelSpec::PreactResnet {
            depth,
            width: 4,
            stem_stride: 1,
            bn_gamma: Default::default(),
        };
        for layer in 0..spec.mix_points() {
            let losses = train_steps(&spec, [3, 16, 16], layer);
            assert!(
                losses.iter().all(|l| l.is_finite()),
                "PreActResNet{depth} at {layer}: {losses:?}"
            );
            assert_ne!(
                losses[0], losses[2],
                "PreActResNet{depth}: parameters did not move"
            );
        }
    }
    let wrn = ModelSpec::WideResnet {
        depth: 16,
        widen: 1,
        stem_stride: 1,
        bn_gamma: Default::default(),
    };
    for layer in 0..wrn.mix_points() {
        let losses = train_steps(&wrn, [3, 16, 16], layer);
        assert!(
            losses.iter().all(|l| l.is_finite()) && losses[0] != losses[2],
            "WRN at {layer}: {losses:?}"
        );
    }
    // Tiny-ImageNet shape with the stride-2 stem, and a 1-channel input.
    let losses = train_steps(
        &ModelSpec::PreactResnet {
            depth: 18,
            width: 4,
            stem_stride: 2,
            bn_gamma: Default::default(),
        },
        [3, 64, 64],
        2,
    );
    assert!(losses.iter().all(|l| l.is_finite()));
    let losses = train_steps(
        &ModelSpec::PreactResnet {
            depth: 18,
            width: 4,
            stem_stride: 1,
            bn_gamma: Default::default(),
        },
        [1, 28, 28],
        1,
    );
    assert!(losses.iter().all(|l| l.is_finite()));
}
