# Lookalike: `make demo` runs the main job end to end, `make test` runs the tests; both do the
# set-up first (idempotent). `make bench` compares speed with the reference peer, then the
# approximate methods with exact search and with faiss-cpu (scripts/bench_ann.py).
SWIFT ?= swift
RELEASE_BIN := .build/release/lookalike
DEMO_DB := out/demo.db

.PHONY: setup build release test demo bench clean

setup:
	@scripts/setup.sh

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release --product lookalike

test: setup
	$(SWIFT) test

demo: release
	@scripts/demo.sh

bench: release
	@python3 scripts/bench.py
	@python3 scripts/bench_ann.py

clean:
	rm -rf .build out
