//! Which device a run computes on. burn 0.22 picks the backend from the device at run time, so
//! one binary serves the CPU (Flex) and, when built with the `cuda` or `vulkan` feature, GPUs.
//! A device that is not built in, or not present, is a clear error before training starts.

use burn::prelude::*;

pub use crate::spec::types::DeviceChoice;

/// Why a device cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "device {device}: this mixsweep was built without the `{feature}` feature; rebuild with `cargo build --release --features {feature}` (see the README's GPU section)"
    )]
    NotBuilt {
        device: DeviceChoice,
        feature: &'static str,
    },
    #[error("device {device} is not available on this machine: {reason}")]
    Unavailable {
        device: DeviceChoice,
        reason: String,
    },
}

/// Whether this binary has the backend for `choice` built in (no device is touched).
pub fn check_built(choice: DeviceChoice) -> Result<(), DeviceError> {
    match choice {
        DeviceChoice::Cuda(_) if !cfg!(feature = "cuda") => Err(DeviceError::NotBuilt {
            device: choice,
            feature: "cuda",
        }),
        DeviceChoice::Vulkan(_) if !cfg!(feature = "vulkan") => Err(DeviceError::NotBuilt {
            device: choice,
            feature: "vulkan",
        }),
        _ => Ok(()),
    }
}

/// Opens `choice` and checks that it computes, by moving one number there and back.
pub fn open(choice: DeviceChoice) -> Result<Device, DeviceError> {
    check_built(choice)?;
    match choice {
        DeviceChoice::Cpu => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda(index) => probe(choice, Device::cuda(index)),
        #[cfg(feature = "vulkan")]
        DeviceChoice::Vulkan(index) => probe(
            choice,
            Device::vulkan(burn::tensor::DeviceKind::DiscreteGpu(index)),
        ),
        // Not built in: `check_built` has already said so.
        #[allow(unreachable_patterns)]
        other => Err(DeviceError::NotBuilt {
            device: other,
            feature: if matches!(other, DeviceChoice::Cuda(_)) {
                "cuda"
            } else {
                "vulkan"
            },
        }),
    }
}

/// burn panics when a GPU runtime cannot start; turn that into an error.
#[cfg_attr(not(any(feature = "cuda", feature = "vulkan")), allow(dead_code))]
fn probe(choice: DeviceChoice, device: Device) -> Result<Device, DeviceError> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| {
        let t = Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), &device);
        t.into_data()
            .try_to_vec::<f32>()
            .map_err(|e| format!("{e:?}"))
    });
    std::panic::set_hook(hook);
    match result {
        Ok(Ok(v)) if v == [1.0] => Ok(device),
        Ok(Ok(v)) => Err(DeviceError::Unavailable {
            device: choice,
            reason: format!("a round trip returned {v:?}"),
        }),
        Ok(Err(e)) => Err(DeviceError::Unavailable {
            device: choice,
            reason: e,
        }),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the runtime failed to start".into());
            Err(DeviceError::Unavailable {
                device: choice,
                reason: format!(
                    "no GPU adapter or driver answered (check the driver and, for Vulkan, libvulkan1); burn said: {reason}"
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_unbuilt_backends_say_how_to_build_them() {
        assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda:2".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(2)));
        assert_eq!(
            "vulkan".parse::<DeviceChoice>(),
            Ok(DeviceChoice::Vulkan(0))
        );
        assert!(
            "gpu:0"
                .parse::<DeviceChoice>()
                .unwrap_err()
                .contains("cpu, cuda:N or vulkan:N")
        );
        assert!(open(DeviceChoice::Cpu).is_ok());
        #[cfg(not(feature = "cuda"))]
        assert!(
            open(DeviceChoice::Cuda(0))
                .unwrap_err()
                .to_string()
                .contains("--features cuda")
        );
    }
}
