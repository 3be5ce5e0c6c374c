//! The mixing maths of the paper (§2): λ = 1 is the identity, targets are mixed with the same λ
//! and partner as the hidden state, the mix happens at the drawn layer and nowhere else, and
//! gradients reach the layers below it (the paper backpropagates through the whole graph).

use burn::optim::GradientsParams;
use burn::prelude::*;
use mixsweep::models::mlp::SpiralMlp;
use mixsweep::models::{MixHook, NoMix};
use mixsweep::spec::types::{Activation, Alpha, LayerSet};
use mixsweep::train::loss::loss;
use mixsweep::train::mixing::{MixDraw, MixStreams, Mixer, mix};

fn device() -> Device {
    Device::flex()
}

fn tensor(rows: &[[f32; 2]], device: &Device) -> Tensor<2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), 2]), device)
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec().unwrap()
}

fn model(device: &Device) -> SpiralMlp {
    SpiralMlp::new(
        2,
        8,
        3,
        2,
        Activation::LeakyRelu,
        false,
        2,
        &mut mixsweep::rng::stream(0, "init"),
        device,
    )
}

#[test]
fn lambda_one_is_the_identity() {
    let d = device();
    let h = tensor(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], &d);
    let draw = MixDraw {
        layer: 0,
        lambda: 1.0,
        partner: vec![2, 0, 1],
    };
    let mixer = Mixer::new(&draw, &d);
    assert_eq!(
        values(mix(h.clone(), 1.0, &mixer.partner_tensor(&d))),
        values(h)
    );
}

#[test]
fn targets_are_mixed_with_the_same_lambda_and_partner() {
    let y = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0];
    let draw = MixDraw {
        layer: 0,
        lambda: 0.25,
        partner: vec![1, 2, 0],
    };
    // Row i: 0.25·y[i] + 0.75·y[partner[i]], by hand (exact in f32).
    let expected = [0.25, 0.75, 0.0, 1.0, 0.75, 0.25];
    assert_eq!(draw.mix_targets(&y, 2), expected);
}

#[test]
fn the_mix_happens_only_at_the_drawn_layer() {
    let d = device();
    let draw = MixDraw {
        layer: 2,
        lambda: 0.3,
        partner: vec![1, 0],
    };
    let mixer = Mixer::new(&draw, &d);
    let h = tensor(&[[1.0, 0.0], [0.0, 1.0]], &d);
    assert_eq!(values(mixer.at(1, h.clone())), values(h.clone()));
    let mixed = values(mixer.at(2, h));
    let expected = [0.3, 0.7, 0.7, 0.3];
    for (got, want) in mixed.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6);
    }
}

#[test]
fn the_matrix_form_equals_the_definition() {
    // Mixer mixes a hidden state too large for the cache by M·h with M = λI + (1−λ)P; it must
    // equal λ·h + (1−λ)·h[perm] on every shape a network mixes (rows × features, and images
    // [batch, c, h, w]).
    let d = device();
    let draw = MixDraw {
        layer: 0,
        lambda: 0.37,
        partner: vec![3, 0, 2, 1, 4],
    };
    let mixer = Mixer::new(&draw, &d);
    let flat: Vec<f32> = (0..5 * 2 * 3 * 3)
        .map(|i| ((i * 37) % 11) as f32 - 5.0)
        .collect();
    let h4 = Tensor::<4>::from_data(TensorData::new(flat.clone(), [5, 2, 3, 3]), &d);
    let a: Vec<f32> = mixer
        .apply_product(h4.clone())
        .into_data()
        .try_to_vec()
        .unwrap();
    let b: Vec<f32> = mix(h4, 0.37, &mixer.partner_tensor(&d))
        .into_data()
        .try_to_vec()
        .unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn mixing_at_the_input_equals_running_on_mixed_inputs() {
    let d = device();
    let m = model(&d);
    let x = tensor(&[[0.1, -0.4], [0.7, 0.2], [-0.5, 0.9]], &d);
    let draw = MixDraw {
        layer: 0,
        lambda: 0.6,
        partner: vec![2, 0, 1],
    };
    let mixer = Mixer::new(&draw, &d);
    let via_hook = values(m.forward(x.clone(), &mixer));
    let by_hand = values(m.forward(mix(x, 0.6, &mixer.partner_tensor(&d)), &NoMix));
    for (a, b) in via_hook.iter().zip(&by_hand) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn gradients_reach_the_layers_below_the_mix_point() {
    let d = device().autodiff();
    let m = model(&d);
    let x = tensor(&[[0.1, -0.4], [0.7, 0.2], [-0.5, 0.9], [0.3, 0.3]], &d);
    // Mix at the bottleneck (mix point 4 of depth 3): layers 0..4 are below it.
    let draw = MixDraw {
        layer: 4,
        lambda: 0.4,
        partner: vec![1, 0, 3, 2],
    };
    let y = draw.mix_targets(&[1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0], 2);
    let y = Tensor::<2>::from_data(TensorData::new(y, [4, 2]), &d);
    let mixer = Mixer::new(&draw, &d);
    let l = loss(
        mixsweep::spec::types::LossKind::SoftCe,
        m.forward(x, &mixer),
        y,
    );
    let grads = GradientsParams::from_grads(l.backward(), &m);
    let first = m.layers[0].weight.id;
    let g: Tensor<2> = grads.get(first).expect("the first layer gets a gradient");
    let norm: f32 = g.abs().sum().into_scalar();
    assert!(norm > 0.0, "zero gradient below the mix point");
}

#[test]
fn draws_come_from_s_and_partners_are_permutations() {
    let s = LayerSet::new(vec![0, 2, 4]);
    let alpha = Alpha::new(2.0).unwrap();
    let mut streams = MixStreams::new(11);
    let mut seen = [0usize; 5];
    for _ in 0..3000 {
        let draw = streams.draw(alpha, &s, 10);
        seen[draw.layer] += 1;
        assert!((0.0..=1.0).contains(&draw.lambda));
        let mut p = draw.partner.clone();
        p.sort();
        assert_eq!(p, (0..10).collect::<Vec<_>>());
    }
    assert_eq!(seen[1] + seen[3], 0);
    // Uniform over S: each of the three about 1000 times.
    for k in [0, 2, 4] {
        assert!(
            (850..1150).contains(&seen[k]),
            "layer {k} drawn {} times",
            seen[k]
        );
    }
    // Reproducible from the seed.
    assert_eq!(
        MixStreams::new(11).draw(alpha, &s, 10),
        MixStreams::new(11).draw(alpha, &s, 10)
    );
}

#[test]
fn lambda_follows_beta_alpha_alpha() {
    // For Beta(2, 2), P(λ < 0.05 or λ > 0.95) = 2·(3·0.05² − 2·0.05³) = 0.0145
    // (reference §2, "about 1.4%"); its mean is 1/2.
    let s = LayerSet::new(vec![0]);
    let mut streams = MixStreams::new(3);
    let n = 100_000;
    let draws: Vec<f64> = (0..n)
        .map(|_| streams.draw(Alpha::new(2.0).unwrap(), &s, 1).lambda)
        .collect();
    let tails = draws
        .iter()
        .filter(|&&l| !(0.05..=0.95).contains(&l))
        .count() as f64
        / n as f64;
    let mean = draws.iter().sum::<f64>() / n as f64;
    assert!((tails - 0.0145).abs() < 0.002, "tail share {tails}");
    assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
}
