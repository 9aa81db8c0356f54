# Lookalike: `make demo` runs the main job end to end, `make test` runs the tests; both do the
# set-up first (idempotent). `make bench` compares speed with the reference peer, then measures the
# approximate methods against exact search and faiss-cpu (scripts/bench_ann.py) and the HTTP server
# under load (scripts/bench_serve.py: wrk against `lookalike serve` on Caltech-101).
# `make setup` installs what building and running need; `make setup-test` what only the tests and
# benchmarks need (browser, Selenium, wrk, Milvus). `make deb` builds out/lookalike_<version>_amd64.deb
# (Swift runtime linked in, own scratch folder .build-deb), `make test-package` installs it on a bare
# debootstrapped Debian 12 and checks index/search/serve there (root).
SWIFT ?= swift
RELEASE_BIN := .build/release/lookalike
DEMO_DB := out/demo.db

.PHONY: setup setup-test build release release-bench test demo bench bench-serve bench-milvus deb test-package clean

setup:
	@scripts/setup.sh

setup-test: setup
	@scripts/setup_test.sh

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release --product lookalike

# The benchmark commands live in their own executable (lookalike-bench), not in the product.
release-bench: release
	$(SWIFT) build -c release --product lookalike-bench

test: setup setup-test
	$(SWIFT) test

demo: release
	@scripts/demo.sh

bench: release-bench setup-test
	@python3 scripts/bench.py
	@python3 scripts/bench_ann.py
	@python3 scripts/bench_serve.py

bench-serve: release setup-test
	@python3 scripts/bench_serve.py

# Ingest into Milvus (vectors/s; a throw-away server from .venv-milvus).
bench-milvus: release setup-test
	@python3 scripts/bench_milvus.py
	@if [ -f out/caltech-export/embeddings.npy ]; then python3 scripts/bench_milvus_scale.py --n 100000; \
	else echo "bench_milvus_scale: skipped (needs out/caltech-export: lookalike export --format npy --out out/caltech-export)"; fi
	@python3 scripts/bench_milvus_rerank.py

deb: setup
	@scripts/build_deb.sh

test-package: deb
	@scripts/test_package.sh

clean:
	rm -rf --one-file-system .build .build-deb out
