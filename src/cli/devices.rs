//! `mixsweep devices`: what this binary can compute on — the CPU with its cores, each graphics
//! adapter its `vulkan` / `wgpu` backends see (name, type, API, driver, memory), the NVIDIA GPUs
//! when it has `cuda` — and what `--devices auto` would pick from them.

use std::fmt::Write as _;

use super::{CliError, cores};
use crate::schedule::devices::{self, PoolDevice};
use crate::spec::types::Adapter;
use crate::train::device;

/// Prints the devices as a table, or as one JSON object with `json`.
pub fn devices(json: bool) -> Result<(), CliError> {
    let adapters = device::adapters();
    let features = device::built_features();
    let nvidia = nvidia_gpus();
    let auto: Vec<String> = devices::auto(adapters)
        .iter()
        .map(|d| match d {
            PoolDevice::Cpu(_) => "cpu".to_string(),
            other => other.to_string(),
        })
        .collect();
    if json {
        let value = serde_json::json!({
            "cpu": { "device": "cpu", "cores": cores(), "backend": "burn flex" },
            "features": features,
            "adapters": adapters,
            "nvidia": nvidia,
            "auto": auto,
        });
        println!("{value}");
        return Ok(());
    }
    print!("{}", table(adapters, &features, &nvidia, &auto));
    Ok(())
}

/// The human-readable listing.
fn table(adapters: &[Adapter], features: &[&str], nvidia: &[String], auto: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cpu       {} core(s), burn's Flex backend (always built in)",
        cores()
    );
    for a in adapters {
        let memory = a
            .memory_bytes
            .map(|m| format!(", {} device memory", gib(m)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<9} {} — {}, {}, driver {}{memory}, largest buffer {}",
            a.device.to_string(),
            a.name,
            a.kind,
            a.api,
            if a.driver.is_empty() { "?" } else { &a.driver },
            gib(a.max_buffer_bytes)
        );
    }
    let has_cuda = features.contains(&"cuda");
    for (i, line) in nvidia.iter().enumerate() {
        let name = if has_cuda {
            format!("cuda:{i}")
        } else {
            "(cuda)".into()
        };
        let _ = writeln!(out, "{name:<9} {line}");
    }
    if features.is_empty() {
        let _ = writeln!(
            out,
            "\nThis mixsweep has no GPU backend built in: rebuild with `--features wgpu` (any Vulkan, Metal or DX12 adapter), `vulkan` or `cuda` (see the README's GPU section)."
        );
    } else {
        let _ = writeln!(out, "\nGPU backends built in: {}.", features.join(", "));
        if adapters.is_empty() && (features.contains(&"wgpu") || features.contains(&"vulkan")) {
            let _ = writeln!(
                out,
                "No graphics adapter answered: install the GPU's Vulkan driver and the loader (Debian: libvulkan1, and mesa-vulkan-drivers for Mesa's drivers)."
            );
        }
    }
    if !nvidia.is_empty() && !has_cuda {
        let _ = writeln!(
            out,
            "nvidia-smi lists NVIDIA GPUs, but this binary lacks the `cuda` feature: use them through wgpu:N / vulkan:N, or rebuild with `--features cuda`."
        );
    }
    let _ = writeln!(
        out,
        "--devices auto would use: {} (software adapters on the CPU are used only when named).",
        auto.join(", ")
    );
    out
}

/// `nvidia-smi -L`'s lines, where the driver is installed.
fn nvidia_gpus() -> Vec<String> {
    std::process::Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("GPU "))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}
