# vcmi-proxy: the two commands that matter are `make run` and `make test`.
CARGO   ?= cargo
PORT    ?= 5002
MUSL    := x86_64-unknown-linux-musl
ARGS    ?= logging=info port=$(PORT) capacity=50 healthcheck=30

.PHONY: build run test load bench bench-build release deb fmt clippy conformance-py clean

# The server binary only (the load tool is `make load`).
build:
	$(CARGO) build --release -p vcmi-proxy --bin vcmi-proxy

# Runs the server on 0.0.0.0:$(PORT) with the seed's defaults; logs go to
# ./proxyServer.log.
run: build
	./target/release/vcmi-proxy $(ARGS)

# Every test: unit tests, integration tests over loopback TCP and the
# conformance replay (tests/conformance/*.json), plus the load tool's own unit
# tests (no server test runs the tool).
test:
	$(CARGO) test --workspace --all-targets

# The load generator (tools/vcmi-load), a separate workspace crate:
# target/release/vcmi-load.
load:
	$(CARGO) build --release -p vcmi-load

bench:
	$(CARGO) bench

bench-build:
	$(CARGO) bench --no-run

# A static binary for any x86-64 Linux. SQLite (rusqlite, bundled) is C:
# it is compiled with musl-gcc, from Debian's musl-tools (installed here
# when missing and apt-get is at hand).
release:
	rustup target add $(MUSL)
	@command -v musl-gcc >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	    { apt-get install -y -qq musl-tools >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null && apt-get install -y -qq musl-tools >/dev/null; }; }; } || \
	    { echo "release: needs musl-gcc (apt-get install musl-tools)" >&2; exit 1; }
	CC_x86_64_unknown_linux_musl=musl-gcc $(CARGO) build --release -p vcmi-proxy --bin vcmi-proxy --target $(MUSL)
	@echo "static binary: target/$(MUSL)/release/vcmi-proxy"
	@file target/$(MUSL)/release/vcmi-proxy

# A .deb of the static binary with the systemd unit (packaging/), built by
# cargo-deb (installed first if missing); the package lands in
# target/debian/. packaging/ci-deb-smoke.sh installs and tries it.
deb: release
	@command -v cargo-deb >/dev/null 2>&1 || $(CARGO) install cargo-deb --locked
	$(CARGO) deb --no-build --target $(MUSL)

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The reference checker from ../shared against one fresh server (python3).
# Every scenario comes from 127.0.0.1 and many start games, so the
# per-address session cap (default 8) is lifted here; CONFORMANCE_DIR picks
# the scenarios (default: the recordings; tests/conformance holds ours, with
# the deliberate differences D1-D30 of PROTOCOL.md applied).
CONFORMANCE_DIR ?= ../shared/conformance/scenarios
conformance-py: build
	@set -e; dir=$$(mktemp -d); \
	./target/release/vcmi-proxy --bind 127.0.0.1 --port 0 --log-dir $$dir \
	  --max-sessions-per-ip 100000 > $$dir/out & pid=$$!; \
	trap "kill $$pid" EXIT; \
	for i in $$(seq 50); do grep -q listening $$dir/out && break; sleep 0.1; done; \
	port=$$(sed -n 's/.*:\([0-9]*\)$$/\1/p' $$dir/out); \
	python3 ../shared/conformance/check.py --port $$port $(CONFORMANCE_DIR)

clean:
	$(CARGO) clean
