# Quick start: `make run` (demo server) and `make test` (the whole test suite).
PYTHON ?= python3
VENV ?= .venv
CONFIG ?= vpop.toml
AUTH_PORT ?= 1812
ACCT_PORT ?= 1813
COA_PORT ?= 3799
WORKERS ?= 1
# Debian packages the tests talk to as real peers.
TEST_PACKAGES ?= freeradius-utils freeradius eapoltest openssl hostapd wpasupplicant iproute2 chromium slapd ldap-utils

BIN := $(VENV)/bin

.PHONY: run test install test-deps clean

# pip says only what goes wrong (-qq: setuptools' notice that an editable install is
# one would bury the output); the last line says whether the compiled module was built.
$(BIN)/vpop: setup.cfg setup.py pyproject.toml vpop/radius/_wire.c
	@echo "installing vpop and its dependencies into $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --quiet --upgrade pip
	@$(BIN)/pip install --quiet --quiet -e '.[test]'
	@$(BIN)/python -c "import vpop, vpop.radius.wire as w; \
		print('installed vpop', vpop.__version__, '- wire primitives:', w.IMPLEMENTATION)"
	@touch $@

install: $(BIN)/vpop

# The demo's proxy-mode ISP, isp-proxy, has its own RADIUS server: a second vpop that
# `vpop init --demo` sets up here, on 127.0.0.1 ports 11645-11647.
DEMO_ISP = $(dir $(CONFIG))var/isp-proxy

run: install
	test -f $(CONFIG) || $(BIN)/vpop --config $(CONFIG) init --demo
	$(BIN)/vpop --config $(CONFIG) db upgrade
	@if [ -f $(DEMO_ISP)/vpop.toml ]; then \
		env -u VPOP_DATABASE_URL $(BIN)/vpop --config $(DEMO_ISP)/vpop.toml db upgrade >/dev/null || exit 1; \
		env -u VPOP_DATABASE_URL $(BIN)/vpop --config $(DEMO_ISP)/vpop.toml serve 2>>$(DEMO_ISP)/serve.log & \
		isp=$$!; trap 'kill $$isp 2>/dev/null; wait $$isp' EXIT INT TERM; \
		echo "isp-proxy's RADIUS server: vpop pid $$isp, config $(DEMO_ISP)/vpop.toml, log $(DEMO_ISP)/serve.log"; \
	fi; \
	$(BIN)/vpop --config $(CONFIG) serve --auth-port $(AUTH_PORT) --acct-port $(ACCT_PORT) \
		--coa-port $(COA_PORT) --workers $(WORKERS)

# Installs the Debian packages when run as root; otherwise says what is missing.
test-deps:
	@missing=""; command -v radclient >/dev/null || missing="$$missing freeradius-utils"; \
	command -v freeradius >/dev/null || test -x /usr/sbin/freeradius || missing="$$missing freeradius"; \
	command -v eapol_test >/dev/null || missing="$$missing eapoltest"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	PATH="$$PATH:/usr/sbin:/sbin"; \
	command -v hostapd >/dev/null && command -v hostapd_cli >/dev/null || missing="$$missing hostapd"; \
	command -v wpa_supplicant >/dev/null && command -v wpa_cli >/dev/null || missing="$$missing wpasupplicant"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v slapd >/dev/null || test -x /usr/sbin/slapd || missing="$$missing slapd"; \
	command -v ldapsearch >/dev/null || missing="$$missing ldap-utils"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(TEST_PACKAGES); \
			service slapd stop >/dev/null 2>&1 || true; \
		else echo "tests need:$$missing (sudo apt-get install$$missing)"; exit 1; fi; \
	fi

test: install test-deps
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) var .pytest_cache
