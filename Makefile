# Entry points for developers and CI. The scripts under scripts/ hold the logic.
CONFIG ?= debug
SWIFT ?= swift
# Swift lives in /opt/swift on these machines; appended so an installed swift wins.
export PATH := $(PATH):/opt/swift/usr/bin

.PHONY: all run build test bench clean deps

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

# Keeps ./data (a developer's database) and the package checkouts.
clean:
	scripts/pg-test.sh stop
	$(SWIFT) package clean
	rm -rf .pytest_cache Tests/blackbox/__pycache__
