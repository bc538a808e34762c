# flashswap: top-level targets. `make check` is the one test command (README, .ci/run).
PYTHON ?= python3
PYTEST_ARGS ?=
# Set FLASHSWAP_REQUIRE_M4=1 (as .ci/run does) to turn a missing Cortex-M4 toolchain into a failure.
FLASHSWAP_REQUIRE_M4 ?= 0

.PHONY: check install-test test-python test-c test-m4 lint typecheck bench clean

check: install-test lint typecheck test-python test-c test-m4

install-test:
	$(PYTHON) -m pip install --quiet -e '.[test,models,plot,cluster]'

lint:
	$(PYTHON) -m ruff check flashswap analyzer tests bench

# mypy over flashswap/ and analyzer/ (settings in pyproject.toml)
typecheck:
	$(PYTHON) -m mypy

# pytest exits 5 when it collects no test; that is not a failure of the suite.
test-python:
	$(PYTHON) -m pytest -q $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

test-c:
	@if [ -f firmware/Makefile ]; then $(MAKE) -C firmware test; \
	else echo "test-c: firmware/Makefile not present yet: no C tests to run"; fi

test-m4:
	@if [ ! -f firmware/Makefile ]; then echo "test-m4: firmware/Makefile not present yet: no C tests to run"; \
	elif command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm >/dev/null; then \
		$(MAKE) -C firmware test-m4; \
	elif [ "$(FLASHSWAP_REQUIRE_M4)" = "1" ]; then \
		echo "test-m4: FAILED: arm-none-eabi-gcc or qemu-system-arm missing and FLASHSWAP_REQUIRE_M4=1"; exit 1; \
	else \
		echo "test-m4: SKIPPED: Cortex-M4 tests need arm-none-eabi-gcc and qemu-system-arm (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"; \
	fi

bench:
	@for b in bench/*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done

clean:
	@if [ -f firmware/Makefile ]; then $(MAKE) -C firmware clean; fi
	rm -rf build *.egg-info .pytest_cache .ruff_cache
