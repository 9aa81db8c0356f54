# Lookalike: `make demo` runs the main job end to end, `make test` runs the tests; both do the
# set-up first (idempotent). `make bench` compares speed with the reference peer, then measures the
# approximate methods against exact search and faiss-cpu (scripts/bench_ann.py) and the HTTP server
# under load (scripts/bench_serve.py: wrk against `lookalike serve` on Caltech-101).
SWIFT ?= swift
RELEASE_BIN := .build/release/lookalike
DEMO_DB := out/demo.db

.PHONY: setup build release test demo bench bench-serve bench-milvus clean

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
	@python3 scripts/bench_serve.py

bench-serve: release
	@python3 scripts/bench_serve.py

# Ingest into Milvus (vectors/s; a throw-away server from .venv-milvus).
bench-milvus: release
	@python3 scripts/bench_milvus.py
	@if [ -f out/caltech-export/embeddings.npy ]; then python3 scripts/bench_milvus_scale.py --n 100000; \
	else echo "bench_milvus_scale: skipped (needs out/caltech-export: lookalike export --format npy --out out/caltech-export)"; fi
	@python3 scripts/bench_milvus_rerank.py

clean:
	rm -rf .build out
