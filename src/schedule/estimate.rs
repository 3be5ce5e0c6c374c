//! Expected run durations, for taking the longest runs first (which keeps the tail of a sweep
//! short) and for the ETA. A run's cost is its training FLOPs (spec::cost), turned into
//! seconds by the runs already done: a run whose spec differs from done runs only in the seed
//! is expected to take their mean time; any other, its cost × the median seconds per unit of
//! cost of the done runs. (Before any run is done, `cost::rate` estimates from measured
//! throughput instead.)

use std::collections::HashMap;

use crate::spec::RunSpec;

/// The spec without its seed: runs that differ only in the seed take about as long.
pub fn shape_key(spec: &RunSpec) -> String {
    let mut v = serde_json::to_value(spec).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.remove("seed");
    }
    v.to_string()
}

/// The cost of a run: its training FLOPs (spec::cost).
pub fn cost(spec: &RunSpec) -> f64 {
    crate::spec::cost::training_flops(spec)
}

/// What the runs done so far say about durations.
#[derive(Debug, Clone, Default)]
pub struct Durations {
    by_shape: HashMap<String, (f64, usize)>,
    /// Seconds per unit of cost of each done run, kept sorted.
    rates: Vec<f64>,
}

impl Durations {
    /// Records a done run's wall time.
    pub fn record(&mut self, spec: &RunSpec, seconds: f64) {
        let e = self.by_shape.entry(shape_key(spec)).or_insert((0.0, 0));
        e.0 += seconds;
        e.1 += 1;
        let c = cost(spec);
        if c > 0.0 {
            let rate = seconds / c;
            let at = self.rates.partition_point(|&r| r < rate);
            self.rates.insert(at, rate);
        }
    }

    /// Whether any run's duration is known yet.
    pub fn known(&self) -> bool {
        !self.rates.is_empty() || !self.by_shape.is_empty()
    }

    /// Expected seconds of `spec`; `None` until some run is done.
    pub fn seconds(&self, spec: &RunSpec) -> Option<f64> {
        if let Some(&(sum, n)) = self.by_shape.get(&shape_key(spec)) {
            return Some(sum / n as f64);
        }
        self.rates.get(self.rates.len() / 2).map(|r| r * cost(spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::node::Node;
    use crate::spec::resolve;

    fn spec(text: &str) -> RunSpec {
        resolve(&Node::parse(text).unwrap()).unwrap()
    }

    #[test]
    fn same_shape_takes_the_measured_time_and_others_scale_by_cost() {
        let a = spec(
            "{method: erm, seed: 0, model: {name: spiral_mlp}, data: {name: spirals}, train: {epochs: 10}}",
        );
        let a1 = spec(
            "{method: erm, seed: 1, model: {name: spiral_mlp}, data: {name: spirals}, train: {epochs: 10}}",
        );
        let b = spec(
            "{method: erm, seed: 0, model: {name: spiral_mlp}, data: {name: spirals}, train: {epochs: 30}}",
        );
        let mut d = Durations::default();
        assert_eq!(d.seconds(&a1), None);
        d.record(&a, 4.0);
        assert_eq!(d.seconds(&a1), Some(4.0));
        // Three times the epochs: three times the cost, so three times the time.
        assert!((d.seconds(&b).unwrap() - 12.0).abs() < 1e-9);
    }
}
