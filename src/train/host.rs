//! Tensors read back to the host. A read that fails (a device error, a dtype other than f32)
//! is an error the caller must handle, never an empty vector that would score as 0% error.

use burn::prelude::*;

/// A tensor could not be read back from its device.
#[derive(Debug, thiserror::Error)]
#[error("reading a tensor back from the device failed: {0}")]
pub struct DeviceRead(pub String);

impl From<DeviceRead> for std::io::Error {
    fn from(e: DeviceRead) -> Self {
        std::io::Error::other(e)
    }
}

/// The values of `t` in row-major order, as f32.
pub fn floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, DeviceRead> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| DeviceRead(format!("{e:?}")))
}
