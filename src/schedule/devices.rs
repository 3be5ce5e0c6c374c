//! The device pool a sweep fans runs out over: `--devices auto`, `cpu`, `cpu:N` (the cores split
//! into N slots), `cuda:0,cuda:2`, `vulkan:0`, `wgpu:0`, or `fake:N` (N pretend GPUs for tests: children
//! get a GPU's CUDA_VISIBLE_DEVICES but compute on the CPU), with `--slots-per-device` runs
//! packed onto each GPU. A slot is where one child runs; the pool hands each child its device,
//! its environment and its thread count, and nothing else picks devices.

use std::fmt;
use std::str::FromStr;

use crate::spec::types::{Adapter, DeviceChoice};

/// One device of the pool, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolDevice {
    /// The CPU, its cores split into this many slots.
    Cpu(usize),
    Cuda(usize),
    Vulkan(usize),
    Wgpu(usize),
    /// A pretend GPU with this index (tests): CUDA_VISIBLE_DEVICES is set, the run uses the CPU.
    Fake(usize),
}

impl fmt::Display for PoolDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolDevice::Cpu(_) => write!(f, "cpu"),
            PoolDevice::Cuda(i) => write!(f, "cuda:{i}"),
            PoolDevice::Vulkan(i) => write!(f, "vulkan:{i}"),
            PoolDevice::Wgpu(i) => write!(f, "wgpu:{i}"),
            PoolDevice::Fake(i) => write!(f, "fake:{i}"),
        }
    }
}

/// `--devices`: `auto` or a comma-separated list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    Auto,
    List(Vec<PoolDevice>),
}

impl FromStr for Devices {
    type Err = String;
    fn from_str(s: &str) -> Result<Devices, String> {
        let s = s.trim();
        if s == "auto" {
            return Ok(Devices::Auto);
        }
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim) {
            let (kind, n) = match part.split_once(':') {
                Some((k, n)) => (
                    k,
                    Some(
                        n.parse::<usize>()
                            .map_err(|_| format!("`{part}`: `{n}` is not a whole number"))?,
                    ),
                ),
                None => (part, None),
            };
            match (kind, n) {
                ("cpu", None) => out.push(PoolDevice::Cpu(1)),
                ("cpu", Some(n)) if n >= 1 => out.push(PoolDevice::Cpu(n)),
                ("cuda", Some(i)) => out.push(PoolDevice::Cuda(i)),
                ("vulkan", Some(i)) => out.push(PoolDevice::Vulkan(i)),
                ("wgpu", Some(i)) => out.push(PoolDevice::Wgpu(i)),
                ("fake", Some(n)) if n >= 1 => out.extend((0..n).map(PoolDevice::Fake)),
                _ => {
                    return Err(format!(
                        "`{part}` is not a device; use auto, cpu, cpu:N (N slots), cuda:I, vulkan:I, wgpu:I or fake:N, comma-separated (e.g. cuda:0,cuda:2)"
                    ));
                }
            }
        }
        if out
            .iter()
            .filter(|d| matches!(d, PoolDevice::Cpu(_)))
            .count()
            > 1
        {
            return Err("name the CPU once (cpu:N splits it into N slots)".into());
        }
        Ok(Devices::List(out))
    }
}

/// Where one child runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// `cuda:2/1`: the device and the slot's index on it.
    pub label: String,
    /// The device's label (`cuda:2`), shared by its slots.
    pub device: String,
    /// Index of the device in the pool (slots of one device share it).
    pub group: usize,
    /// What the child is told to compute on (`cuda:0` under CUDA_VISIBLE_DEVICES=2).
    pub child_device: DeviceChoice,
    /// Extra environment of the child.
    pub env: Vec<(String, String)>,
    /// CPU threads of the child.
    pub threads: usize,
}

/// The slots of `devices`, with `slots_per_device` slots on each GPU and the host's `cores`
/// shared among all slots (each at least one thread).
pub fn slots(devices: &[PoolDevice], slots_per_device: usize, cores: usize) -> Vec<Slot> {
    let per = slots_per_device.max(1);
    let count: usize = devices
        .iter()
        .map(|d| if let PoolDevice::Cpu(n) = d { *n } else { per })
        .sum();
    let threads = (cores / count.max(1)).max(1);
    let mut out = Vec::new();
    for (group, d) in devices.iter().enumerate() {
        let (n, child_device, env) = match *d {
            PoolDevice::Cpu(n) => (n, DeviceChoice::Cpu, Vec::new()),
            PoolDevice::Cuda(i) => (
                per,
                DeviceChoice::Cuda(0),
                vec![("CUDA_VISIBLE_DEVICES".to_string(), i.to_string())],
            ),
            PoolDevice::Vulkan(i) => (per, DeviceChoice::Vulkan(i), Vec::new()),
            PoolDevice::Wgpu(i) => (per, DeviceChoice::Wgpu(i), Vec::new()),
            PoolDevice::Fake(i) => (
                per,
                DeviceChoice::Cpu,
                vec![("CUDA_VISIBLE_DEVICES".to_string(), i.to_string())],
            ),
        };
        for k in 0..n {
            let mut env = env.clone();
            env.push(("RAYON_NUM_THREADS".to_string(), threads.to_string()));
            out.push(Slot {
                label: format!("{d}/{k}"),
                device: d.to_string(),
                group,
                child_device,
                env,
                threads,
            });
        }
    }
    out
}

impl PoolDevice {
    /// What a run on this device is told to compute on (before any CUDA_VISIBLE_DEVICES
    /// renumbering): the backend it needs built in.
    pub fn choice(self) -> DeviceChoice {
        match self {
            PoolDevice::Cpu(_) | PoolDevice::Fake(_) => DeviceChoice::Cpu,
            PoolDevice::Cuda(i) => DeviceChoice::Cuda(i),
            PoolDevice::Vulkan(i) => DeviceChoice::Vulkan(i),
            PoolDevice::Wgpu(i) => DeviceChoice::Wgpu(i),
        }
    }
}

/// The devices `auto` finds: the GPUs named by CUDA_VISIBLE_DEVICES, else those the NVIDIA
/// driver lists (when this binary has the CUDA backend), else the real GPUs among `adapters`
/// (what this binary's `vulkan` / `wgpu` backends see: `mixsweep devices`), else the CPU.
/// A software adapter on the CPU (lavapipe) is never picked here: it is slower than the CPU
/// backend; name it (`--devices wgpu:0`) to use it.
pub fn auto(adapters: &[Adapter]) -> Vec<PoolDevice> {
    if let Ok(visible) = std::env::var("CUDA_VISIBLE_DEVICES") {
        let ids: Vec<usize> = visible
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        if !ids.is_empty() {
            return ids.into_iter().map(PoolDevice::Cuda).collect();
        }
    }
    if cfg!(feature = "cuda")
        && let Ok(out) = std::process::Command::new("nvidia-smi").arg("-L").output()
    {
        let n = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("GPU "))
            .count();
        if n > 0 {
            return (0..n).map(PoolDevice::Cuda).collect();
        }
    }
    let gpus = graphics_gpus(adapters);
    if !gpus.is_empty() {
        return gpus;
    }
    vec![PoolDevice::Cpu(1)]
}

/// The real GPUs among `adapters`, each once: through `vulkan:N` where the binary has both
/// backends (SPIR-V is burn's faster path), else through `wgpu:N`.
fn graphics_gpus(adapters: &[Adapter]) -> Vec<PoolDevice> {
    let gpus = || adapters.iter().filter(|a| a.kind.is_gpu());
    let vulkan: Vec<PoolDevice> = gpus()
        .filter_map(|a| match a.device {
            DeviceChoice::Vulkan(i) => Some(PoolDevice::Vulkan(i)),
            _ => None,
        })
        .collect();
    if !vulkan.is_empty() {
        return vulkan;
    }
    gpus()
        .filter_map(|a| match a.device {
            DeviceChoice::Wgpu(i) => Some(PoolDevice::Wgpu(i)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::types::AdapterType;

    #[test]
    fn device_lists_parse_and_bad_ones_say_what_is_allowed() {
        assert_eq!("auto".parse::<Devices>(), Ok(Devices::Auto));
        assert_eq!(
            "cuda:0,cuda:2".parse::<Devices>(),
            Ok(Devices::List(vec![
                PoolDevice::Cuda(0),
                PoolDevice::Cuda(2)
            ]))
        );
        assert_eq!(
            "cpu:4".parse::<Devices>(),
            Ok(Devices::List(vec![PoolDevice::Cpu(4)]))
        );
        assert_eq!(
            "fake:2".parse::<Devices>(),
            Ok(Devices::List(vec![
                PoolDevice::Fake(0),
                PoolDevice::Fake(1)
            ]))
        );
        assert_eq!(
            "wgpu:0,cpu".parse::<Devices>(),
            Ok(Devices::List(vec![PoolDevice::Wgpu(0), PoolDevice::Cpu(1)]))
        );
        assert!("gpu:0".parse::<Devices>().unwrap_err().contains("cuda:I"));
        assert!("cpu:0".parse::<Devices>().is_err());
    }

    #[test]
    fn slots_share_the_cores_and_pin_their_gpu() {
        // Two GPUs, two slots each, 16 cores: 4 slots of 4 threads; the child of cuda:2 sees
        // only GPU 2, as its cuda:0.
        let s = slots(&[PoolDevice::Cuda(0), PoolDevice::Cuda(2)], 2, 16);
        assert_eq!(s.len(), 4);
        assert!(s.iter().all(|x| x.threads == 4));
        assert_eq!(s[2].label, "cuda:2/0");
        assert_eq!(s[2].child_device, DeviceChoice::Cuda(0));
        assert!(
            s[2].env
                .contains(&("CUDA_VISIBLE_DEVICES".to_string(), "2".to_string()))
        );
        assert_eq!((s[2].group, s[3].group), (1, 1));
        // cpu:3 on 2 cores: three slots of one thread.
        let c = slots(&[PoolDevice::Cpu(3)], 1, 2);
        assert_eq!(c.iter().map(|x| x.threads).collect::<Vec<_>>(), [1, 1, 1]);
    }

    fn adapter(device: &str, kind: AdapterType) -> Adapter {
        Adapter {
            device: device.parse().unwrap(),
            name: "test".into(),
            kind,
            api: "vulkan".into(),
            driver: String::new(),
            memory_bytes: None,
            max_buffer_bytes: 1 << 30,
        }
    }

    #[test]
    fn auto_takes_real_gpus_never_a_cpu_adapter() {
        // lavapipe alone: auto stays on the CPU backend.
        let lavapipe = [adapter("wgpu:0", AdapterType::Cpu)];
        assert_eq!(graphics_gpus(&lavapipe), []);
        // A discrete GPU listed after lavapipe keeps its own index.
        let mixed = [
            adapter("wgpu:0", AdapterType::Cpu),
            adapter("wgpu:1", AdapterType::DiscreteGpu),
        ];
        assert_eq!(graphics_gpus(&mixed), [PoolDevice::Wgpu(1)]);
        // Both backends built in: the GPU through vulkan:N, once.
        let both = [
            adapter("vulkan:0", AdapterType::DiscreteGpu),
            adapter("wgpu:0", AdapterType::DiscreteGpu),
        ];
        assert_eq!(graphics_gpus(&both), [PoolDevice::Vulkan(0)]);
    }
}
