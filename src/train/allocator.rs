//! The C allocator's settings for training on the CPU.
//!
//! Flex keeps every tensor in a `Vec` from the global allocator, glibc's malloc. By default
//! glibc serves each block of 128 KiB or more (any activation at batch 100) with its own
//! `mmap` and unmaps it on free, and gives the top of the heap back to the kernel when more
//! than 128 KiB of it is free. A training step allocates and frees the same few hundred large
//! tensors every time, so each one came back as fresh pages: a page fault per 4 KiB and the
//! kernel zeroing them, then TLB shootdowns on unmap. In a `perf` profile of a PreActResNet18
//! width-16 step those were 11% of the samples; keeping freed blocks in the heap made the
//! step 14% faster on 1 thread and 26% on 2 (`mixsweep bench`, same binary, with and without).
//! The cost is that the process keeps its peak heap until it exits, which a training process
//! reaches at every step anyway.

/// Blocks up to glibc's largest mmap threshold (32 MiB on 64-bit, the most `mallopt` accepts)
/// come from the heap, and freed heap memory is kept (trimmed only beyond 2 GiB). Call once,
/// before the work starts; does nothing where the C library is not glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning parameters; it is called from the main
    // thread before training starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
