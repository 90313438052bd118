# hapx: the main job, the tests and the labs. `make help` lists the targets.
SHELL := /bin/bash
STACK ?= dev
OUT ?= build/$(STACK)
PYTEST := .venv/bin/python -m pytest

.PHONY: help lab lab-down up destroy render check lint test unit validate containers-test vm-test faults-vm \
        containers containers-down status bench bench-loaded bench-defaults bench-vm bench-plot soak soak-loaded engine image clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

lab: ## the main job, here: `pulumi up` of the pair on a private libvirtd (builds what it needs)
	scripts/install-deps lab
	lab/labctl --backend vm up

lab-down: ## `pulumi destroy` of the lab stack, then remove the private libvirtd and its namespace
	lab/labctl --backend vm down

up: ## `pulumi up` of STACK (default dev) on this host's libvirtd: an operator's hypervisor
	scripts/up $(STACK)

destroy: ## `pulumi destroy` of STACK
	scripts/destroy $(STACK)

render: ## write every artifact for STACK into OUT, without the engine (test secrets)
	scripts/install-deps
	.venv/bin/python -m hapx.cli.render --stack $(STACK) --out $(OUT)

status: ## one screen of STACK's pair (nodes, VIP, HAProxy, masters per node); exits 1 when degraded
	@scripts/install-deps
	.venv/bin/python -m hapx.cli.status --stack $(STACK)

check: ## validate STACK's configuration
	scripts/install-deps
	.venv/bin/python -m hapx.cli.render --stack $(STACK) --check

lint: ## ruff and mypy, as pyproject.toml configures them (`make test` runs this first)
	scripts/lint

test: ## install everything, lint, and run every tier: unit, validate, containers, vm
	scripts/test

unit: ## the unit tier only: settings, rendering, the resource graph under mocks
	scripts/install-deps
	$(PYTEST) tests/unit -q

validate: ## the validate tier only: real tools on rendered files
	scripts/install-deps validate
	$(PYTEST) tests/validate -q

containers-test: ## the container tier only: the pair at native speed and the fault suite
	scripts/install-deps validate lab
	$(PYTEST) tests/containers -ra

vm-test: ## the VM tier only: the program through `pulumi up`/`destroy` on emulated VMs
	scripts/install-deps validate lab
	$(PYTEST) tests/vm -ra

faults-vm: ## the fault suite on the VM lab instead (emulated, slow: HAPX_LAB_FAILOVERS hard failovers, default 2)
	scripts/install-deps validate lab
	scripts/build-engine
	HAPX_LAB_BACKEND=vm HAPX_LAB_FAILOVERS=$${HAPX_LAB_FAILOVERS:-2} $(PYTEST) tests/containers/test_faults.py -ra

containers: ## the pair in containers at native speed (`lab/labctl` drives it)
	scripts/install-deps lab
	lab/labctl up

containers-down: ## remove everything the container lab made
	lab/labctl down

bench: ## failover benchmark on containers: hard node loss and planned switchover, 20 runs each; build/bench/failover.png
	scripts/install-deps lab
	lab/bench-failover

bench-loaded: ## the same with every core of the host kept busy (as a busy hypervisor would be)
	scripts/install-deps lab
	lab/bench-failover --load --save build/bench/containers-loaded.json

bench-defaults: ## hard node loss, 20 runs, at the timers a user gets by default (corosync 1000/1200 ms)
	scripts/install-deps lab
	lab/labctl up --default-timers
	lab/bench-failover --kind hard --save build/bench/containers-defaults.json; rc=$$?; lab/labctl down; exit $$rc

bench-vm: ## the same on the VM lab (emulated: 10-50 times slower), 5 runs each
	scripts/install-deps lab
	lab/bench-failover --backend vm --runs 5 --interval 0.1

bench-plot: ## draw build/bench/failover.png again from the saved results (build/bench/*.json)
	scripts/install-deps
	.venv/bin/python lab/bench-plot --out build/bench/failover.png build/bench/*.json

soak: ## 10 minutes idle on the container lab: membership changes, VIP moves, failed requests
	lab/soak --minutes 10

soak-loaded: ## the same soak with every core of the host kept busy
	lab/soak --minutes 10 --load

engine: ## build the pulumi CLI and both provider plugins (cached under /var/cache/hapx)
	scripts/build-engine

image: ## build the lab's Debian 12 disk image (cached under /var/cache/hapx)
	lab/build-image

clean: containers-down lab-down ## remove build output (keeps .venv, the caches, state and passphrase)
	rm -rf build/dev build/lab/render build/engine-build.log
