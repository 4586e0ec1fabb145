"""`@PublicInit` through the real compiler: the plugin the build made, loaded by `swiftc`.

No Swift test imports the macro's implementation (SwiftPM would then build every module a second
time, for the host), so its expansion and its errors are checked here, from the outside.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import DEFAULT_BIN


def typecheck(tmp_path: Path, source: str) -> str:
    build = Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN)).parent
    plugin = build / "MemberwiseMacros-tool"
    if not plugin.is_file() or not (build / "Modules" / "Memberwise.swiftmodule").exists():
        pytest.fail(f"the macro plugin or the Memberwise module is missing under {build}; run `swift build` first", pytrace=False)
    swiftc = shutil.which("swiftc") or "/opt/swift/usr/bin/swiftc"
    file = tmp_path / "sample.swift"
    file.write_text("import Memberwise\n" + source)
    run = subprocess.run(
        [swiftc, "-typecheck", "-I", str(build / "Modules"), "-load-plugin-executable", f"{plugin}#MemberwiseMacros",
         "-Xfrontend", "-dump-macro-expansions", str(file)],
        capture_output=True, text=True, timeout=120)
    return run.stdout + run.stderr


def test_the_initializer_takes_the_stored_properties_in_order(tmp_path):
    out = typecheck(tmp_path, """
@PublicInit public struct Endpoint {
    public let id: Int
    public var name: String = "unnamed"
    public var note: String?
    public let expiresAt: Double?
    public let kind = "endpoint"
    private var cache: [String: Int] = [:]
    private let secret: String
    public private(set) var hits: Int
    public static var count = 0
    public var label: String { name }
    public var state: Int { didSet { hits += 1 } }
    public let now: @Sendable () -> Double
}
let e = Endpoint(id: 1, secret: "s", hits: 0, state: 0, now: { 0 })
""")
    assert "error" not in out, out
    assert ("public init(id: Int, name: String = \"unnamed\", note: String? = nil, expiresAt: Double? = nil, "
            "secret: String, hits: Int, state: Int, now: @escaping @Sendable () -> Double) {") in out, out
    for name in ["id", "name", "note", "expiresAt", "secret", "hits", "state", "now"]:
        assert f"self.{name} = {name}" in out, out
    for left_out in ["self.kind", "self.cache", "self.count", "self.label"]:
        assert left_out not in out, out


def test_a_class_or_an_unwritten_type_is_an_error(tmp_path):
    out = typecheck(tmp_path, """
@PublicInit public final class Box { public var value: Int }
@PublicInit public struct Counter { public var value = 0 }
""")
    assert "error: @PublicInit applies to a struct" in out, out
    assert "error: @PublicInit needs the type of 'value' written out" in out, out
