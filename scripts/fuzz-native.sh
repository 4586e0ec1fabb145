#!/usr/bin/env bash
# libFuzzer over the parsers that read attacker text first: object strings, e-mail addresses,
# IP addresses and CIDR ranges, the quick reader of decision bodies against JSONDecoder
# (Fuzz/ParserTargets.swift, compiled with the shipped sources by
# swiftc -sanitize=fuzzer,address). A crash, a sanitizer report or a broken property fails the run.
#   FUZZ_NATIVE_RUNS   inputs to try (default 1000000; make test uses 100000)
#   FUZZ_NATIVE_SEED   libFuzzer's seed (default 1, so runs repeat)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v swiftc >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
runs=${FUZZ_NATIVE_RUNS:-1000000}
seed=${FUZZ_NATIVE_SEED:-1}
out=.build-fuzz
mkdir -p "$out"
# The object parser imports Authority (its UUID reader): built first, as a static module.
swiftc -sanitize=address -parse-as-library -module-name Authority -emit-module -emit-module-path "$out/Authority.swiftmodule" \
    -emit-library -static -o "$out/libAuthority.a" Sources/Authority/*.swift 2>"$out/build.log" || { cat "$out/build.log" >&2; exit 1; }
swiftc -sanitize=fuzzer,address -parse-as-library -module-name FuzzTargets -I "$out" -L "$out" -lAuthority \
    Sources/Policy/ObjectRef.swift Sources/Identity/Email.swift Sources/Server/Middleware/ClientAddress.swift \
    Sources/Server/HTTP/JSONReader.swift Sources/Server/HTTP/JSONEscapes.swift \
    Sources/Server/HTTP/Decisions/DecisionBodies.swift \
    Fuzz/ParserTargets.swift -o "$out/parser-targets" 2>"$out/build.log" || { cat "$out/build.log" >&2; exit 1; }
# The checked-in seeds stay as they are; libFuzzer grows a copy.
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp Fuzz/corpus/* "$corpus/"
echo "fuzz-native: $runs inputs, seed $seed" >&2
started=$SECONDS
"$out/parser-targets" -seed="$seed" -runs="$runs" -max_len=1200 -artifact_prefix="$out/" "$corpus" 2>"$out/fuzz-native.log" || {
    tail -n 30 "$out/fuzz-native.log" >&2
    echo "fuzz-native: FAILED; the input that broke it is in $out/ (crash-*)" >&2
    exit 1
}
echo "fuzz-native: $(grep -E "^Done" "$out/fuzz-native.log"), $((SECONDS - started)) s with the build, no failure" >&2
