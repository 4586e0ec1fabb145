"""/metrics as a stock Prometheus client reads it: prometheus_client's own parser takes the whole
exposition, finds the process_* families every exporter has, and the build info."""
import os
import subprocess
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import DEFAULT_BIN
from portcullis_server import read_metrics, running_server

BIN = Path(os.environ.get("PORTCULLIS_BIN", DEFAULT_BIN))


def test_prometheus_client_parses_process_and_build_metrics(tmp_path):
    with running_server(BIN, tmp_path) as base:
        requests.get(f"{base}/health", timeout=5)
        families = {f.name: f for f in text_string_to_metric_families(read_metrics(base))}
    for name, kind in [("process_cpu_seconds", "counter"), ("process_resident_memory_bytes", "gauge"),
                       ("process_virtual_memory_bytes", "gauge"), ("process_start_time_seconds", "gauge"),
                       ("process_open_fds", "gauge"), ("process_max_fds", "gauge")]:
        assert name in families, sorted(families)
        assert families[name].type == kind, (name, families[name].type)
        assert families[name].samples[0].value > 0, name
    started = families["process_start_time_seconds"].samples[0].value
    assert abs(started - time.time()) < 600, "the process started just now"
    build = families["portcullis_build_info"].samples
    assert len(build) == 1 and build[0].value == 1
    version = subprocess.run([str(BIN), "--version"], capture_output=True, text=True).stdout
    assert f"portcullis {build[0].labels['version']} (commit {build[0].labels['commit']})" == version.strip()
    assert families["portcullis_http_requests"].type == "counter"
