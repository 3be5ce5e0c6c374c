//! `mixsweep bench`: training throughput of the paper's networks with ERM and with Manifold
//! Mixup, measured side by side in one process (interleaved rounds, so drift of a noisy
//! machine hits both alike), the cost of mixing itself, and where a training step's time goes.
//! Inputs are random tensors of the right shape: throughput does not depend on pixel values.

pub mod ops;
pub mod torch;

use std::fmt::Write as _;
use std::time::Instant;

use burn::prelude::*;

use super::TrainError;
use super::device::DeviceChoice;
use super::mixing::{MixStreams, Mixer};
use super::step::{Batch, StepConfig, one_hot};
use crate::models::{MixHook, Network};
use crate::spec::types::{
    Activation, Alpha, LayerSet, LossKind, ModelSpec, OptimizerKind, ScheduleKind, TrainSpec,
};
use crate::store::throughput::Throughput;

/// One network to measure.
pub struct Case {
    pub name: &'static str,
    pub model: ModelSpec,
    /// One input's shape.
    pub shape: Vec<usize>,
    pub classes: usize,
    pub batch: usize,
    /// The eligible set used for Manifold Mixup.
    pub layers: Vec<usize>,
    /// Timed steps per method per round.
    pub steps: usize,
    pub rounds: usize,
}

/// The default cases: the spiral MLP and PreActResNet18 at width 16 and 64 on CIFAR shapes.
pub fn default_cases(quick: bool) -> Vec<Case> {
    let scale = |n: usize| if quick { n.div_ceil(4).max(1) } else { n };
    vec![
        Case {
            name: "spiral MLP (2-128×3-2-128×3-2)",
            model: ModelSpec::SpiralMlp {
                width: 128,
                depth: 3,
                bottleneck: 2,
                activation: Activation::LeakyRelu,
                dropout: 0.0,
                batch_norm: false,
            },
            shape: vec![2],
            classes: 2,
            batch: 100,
            layers: vec![4],
            steps: scale(50),
            rounds: 40,
        },
        preact18("PreActResNet18, width 16, 3×32×32", 16, scale(8), 3),
        preact18("PreActResNet18, width 64, 3×32×32", 64, scale(2), 2),
    ]
}

/// PreActResNet18 at `width` on CIFAR-shaped inputs, batch 100, S = {0, 1, 2}.
fn preact18(name: &'static str, width: usize, steps: usize, rounds: usize) -> Case {
    Case {
        name,
        model: ModelSpec::PreactResnet {
            depth: 18,
            width,
            stem_stride: 1,
            bn_gamma: Default::default(),
        },
        shape: vec![3, 32, 32],
        classes: 10,
        batch: 100,
        layers: vec![0, 1, 2],
        steps,
        rounds,
    }
}

/// What one case measured.
pub struct Measured {
    pub erm_per_sec: f64,
    pub mixup_per_sec: f64,
    /// Seconds per step in each phase (ERM): input upload, forward + loss, backward, optimiser.
    pub phases: [f64; 4],
    /// Seconds per step of the mixing operations alone (hidden state and targets).
    pub mix_ops: f64,
}

fn random(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + salt) * 2_654_435_761) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// Measures one case on `device`.
pub fn measure(case: &Case, device: &Device) -> Result<Measured, TrainError> {
    let ad = device.clone().autodiff();
    let features: usize = case.shape.iter().product();
    let mut net = Network::new(
        &case.model,
        &case.shape,
        case.classes,
        &mut crate::rng::stream(0, "init"),
        &ad,
    );
    let train = TrainSpec {
        input_noise: 0.0,
        epochs: 1,
        batch_size: case.batch,
        optimizer: OptimizerKind::Sgd,
        lr: 0.01,
        momentum: Some(0.9),
        nesterov: Some(true),
        weight_decay: 1e-4,
        schedule: ScheduleKind::Multistep,
        milestones: vec![],
        gamma: 0.1,
        loss: LossKind::SoftCe,
    };
    let mut optim = super::optim::optimizer(&train);
    let x_host = random(case.batch * features, 1);
    let y_host = one_hot((0..case.batch).map(|i| i % case.classes), case.classes);
    let alpha = Alpha::new(2.0).unwrap_or_else(|| unreachable!("2.0 is a valid alpha"));
    let erm = StepConfig {
        seed: 0,
        loss: train.loss,
        input_noise: 0.0,
        dropout: case.model.dropout(),
        mixing: None,
    };
    let mixup = StepConfig {
        mixing: Some((alpha, LayerSet::new(case.layers.clone()))),
        ..erm.clone()
    };
    let mut streams = MixStreams::new(0);
    let mut phases = [0.0; 4];
    let mut phase_steps = 0usize;
    // The training loop's own step (`train::step`), on the same batch each time.
    let mut step = |net: Network,
                    mixing: bool,
                    phases: &mut [f64; 4],
                    record: bool|
     -> Result<Network, TrainError> {
        let batch = Batch {
            inputs: x_host.clone(),
            features,
            targets: y_host.clone(),
            classes: case.classes,
            epoch: 0,
            step: 0,
        };
        let cfg = if mixing { &mixup } else { &erm };
        let t = Instant::now();
        let stepped = super::step::step(net, &mut optim, batch, cfg, &mut streams, 0.01, &ad)?;
        let _ = device.sync();
        if record {
            let tm = stepped.times;
            let sync =
                t.elapsed().as_secs_f64() - (tm.upload + tm.forward + tm.backward + tm.optimiser);
            for (p, v) in phases.iter_mut().zip([
                tm.upload,
                tm.forward,
                tm.backward,
                tm.optimiser + sync.max(0.0),
            ]) {
                *p += v;
            }
        }
        Ok(stepped.model)
    };
    // Warm-up: first allocations and kernel choices.
    for mixing in [false, true] {
        net = step(net, mixing, &mut phases, false)?;
    }
    let (mut erm_time, mut mix_time) = (0.0, 0.0);
    for _ in 0..case.rounds {
        for mixing in [false, true] {
            let t = Instant::now();
            for _ in 0..case.steps {
                net = step(net, mixing, &mut phases, !mixing)?;
            }
            let dt = t.elapsed().as_secs_f64();
            if mixing {
                mix_time += dt
            } else {
                erm_time += dt
            }
        }
        phase_steps += case.steps;
    }
    let examples = (case.rounds * case.steps * case.batch) as f64;
    for p in &mut phases {
        *p /= phase_steps.max(1) as f64;
    }
    Ok(Measured {
        erm_per_sec: examples / erm_time,
        mixup_per_sec: examples / mix_time,
        phases,
        mix_ops: mix_op_time(case, &net, device)?,
    })
}

/// The mixing operations alone, on the hidden states a step mixes (each mix point of S in
/// turn) and on the targets: `λ·h + (1−λ)·h[perm]` as the training step does it.
fn mix_op_time(case: &Case, net: &Network, device: &Device) -> Result<f64, TrainError> {
    struct Shapes(std::cell::RefCell<Vec<Vec<usize>>>);
    impl MixHook for Shapes {
        fn at<const D: usize>(&self, _k: usize, h: Tensor<D>) -> Tensor<D> {
            self.0.borrow_mut().push(h.dims().to_vec());
            h
        }
    }
    let features: usize = case.shape.iter().product();
    let x = Tensor::<2>::from_data(
        TensorData::new(random(case.batch * features, 2), [case.batch, features]),
        device,
    );
    let shapes = Shapes(std::cell::RefCell::new(Vec::new()));
    let _ = net.valid().forward(x, &shapes);
    let shapes = shapes.0.into_inner();
    let partner: Vec<usize> = (0..case.batch).rev().collect();
    let draw = super::mixing::MixDraw {
        layer: 0,
        lambda: 0.3,
        partner,
    };
    let mixer = Mixer::new(&draw, device);
    let reps = 20;
    let mut total = 0.0;
    for &k in &case.layers {
        let dims = &shapes[k.min(shapes.len() - 1)];
        let n: usize = dims.iter().product();
        let h = Tensor::<1>::from_data(TensorData::new(random(n, 3), [n]), device)
            .reshape([case.batch, n / case.batch]);
        let y = random(case.batch * case.classes, 4);
        let t = Instant::now();
        for _ in 0..reps {
            let out = mixer.apply(h.clone());
            let yt = draw.mix_targets(&y, case.classes);
            let _ = (out.into_data(), yt);
        }
        total += t.elapsed().as_secs_f64() / reps as f64;
    }
    Ok(total / case.layers.len() as f64)
}

/// Runs every case and renders reports/bench.md.
pub fn run(
    cases: &[Case],
    device: &Device,
    choice: DeviceChoice,
    threads: usize,
    quick: bool,
) -> Result<(String, Vec<Throughput>), TrainError> {
    let mut out = String::new();
    let mut measured = Vec::new();
    let _ = writeln!(out, "# mixsweep benchmark\n");
    let _ = writeln!(
        out,
        "Machine: {} ({} threads used); device {choice}; mixsweep {}, burn {}.",
        cpu_model(),
        threads,
        env!("CARGO_PKG_VERSION"),
        super::BURN_VERSION
    );
    let _ = writeln!(
        out,
        "Training step = upload a batch of random inputs, forward, soft-target cross-entropy, backward, SGD (momentum 0.9, Nesterov, weight decay) — the training loop's own step (`train::step`). ERM and Manifold Mixup (α = 2, one layer of S drawn per step) run in interleaved rounds in one process; throughput is training examples per second.\n"
    );
    let _ = writeln!(
        out,
        "| network | batch | S | ERM examples/s | Manifold Mixup examples/s | Manifold Mixup / ERM | mixing ops, % of an ERM step |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut breakdown = String::new();
    for case in cases {
        eprintln!("bench: {} ...", case.name);
        let m = measure(case, device)?;
        measured.push(throughput(case, choice, threads, m.erm_per_sec));
        let step = case.batch as f64 / m.erm_per_sec;
        let _ = writeln!(
            out,
            "| {} | {} | {{{}}} | {:.0} | {:.0} | {:.3} | {:.2}% |",
            case.name,
            case.batch,
            case.layers
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            m.erm_per_sec,
            m.mixup_per_sec,
            m.mixup_per_sec / m.erm_per_sec,
            100.0 * m.mix_ops / step
        );
        let total: f64 = m.phases.iter().sum();
        let _ = writeln!(
            breakdown,
            "| {} | {:.2} ms | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
            case.name,
            1000.0 * total,
            100.0 * m.phases[0] / total,
            100.0 * m.phases[1] / total,
            100.0 * m.phases[2] / total,
            100.0 * m.phases[3] / total
        );
    }
    let _ = writeln!(
        out,
        "\n\"Mixing ops\" times the mixing alone — `λ·h + (1−λ)·h[perm]`, as the step computes it (by the definition for a hidden state of at most 1 MiB, else as one product with λI + (1−λ)P) — on the hidden state of each layer of S, and on the targets (on the host) — against an ERM step; \"Manifold Mixup / ERM\" is the whole step, where the mix's backward and the noise of the machine also show.\n"
    );
    let _ = writeln!(out, "## Where an ERM step's time goes\n");
    let _ = writeln!(
        out,
        "| network | step | input upload | forward + loss | backward | optimiser |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    out.push_str(&breakdown);
    if choice == DeviceChoice::Cpu {
        let (text, rates) = against_pytorch(cases, device, threads, quick)?;
        out.push_str(&text);
        // The 1-thread rates (the all-thread ones were measured above).
        measured.extend(rates.into_iter().filter(|r| r.threads == 1 && threads > 1));
    }
    for case in cases {
        if let ModelSpec::PreactResnet {
            depth: 18, width, ..
        } = case.model
            && case.shape == [3, 32, 32]
        {
            out.push_str(&operations(case, width, device, threads)?);
        }
    }
    Ok((out, measured))
}

/// The record of `case` trained at `examples_per_sec` for the cost model (store::throughput).
fn throughput(
    case: &Case,
    choice: DeviceChoice,
    threads: usize,
    examples_per_sec: f64,
) -> Throughput {
    let flops = crate::spec::cost::trained_example_flops(&case.model, &case.shape, case.classes);
    Throughput {
        device: choice.kind().to_string(),
        threads,
        model: case.model.name().to_string(),
        flops_per_sec: flops * examples_per_sec,
        source: "bench".to_string(),
    }
}

/// ERM training examples per second of `case` on a pool of `threads` threads.
fn erm_rate(case: &Case, device: &Device, threads: usize) -> Result<f64, TrainError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| TrainError::Io(std::io::Error::other(e)))?;
    pool.install(|| measure(case, device))
        .map(|m| m.erm_per_sec)
}

/// The "against PyTorch" section: each case at one thread and at `threads`, ours then
/// PyTorch's (scripts/torch_bench.py) back to back, and their ratio.
fn against_pytorch(
    cases: &[Case],
    device: &Device,
    threads: usize,
    quick: bool,
) -> Result<(String, Vec<Throughput>), TrainError> {
    let mut out = String::from("\n## Against PyTorch\n\n");
    let counts = thread_counts(threads);
    let mut measured = Vec::new();
    let torch = match torch::Torch::find() {
        Ok(t) => t,
        Err(why) => {
            let _ = writeln!(
                out,
                "Not measured: {why}. Install PyTorch in a virtual environment and name its Python in `MIXSWEEP_PYTHON` (README, \"Benchmark\")."
            );
            // Only the 1-thread rates: the caller measured the all-thread ones.
            if threads > 1 {
                for case in cases {
                    let rate = erm_rate(case, device, 1)?;
                    measured.push(throughput(case, DeviceChoice::Cpu, 1, rate));
                }
            }
            return Ok((out, measured));
        }
    };
    let _ = writeln!(
        out,
        "The same network and step in PyTorch {} (scripts/torch_bench.py), timed right after ours at the same thread count (best of its rounds; ours: the ERM rate above, measured again here). Ratio = mixsweep / PyTorch; above 1 we are faster.\n",
        torch.version
    );
    let _ = writeln!(
        out,
        "| network | threads | mixsweep examples/s | PyTorch examples/s | ratio |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for case in cases {
        for &n in &counts {
            eprintln!(
                "bench: {} on {n} thread(s), ours then PyTorch ...",
                case.name
            );
            let ours = erm_rate(case, device, n)?;
            measured.push(throughput(case, DeviceChoice::Cpu, n, ours));
            let cell = match torch.examples_per_sec(case.name, n, quick) {
                Ok(theirs) => format!("{theirs:.0} | {:.2}", ours / theirs),
                Err(why) => format!("failed: {why} | –"),
            };
            let _ = writeln!(out, "| {} | {n} | {ours:.0} | {cell} |", case.name);
        }
    }
    Ok((out, measured))
}

/// One thread, and `threads` when that is more.
fn thread_counts(threads: usize) -> Vec<usize> {
    if threads > 1 {
        vec![1, threads]
    } else {
        vec![1]
    }
}

/// The per-operation section for PreActResNet18 at `width`: at one thread and at `threads`,
/// the ERM step measured whole and each kind of operation summed over the network's shapes
/// (`ops`), with what the operations leave of the step as "the rest".
fn operations(
    case: &Case,
    width: usize,
    device: &Device,
    threads: usize,
) -> Result<String, TrainError> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## {}: where an ERM step's time goes, operation by operation\n",
        case.name
    );
    let _ = writeln!(
        out,
        "Each conv shape, batch norm (training mode) and ReLU of the network timed alone at batch {} (median of a few repetitions), times how often one step does it; \"the rest\" is the whole ERM step less these (optimiser, loss, additions, reshapes, autodiff's bookkeeping). Input gradient = autodiff with only the input tracked, less the forward; weight gradient = `conv2d_weight_backward` alone. Operations timed alone pay allocations and cold caches that a step amortises, so their sum can exceed the step: a negative rest says so rather than hiding it.\n",
        case.batch
    );
    let _ = writeln!(
        out,
        "| threads | step | conv forward | conv input grad | conv weight grad | BN forward | BN backward | ReLU fwd + bwd | the rest |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let counts = thread_counts(threads);
    let reps = if width >= 64 { 3 } else { 5 };
    let mut shapes = String::new();
    for &n in &counts {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| TrainError::Io(std::io::Error::other(e)))?;
        let (step, (b, per_shape)) = pool.install(|| -> Result<_, TrainError> {
            let m = measure(case, device)?;
            Ok((
                case.batch as f64 / m.erm_per_sec,
                ops::preact18(width, case.batch, reps, device),
            ))
        })?;
        let ms = |t: f64| format!("{:.1} ms ({:.0}%)", 1000.0 * t, 100.0 * t / step);
        let _ = writeln!(
            out,
            "| {n} | {:.1} ms | {} | {} | {} | {} | {} | {} | {} |",
            1000.0 * step,
            ms(b.conv_forward),
            ms(b.conv_input_grad),
            ms(b.conv_weight_grad),
            ms(b.norm_forward),
            ms(b.norm_backward),
            ms(b.relu_forward + b.relu_backward),
            ms(step - b.total())
        );
        for (c, t) in per_shape {
            let _ = writeln!(
                shapes,
                "| {n} | {}→{}, {}×{}, stride {}, {}×{} in | ×{} | {:.2} | {:.2} | {:.2} |",
                c.c_in,
                c.c_out,
                c.kernel,
                c.kernel,
                c.stride,
                c.side,
                c.side,
                c.count,
                1000.0 * t[0],
                1000.0 * t[1],
                1000.0 * t[2]
            );
        }
    }
    let _ = writeln!(
        out,
        "\nPer conv shape (ms for one call at batch {}):\n\n| threads | conv | per step | forward | input grad | weight grad |\n|---|---|---|---|---|---|",
        case.batch
    );
    out.push_str(&shapes);
    Ok(out)
}

fn cpu_model() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
    });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!(
        "{}, {cores} cores",
        model.unwrap_or_else(|| "unknown CPU".into())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_case_measures_every_figure() {
        let case = Case {
            name: "tiny",
            model: ModelSpec::PreactResnet {
                depth: 18,
                width: 2,
                stem_stride: 1,
                bn_gamma: Default::default(),
            },
            shape: vec![1, 8, 8],
            classes: 3,
            batch: 4,
            layers: vec![0, 2],
            steps: 2,
            rounds: 1,
        };
        let m = measure(&case, &Device::flex()).unwrap();
        assert!(m.erm_per_sec > 0.0 && m.mixup_per_sec > 0.0);
        assert!(m.mix_ops > 0.0);
        assert!(m.phases.iter().all(|&p| p >= 0.0) && m.phases[1] > 0.0 && m.phases[2] > 0.0);
        let (text, _) = run(&[case], &Device::flex(), DeviceChoice::Cpu, 1, true).unwrap();
        assert!(text.contains("| tiny | 4 | {0, 2} |"), "{text}");
    }
}
