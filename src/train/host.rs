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

impl DeviceRead {
    /// The line that says the device could not allocate memory, if the read failed for that
    /// (`store::records::out_of_memory_line`).
    pub fn out_of_memory(&self) -> Option<&str> {
        crate::store::records::out_of_memory_line(&self.0)
    }
}

/// The values of `t` in row-major order, as f32.
pub fn floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, DeviceRead> {
    floats_of(t.try_into_data().map_err(|e| DeviceRead(e.to_string()))?)
}

/// The one value of `t`, as f32.
pub fn scalar<const D: usize>(t: Tensor<D>) -> Result<f32, DeviceRead> {
    t.try_into_scalar::<f32>()
        .map_err(|e| DeviceRead(e.to_string()))
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

    #[test]
    fn an_allocation_failure_is_recognised_by_its_line() {
        // The chain burn 0.22.1's wgpu runtime reports when a batch's activations exceed
        // lavapipe's largest buffer (abridged from a real run's log).
        let read = DeviceRead(
            "An error happened during execution\nCaused by:\n  Several failures at once\nCaused by:\n  An IO error happened\nCaused by:\n  can't allocate buffer of size: 2293760000\nNo backtrace available".into(),
        );
        assert_eq!(
            read.out_of_memory(),
            Some("can't allocate buffer of size: 2293760000")
        );
        assert_eq!(DeviceRead("dtype mismatch".into()).out_of_memory(), None);
    }
}
