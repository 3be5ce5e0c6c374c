//! Reading and writing a network's hidden states at a mix point, through the same hook the
//! mixing uses: `Capture` keeps the hidden state (flattened to `[batch, features]`), `Replace`
//! substitutes given hidden states, so the rest of the network can be run from a point of the
//! hidden space (the paper's Figure 1 hidden-plane maps).

use std::cell::RefCell;

use burn::prelude::*;

use crate::models::MixHook;

/// Keeps the hidden state at mix point `layer`, flattened to `[batch, features]`.
pub struct Capture {
    pub layer: usize,
    pub state: RefCell<Option<Tensor<2>>>,
}

impl Capture {
    pub fn new(layer: usize) -> Capture {
        Capture {
            layer,
            state: RefCell::new(None),
        }
    }

    /// The captured state, if the forward pass reached the layer.
    pub fn take(&self) -> Option<Tensor<2>> {
        self.state.borrow_mut().take()
    }
}

impl MixHook for Capture {
    fn at<const D: usize>(&self, k: usize, h: Tensor<D>) -> Tensor<D> {
        if k == self.layer {
            let dims = h.dims();
            let features = dims[1..].iter().product::<usize>();
            *self.state.borrow_mut() = Some(h.clone().reshape([dims[0], features]));
        }
        h
    }
}

/// Replaces the hidden state at mix point `layer` by `with` (`[batch, features]`, reshaped to
/// the layer's shape; the batch must match the input's).
pub struct Replace {
    pub layer: usize,
    pub with: Tensor<2>,
}

impl MixHook for Replace {
    fn at<const D: usize>(&self, k: usize, h: Tensor<D>) -> Tensor<D> {
        if k == self.layer {
            self.with.clone().reshape(h.dims())
        } else {
            h
        }
    }
}
