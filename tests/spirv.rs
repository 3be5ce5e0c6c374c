//! A minimal reproducer of the crash of burn's SPIR-V path (`--features vulkan`, device
//! `vulkan:N`) on Mesa's lavapipe (22.3.6 in Debian bookworm, here; the issue that asked for
//! this reports 25.0.7 from bookworm-backports crashing the same way). Built without the
//! `vulkan` feature, the file is empty; its tests are ignored because the crash kills the test
//! process. Run them on purpose:
//!
//! ```sh
//! XDG_RUNTIME_DIR=$(mktemp -d) cargo test --release --features vulkan --test spirv -- --ignored --nocapture
//! ```
//!
//! What it takes (found with `CUBECL_DEBUG_LOG=stderr`, which prints each kernel's SPIR-V,
//! and `spirv-as` / `spirv-val` from Debian's spirv-tools):
//! - Element-wise kernels run. The first matmul (cubek-matmul's `MatmulEntry`, the only
//!   kernel here with shared memory) kills the process with SIGSEGV in `libvulkan_lvp.so`
//!   while wgpu creates its compute pipeline.
//! - That kernel is not valid SPIR-V. cubecl-spirv 0.11.3 declares each shared-memory
//!   (Workgroup) array as a variable whose type is a pointer to a *pointer* to the array
//!   (`%13 = OpTypePointer Workgroup %12`, `%12 = OpTypePointer Workgroup %array`,
//!   `%6 = OpVariable %13 Workgroup`). It then indexes that variable as the array itself
//!   (`OpInBoundsAccessChain %ptr_vec2 %6 %i`). spirv-as rejects the module: "OpInBoundsAccessChain
//!   reached non-composite type while indexes still remain to be traversed".
//! - With the three variables declared as plain pointers to their arrays, the same module
//!   assembles and passes `spirv-val --target-env vulkan1.3`. Mesa's spirv_to_nir does not
//!   validate its input and crashes on it; NVIDIA's driver may well accept it.
//! - No setting of burn or cubecl avoids the shared-memory matmul, so on lavapipe use
//!   `wgpu:N` (WGSL), where the same kernels compile through naga.
#![cfg(feature = "vulkan")]

use burn::prelude::*;
use mixsweep::train::device::{DeviceChoice, open};

fn lavapipe() -> Device {
    open(DeviceChoice::Vulkan(0)).expect("a Vulkan adapter (install mesa-vulkan-drivers)")
}

#[test]
#[ignore = "needs a Vulkan adapter; run on purpose (see the file's comment)"]
fn an_element_wise_op_runs_through_spirv() {
    let device = lavapipe();
    let x = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0], [3]), &device);
    let y: Vec<f32> = (x.clone() * x + 1.0).into_data().try_to_vec().unwrap();
    assert_eq!(y, [2.0, 5.0, 10.0]);
}

#[test]
#[ignore = "kills the process with SIGSEGV on lavapipe: cubecl-spirv 0.11.3's matmul declares shared memory as a pointer to a pointer (see the file's comment)"]
fn a_matmul_through_spirv_crashes_lavapipe() {
    let device = lavapipe();
    let a = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; 64], [8, 8]), &device);
    let c: Vec<f32> = a.clone().matmul(a).into_data().try_to_vec().unwrap();
    assert!(c.iter().all(|&v| v == 8.0));
}
