# hapx: the main job, the tests and the lab. `make help` lists the targets.
SHELL := /bin/bash
STACK ?= dev
OUT ?= build/$(STACK)
PYTEST := .venv/bin/python -m pytest

.PHONY: help up destroy render check test unit validate lab-test lab lab-down bench soak engine clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

up: ## set up and run `pulumi up` for STACK (default dev)
	scripts/up $(STACK)

destroy: ## `pulumi destroy` for STACK
	scripts/destroy $(STACK)

render: ## write every artifact for STACK into OUT, without the engine (test secrets)
	scripts/install-deps
	.venv/bin/python -m hapx.render --stack $(STACK) --out $(OUT)

check: ## validate STACK's configuration
	scripts/install-deps
	.venv/bin/python -m hapx.render --stack $(STACK) --check

test: ## install everything and run every test tier (unit, validate, lab)
	scripts/install-deps validate lab
	$(PYTEST) tests -ra

unit: ## the unit tier only: settings, rendering, the resource graph under mocks
	scripts/install-deps
	$(PYTEST) tests/unit -q

validate: ## the validate tier only: real tools on rendered files
	scripts/install-deps validate
	$(PYTEST) tests/validate -q

lab-test: ## the lab tier only: real VMs
	scripts/install-deps validate lab
	$(PYTEST) tests/lab -ra

lab: ## bring up the lab: image, libvirtd in a namespace, two VMs, the cluster
	scripts/install-deps lab
	.venv/bin/python -m hapx.render --stack lab --out build/lab/render
	lab/labctl up --render build/lab/render

lab-down: ## remove everything the lab made
	lab/labctl down

bench: ## failover benchmark on the lab (hard node loss and planned switchover)
	lab/bench-failover

soak: ## 10 minutes idle on the lab that is up: membership changes, VIP moves, failed requests
	lab/soak --minutes 10

engine: ## build the pulumi CLI and the provider plugins from Go modules
	scripts/build-engine

clean: lab-down ## remove build output (keeps .venv, state and passphrase)
	rm -rf build/dev build/lab/render
