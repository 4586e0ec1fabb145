# Entry points for developers and CI. The scripts under scripts/ hold the logic.
CONFIG ?= debug
SWIFT ?= swift
# Swift lives in /opt/swift on these machines; appended so an installed swift wins.
export PATH := $(PATH):/opt/swift/usr/bin

.PHONY: all run build test bench fuzz clean deps chaos cluster cluster-status cluster-stop

all: build

deps:
	scripts/install-deps.sh

# The binary creates ./data, applies migrations and says where it listens; PORTCULLIS_* env applies.
run: deps
	$(SWIFT) build -c $(CONFIG)
	exec .build/$(CONFIG)/portcullis serve

build: deps
	$(SWIFT) build -c $(CONFIG)

test:
	scripts/test.sh

bench:
	scripts/bench.sh

# schemathesis against the built server's /openapi.yaml, full budget (FUZZ_EXAMPLES, FUZZ_SEED...
# in scripts/fuzz.sh), then libFuzzer over the parsers (scripts/fuzz-native.sh); `make test` runs short ones.
fuzz: build
	PORTCULLIS_BIN=$(CURDIR)/.build/$(CONFIG)/portcullis scripts/fuzz.sh
	scripts/fuzz-native.sh

# The fault suite in full (kill -9 storms, PostgreSQL stopped and frozen, clock skew, the cluster);
# `make test` runs its short form.
chaos: build
	PORTCULLIS_BIN=$(CURDIR)/.build/$(CONFIG)/portcullis scripts/chaos.sh

# Three nodes on a throwaway PostgreSQL behind nginx; prints the URL and the root credentials.
cluster: build
	PORTCULLIS_BIN=$(CURDIR)/.build/$(CONFIG)/portcullis scripts/cluster.sh start

cluster-status:
	scripts/cluster.sh status

cluster-stop:
	scripts/cluster.sh stop

# Keeps ./data (a developer's database) and the package checkouts.
clean:
	scripts/pg-test.sh stop
	scripts/cluster.sh stop
	$(SWIFT) package clean
	rm -rf .pytest_cache Tests/blackbox/__pycache__
