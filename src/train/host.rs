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
    floats_of(t.into_data())
}

/// The values of data read from a device, as f32; data of another type is an error.
pub fn floats_of(data: TensorData) -> Result<Vec<f32>, DeviceRead> {
    data.try_to_vec::<f32>()
        .map_err(|e| DeviceRead(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_fails_is_an_error_not_an_empty_vector() {
        // Before, `try_to_vec().unwrap_or_default()` turned this into `[]`, which the test-set
        // loop read as no logits and the evaluation as 0% error.
        let ints = TensorData::new(vec![1i64, 2, 3], [3]);
        assert!(floats_of(ints).is_err());
        let ok = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &Device::flex());
        assert_eq!(floats(ok).unwrap(), [1.0, 2.0]);
    }
}
