# vtgrid: the two commands a newcomer needs are `make grid` and `make test` (see README.md).

# A target directory outside the clone: CI's fresh clones reuse the RocksDB build between runs.
CARGO_TARGET_DIR ?= $(HOME)/.cache/vtgrid-target
export CARGO_TARGET_DIR
CARGO ?= cargo
VTGRID := $(CARGO_TARGET_DIR)/debug/vtgrid

.PHONY: setup build grid test check sim-sweep chaos-short

# RocksDB's bindings run bindgen, which needs libclang. Install it when missing (Debian).
setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build -p vtgrid-cli

# Run the embedded single-cluster grid in the foreground; data under ./vtgrid-data. Ctrl-C stops it.
grid: build
	$(VTGRID) grid up

# Every test: unit, storage conformance, turmoil simulations, real-process tests. The real-process
# tests spawn the `vtgrid` binary, which `cargo test` alone does not build.
test: setup
	$(CARGO) build -p vtgrid-cli
	$(CARGO) test --workspace --no-fail-fast

# What CI checks besides the tests.
check: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash scripts/check-boundaries.sh

# The long seed sweep of the random schedules (see README): 0..N for each of the four random
# tests, 7000 by default (28,000 schedules).
sim-sweep: setup
	VTGRID_SIM_SEEDS=$${VTGRID_SIM_SEEDS:-7000} $(CARGO) test --profile sim -p vtgrid-tests --test grid sim::random -- --nocapture

# The short chaos schedule CI runs after the tests (chaos/README.md): real node and agent
# processes of the three-site grid broken on a fixed seed while two hosts work, then judged; in
# network namespaces with path and disk faults when run as root, else on loopback.
CHAOS := $(CARGO_TARGET_DIR)/debug/vtgrid-chaos
chaos-short: build
	$(CARGO) build -p vtgrid-chaos
	rm -rf $(CARGO_TARGET_DIR)/chaos-short
	$(CHAOS) run --config cluster-config/three-site-ha-dr.toml --seed $${VTGRID_CHAOS_SEED:-1} \
		--secs 150 --max-faults 10 --grace-secs 3 --lease-secs 6 --vtgrid $(VTGRID) --out $(CARGO_TARGET_DIR)/chaos-short
