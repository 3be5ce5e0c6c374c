//! The trained model in its two evaluation forms — `valid()` on the inference device for plain
//! predictions, frozen on the autodiff device for input gradients — with batched forward
//! passes that every measure shares, and the mean predictive entropy of logits.

use burn::module::Module;
use burn::prelude::*;

use super::hidden::{Capture, Replace};
use crate::models::{MixHook, Network};
use crate::train::host::{DeviceRead, floats};

/// Examples per forward pass.
pub const BATCH: usize = 500;

/// The model in its two evaluation forms.
pub struct Model {
    /// On the inference device.
    pub valid: Network,
    /// Frozen, on the autodiff device (for input gradients).
    pub frozen: Network,
    pub device: Device,
    pub ad: Device,
}

impl Model {
    /// `trained` is on the autodiff device `ad`, whose inference device is `device`.
    pub fn new(trained: Network, device: &Device, ad: &Device) -> Model {
        Model {
            valid: trained.valid(),
            frozen: trained.freeze(),
            device: device.clone(),
            ad: ad.clone(),
        }
    }

    /// Logits `[n, classes]` (row-major) of normalised inputs `x` (`[n, features]`), through
    /// `hook`, in batches.
    pub(super) fn logits<H: MixHook>(
        &self,
        x: &[f32],
        features: usize,
        hook: &H,
    ) -> Result<Vec<f32>, DeviceRead> {
        let mut out = Vec::new();
        for chunk in x.chunks(BATCH * features) {
            let t = Tensor::<2>::from_data(
                TensorData::new(chunk.to_vec(), [chunk.len() / features, features]),
                &self.device,
            );
            out.extend(floats(self.valid.forward(t, hook))?);
        }
        Ok(out)
    }

    /// Hidden states at mix point `layer` (`[n, dim]`, row-major) and `dim`.
    pub(super) fn hidden(
        &self,
        x: &[f32],
        features: usize,
        layer: usize,
    ) -> Result<(Vec<f32>, usize), DeviceRead> {
        let (mut out, mut dim) = (Vec::new(), 0);
        for chunk in x.chunks(BATCH * features) {
            let t = Tensor::<2>::from_data(
                TensorData::new(chunk.to_vec(), [chunk.len() / features, features]),
                &self.device,
            );
            let capture = Capture::new(layer);
            let _ = self.valid.forward(t, &capture);
            if let Some(h) = capture.take() {
                dim = h.dims()[1];
                out.extend(floats(h)?);
            }
        }
        Ok((out, dim))
    }

    /// Logits of hidden states `h` (`[n, dim]`) put in at mix point `layer`.
    pub(super) fn logits_from(
        &self,
        h: &[f32],
        dim: usize,
        layer: usize,
        input_features: usize,
    ) -> Result<Vec<f32>, DeviceRead> {
        let mut out = Vec::new();
        for chunk in h.chunks(BATCH * dim) {
            let n = chunk.len() / dim;
            let with =
                Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [n, dim]), &self.device);
            let dummy = Tensor::<2>::zeros([n, input_features], &self.device);
            out.extend(floats(self.valid.forward(dummy, &Replace { layer, with }))?);
        }
        Ok(out)
    }
}

/// Mean predictive entropy (nats) of rows of logits.
pub fn mean_entropy(logits: &[f32], classes: usize) -> f64 {
    let rows = logits.chunks(classes);
    let n = rows.len().max(1) as f64;
    rows.map(|z| {
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let e: Vec<f64> = z.iter().map(|&v| (v as f64 - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        -e.iter()
            .map(|&v| v / sum)
            .filter(|&p| p > 0.0)
            .map(|p| p * p.ln())
            .sum::<f64>()
    })
    .sum::<f64>()
        / n
}
