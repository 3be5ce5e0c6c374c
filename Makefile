# Thin wrappers around the mixsweep CLI. One release build serves the sweep and the tests.
CARGO_TARGET_DIR ?= target
export CARGO_TARGET_DIR
MIXSWEEP := $(CARGO_TARGET_DIR)/release/mixsweep
EXPERIMENT ?= experiments/spirals.yaml

.PHONY: build sweep plan status report test test-deps test-slurm test-gpu bench data clean-runs

build:
	cargo build --release --locked

# The report is written even when some runs failed (exit 1), not on bad input (exit 2).
sweep: build
	@$(MIXSWEEP) sweep $(EXPERIMENT); rc=$$?; [ $$rc -ne 2 ] || exit 2; \
	$(MIXSWEEP) report $(EXPERIMENT) && exit $$rc

plan: build
	$(MIXSWEEP) plan $(EXPERIMENT)

status: build
	$(MIXSWEEP) status $(EXPERIMENT)

report: build
	$(MIXSWEEP) report $(EXPERIMENT)

# The data tests read the real Fashion-MNIST files, so `make data` comes first; the runner
# tests (tests/runner.rs) train with a numpy-only Python program, so numpy must import.
test: data test-deps
	cargo test --release --locked

test-deps:
	@python3 -c 'import numpy' 2>/dev/null || python3 -m pip install --quiet numpy || \
	  { echo "tests/runner.rs needs python3 with numpy: install python3-numpy or pip install numpy" >&2; exit 1; }

# The job-array test against a real one-node Slurm on this host: installs Debian's slurmctld,
# slurmd and munge if missing (needs root), starts them, runs tests/slurm.rs, stops them.
test-slurm:
	bash scripts/ci-slurm.sh up
	cargo test --release --locked --test slurm -- --ignored; rc=$$?; bash scripts/ci-slurm.sh down; exit $$rc

# The GPU path (tests/gpu.rs) built with burn's wgpu backend, on the first graphics adapter:
# a real GPU, or Mesa's lavapipe (Vulkan on the CPU; Debian: mesa-vulkan-drivers) where
# there is none. scripts/ci-gpu.sh installs lavapipe and runs this.
test-gpu: data
	cargo test --release --locked --features wgpu --test gpu

# Training throughput, ERM vs Manifold Mixup, and the cost of mixing: reports/bench.md.
bench: build
	$(MIXSWEEP) bench --out reports/bench.md

# Real data: Fashion-MNIST and the UCI digits from Debian's packages; with DOWNLOAD=1 also
# CIFAR-10/100, SVHN, Tiny-ImageNet and MNIST from their home sites (MD5-checked).
data:
	@./scripts/get-data.sh $(if $(DOWNLOAD),--download,)

clean-runs:
	rm -rf runs
