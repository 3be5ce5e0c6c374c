//! Which device a run computes on. burn 0.22 picks the backend from the device at run time, so
//! one binary serves the CPU (Flex) and, when built with the `cuda`, `vulkan` or `wgpu`
//! feature, GPUs. A device that is not built in, or not present, is a clear error before
//! training starts. The graphics adapters are listed here too (`mixsweep devices`), counted
//! the way `vulkan:N` and `wgpu:N` count them: the N-th adapter of the API, whatever its type.

use burn::prelude::*;

pub use crate::spec::types::{Adapter, AdapterType, DeviceChoice};

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

/// The cargo features of this binary that build a GPU backend in.
pub fn built_features() -> Vec<&'static str> {
    [
        ("cuda", cfg!(feature = "cuda")),
        ("vulkan", cfg!(feature = "vulkan")),
        ("wgpu", cfg!(feature = "wgpu")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

/// Whether this binary has the backend for `choice` built in (no device is touched).
pub fn check_built(choice: DeviceChoice) -> Result<(), DeviceError> {
    match choice.feature() {
        Some(feature) if !built_features().contains(&feature) => Err(DeviceError::NotBuilt {
            device: choice,
            feature,
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
        DeviceChoice::Vulkan(_) => probe(choice, Device::vulkan(graphics::burn_kind(choice)?)),
        #[cfg(feature = "wgpu")]
        DeviceChoice::Wgpu(_) => probe(choice, Device::wgpu(graphics::burn_kind(choice)?)),
        // Not built in: `check_built` has already said so.
        #[allow(unreachable_patterns)]
        other => Err(DeviceError::NotBuilt {
            device: other,
            feature: other.feature().unwrap_or("cpu"),
        }),
    }
}

/// The graphics adapters this binary's `vulkan` and `wgpu` backends can use (none when it has
/// neither), each named by the device that selects it. Enumerated once per process: listing
/// them starts a graphics API instance, and they do not change while it runs.
pub fn adapters() -> &'static [Adapter] {
    static ADAPTERS: std::sync::OnceLock<Vec<Adapter>> = std::sync::OnceLock::new();
    ADAPTERS.get_or_init(|| {
        #[allow(unused_mut)]
        let mut out = Vec::new();
        #[cfg(feature = "vulkan")]
        out.extend(graphics::list(graphics::Api::Vulkan));
        #[cfg(feature = "wgpu")]
        out.extend(graphics::list(graphics::Api::Auto));
        out
    })
}

/// `choice` as provenance names it: a graphics adapter with its name, type and API
/// (`wgpu:0 (llvmpipe (LLVM 15.0.6, 256 bits), CPU (software), vulkan)`).
pub fn describe(choice: DeviceChoice) -> String {
    match adapters().iter().find(|a| a.device == choice) {
        Some(a) => format!("{choice} ({}, {}, {})", a.name, a.kind, a.api),
        None => choice.to_string(),
    }
}

/// Adapter discovery through the wgpu that burn is built on, mirroring how burn's wgpu runtime
/// (cubecl-wgpu 0.11) selects adapters, so that index N here is the adapter a run gets.
#[cfg(any(feature = "vulkan", feature = "wgpu"))]
mod graphics {
    use burn::tensor::DeviceKind;
    use burn::tensor::wgpu::wgpu;

    use super::{Adapter, AdapterType, DeviceChoice, DeviceError};

    /// Which API a device comes up on.
    #[derive(Clone, Copy)]
    pub enum Api {
        /// `vulkan:N`: pinned to Vulkan (SPIR-V where the build has it).
        #[cfg_attr(not(feature = "vulkan"), allow(dead_code))]
        Vulkan,
        /// `wgpu:N`: the first API of wgpu's chain (Vulkan, DX12, OpenGL; Metal on macOS)
        /// that has a real GPU, else the first that has any adapter — as burn's `Auto`.
        #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
        Auto,
    }

    fn candidates(api: Api) -> Vec<wgpu::Backend> {
        match api {
            Api::Vulkan => vec![wgpu::Backend::Vulkan],
            Api::Auto if cfg!(target_os = "macos") => vec![wgpu::Backend::Metal],
            Api::Auto => vec![
                wgpu::Backend::Vulkan,
                wgpu::Backend::Dx12,
                wgpu::Backend::Gl,
            ],
        }
    }

    fn enumerate(backend: wgpu::Backend) -> Vec<wgpu::Adapter> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: backend.into(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        futures_lite::future::block_on(instance.enumerate_adapters(backend.into()))
    }

    /// The API `api` settles on and its adapters in enumeration order.
    fn settle(api: Api) -> Option<(wgpu::Backend, Vec<wgpu::Adapter>)> {
        let mut software_only = None;
        for backend in candidates(api) {
            let adapters = enumerate(backend);
            if adapters
                .iter()
                .any(|a| a.get_info().device_type != wgpu::DeviceType::Cpu)
            {
                return Some((backend, adapters));
            }
            if software_only.is_none() && !adapters.is_empty() {
                software_only = Some((backend, adapters));
            }
        }
        software_only
    }

    fn adapter_type(t: wgpu::DeviceType) -> AdapterType {
        match t {
            wgpu::DeviceType::DiscreteGpu => AdapterType::DiscreteGpu,
            wgpu::DeviceType::IntegratedGpu => AdapterType::IntegratedGpu,
            wgpu::DeviceType::VirtualGpu => AdapterType::VirtualGpu,
            wgpu::DeviceType::Cpu => AdapterType::Cpu,
            wgpu::DeviceType::Other => AdapterType::Other,
        }
    }

    /// The adapters of `api`, as `vulkan:N` / `wgpu:N` count them.
    pub fn list(api: Api) -> Vec<Adapter> {
        let Some((backend, adapters)) = settle(api) else {
            return Vec::new();
        };
        adapters
            .iter()
            .enumerate()
            .map(|(n, a)| {
                let info = a.get_info();
                let driver = [info.driver.as_str(), info.driver_info.as_str()]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                Adapter {
                    device: match api {
                        Api::Vulkan => DeviceChoice::Vulkan(n),
                        Api::Auto => DeviceChoice::Wgpu(n),
                    },
                    name: info.name.clone(),
                    kind: adapter_type(info.device_type),
                    api: backend.to_str().to_string(),
                    driver,
                    memory_bytes: super::memory::device_local(a),
                    max_buffer_bytes: a.limits().max_buffer_size,
                }
            })
            .collect()
    }

    /// burn's selector for the adapter `choice` names: burn counts each adapter type on its
    /// own (`DiscreteGpu(0)` is the first discrete GPU), so the overall index becomes the type
    /// and the index among the API's adapters of that type.
    pub fn burn_kind(choice: DeviceChoice) -> Result<DeviceKind, DeviceError> {
        let unavailable = |reason: String| DeviceError::Unavailable {
            device: choice,
            reason,
        };
        let same_api: Vec<&Adapter> = super::adapters()
            .iter()
            .filter(|a| a.device.kind() == choice.kind())
            .collect();
        let Some(index) = same_api.iter().position(|a| a.device == choice) else {
            return Err(unavailable(format!(
                "there is no such adapter: this machine has {} for {}:N (`mixsweep devices` lists them; a Vulkan driver such as mesa-vulkan-drivers and libvulkan1 must be installed)",
                same_api.len(),
                choice.kind()
            )));
        };
        let t = same_api[index].kind;
        let nth = same_api[..index].iter().filter(|a| a.kind == t).count();
        Ok(match t {
            AdapterType::DiscreteGpu => DeviceKind::DiscreteGpu(nth),
            AdapterType::IntegratedGpu => DeviceKind::IntegratedGpu(nth),
            AdapterType::VirtualGpu => DeviceKind::VirtualGpu(nth),
            AdapterType::Cpu if nth == 0 => DeviceKind::Cpu,
            AdapterType::Cpu => {
                return Err(unavailable(
                    "it is a second CPU adapter, which burn cannot select (only the first)".into(),
                ));
            }
            AdapterType::Other => {
                return Err(unavailable(
                    "it reports its type as `other`, which burn 0.22 cannot select".into(),
                ));
            }
        })
    }
}

/// Device-local memory of an adapter: Vulkan's device-local heaps; other APIs do not say.
#[cfg(any(feature = "vulkan", feature = "wgpu"))]
mod memory {
    use burn::tensor::wgpu::wgpu;

    pub fn device_local(adapter: &wgpu::Adapter) -> Option<u64> {
        if adapter.get_info().backend != wgpu::Backend::Vulkan {
            return None;
        }
        vulkan(adapter)
    }

    /// The largest heap flagged `VK_MEMORY_HEAP_DEVICE_LOCAL_BIT` (0x1): what burn's wgpu
    /// runtime takes as the device's memory (a driver may list a small host-visible window
    /// first; on an integrated or software adapter it is the share of system RAM).
    #[cfg(not(any(target_os = "macos", target_family = "wasm")))]
    fn vulkan(adapter: &wgpu::Adapter) -> Option<u64> {
        const DEVICE_LOCAL: u32 = 0x1;
        // SAFETY: the hal adapter is only read, while `adapter` keeps it alive, and
        // vkGetPhysicalDeviceMemoryProperties has no side effects.
        unsafe {
            let hal = adapter.as_hal::<wgpu::hal::api::Vulkan>()?;
            let props = hal
                .shared_instance()
                .raw_instance()
                .get_physical_device_memory_properties(hal.raw_physical_device());
            props
                .memory_heaps_as_slice()
                .iter()
                .filter(|h| h.flags.as_raw() & DEVICE_LOCAL != 0)
                .map(|h| h.size)
                .max()
        }
    }

    #[cfg(any(target_os = "macos", target_family = "wasm"))]
    fn vulkan(_adapter: &wgpu::Adapter) -> Option<u64> {
        None
    }
}

/// burn panics when a GPU runtime cannot start; turn that into an error.
#[cfg_attr(
    not(any(feature = "cuda", feature = "vulkan", feature = "wgpu")),
    allow(dead_code)
)]
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
        assert_eq!("wgpu:1".parse::<DeviceChoice>(), Ok(DeviceChoice::Wgpu(1)));
        assert!(
            "gpu:0"
                .parse::<DeviceChoice>()
                .unwrap_err()
                .contains("cpu, cuda:N, vulkan:N or wgpu:N")
        );
        assert!(open(DeviceChoice::Cpu).is_ok());
        #[cfg(not(feature = "cuda"))]
        assert!(
            open(DeviceChoice::Cuda(0))
                .unwrap_err()
                .to_string()
                .contains("--features cuda")
        );
        #[cfg(not(feature = "wgpu"))]
        assert!(
            open(DeviceChoice::Wgpu(0))
                .unwrap_err()
                .to_string()
                .contains("--features wgpu")
        );
    }
}
