# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP_RUN  := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
# The native span decoder (faultlens.decode._native) is compiled by pip install: a change
# to setup.py or to its C sources reinstalls.
NATIVE_SRC := $(wildcard src/faultlens/decode/native/*.c src/faultlens/decode/native/*.h)

# `make run` and `make test` may start together on a fresh clone: every step that creates or
# installs into the venv holds one lock (flock, beside the venv), and a step that finds its
# work done by the other while it waited does nothing.
LOCK := flock $(VENV).lock

.PHONY: run test lint bench install clean

$(BIN)/python:
	$(LOCK) sh -c '[ -x $(BIN)/python ] || { $(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet --upgrade pip; }'

$(STAMP_RUN): $(BIN)/python pyproject.toml setup.py $(NATIVE_SRC)
	$(LOCK) $(BIN)/pip install --quiet -e .
	touch $@

$(STAMP_TEST): $(BIN)/python pyproject.toml setup.py $(NATIVE_SRC)
	$(LOCK) $(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

install: $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/faultlens serve --data-dir ./data

test: $(STAMP_TEST)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP_TEST)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(STAMP_TEST)
	$(BIN)/python bench/ingest.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(VENV).lock data .pytest_cache .mypy_cache .ruff_cache

# The native span decoder's tests under AddressSanitizer and UndefinedBehaviorSanitizer.
# The extension is built with both into a copy of src/ (the tree's own build is left as it
# is), and the tests that drive it run against that copy with the ASan runtime preloaded
# (Python itself is not built with ASan; leak checks are off, the interpreter keeps memory
# until exit). Any sanitizer report fails the run. Needs gcc or clang with their runtimes.
SANITIZE_DIR ?= /tmp/faultlens-sanitize
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g
.PHONY: sanitize
sanitize: $(STAMP_TEST)
	rm -rf $(SANITIZE_DIR) && mkdir -p $(SANITIZE_DIR)
	cp -r src setup.py $(SANITIZE_DIR)/
	find $(SANITIZE_DIR)/src -name '_native*.so' -delete
	cd $(SANITIZE_DIR) && CFLAGS="$(SANITIZE_FLAGS)" LDFLAGS="-fsanitize=address,undefined" \
		$(abspath $(BIN))/python setup.py -q build_ext --build-lib lib --build-temp tmp
	mv $(SANITIZE_DIR)/lib/faultlens/decode/_native*.so $(SANITIZE_DIR)/src/faultlens/decode/
	export PYTHONPATH=$(SANITIZE_DIR)/src LD_PRELOAD="$$($${CC:-cc} -print-file-name=libasan.so)" \
		ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 && \
	$(BIN)/python -c "import faultlens.decode._native as m; assert m.__file__.startswith('$(SANITIZE_DIR)'), m" && \
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/decode/test_native_spans.py tests/decode/test_json_wire_native.py tests/decode/test_json_wire.py $(PYTEST_ARGS)
