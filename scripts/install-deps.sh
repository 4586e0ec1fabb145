#!/usr/bin/env bash
# Installs what building and testing Portcullis needs on Debian 12.
# Idempotent and quiet: a machine that already has everything touches no registry.
set -euo pipefail

# gdb: scripts/swift-test-watchdog.sh prints the thread stacks of a swift test run that went silent.
# chromium and chromium-driver: Tests/blackbox/test_pages_browser.py drives the HTML pages in headless Chromium.
apt_packages=(libargon2-dev libcurl4-openssl-dev libsqlite3-dev postgresql-15 pkg-config faketime nginx curl jq gdb chromium chromium-driver)
# Python modules the black-box tests and scripts/fuzz.sh import, with their PyPI and Debian package
# names; "-" where Debian has no package (pip then installs it, see below). schemathesis is pinned:
# scripts/fuzz.sh uses its 4.x command line and configuration file. openapi-python-client is pinned
# too: Tests/blackbox/test_openapi_client.py generates a client with it and counts its warnings.
# selenium drives the Chromium above for Tests/blackbox/test_pages_browser.py.
# authlib is the OpenID relying party of Tests/blackbox/test_openid_provider.py; requests-oauth2client
# is a second, independent one in Tests/blackbox/test_openid_tokens.py. standardwebhooks verifies every
# webhook signature in Tests/blackbox/test_webhooks.py, as a receiver would. oidc-provider-mock is
# Google's side of Tests/blackbox/test_federation.py (a real OpenID provider; Google is out of reach).
# Authlib comes from pip too: oidc-provider-mock needs a newer one than Debian 12 packages, and pip
# cannot replace a Debian-installed package.
py_modules=(jwt cryptography requests pytest aiosmtpd schemathesis openapi_python_client prometheus_client selenium authlib requests_oauth2client standardwebhooks oidc_provider_mock)
py_dists=(PyJWT cryptography requests pytest aiosmtpd schemathesis==4.32.5 openapi-python-client==0.29.1 prometheus-client selenium Authlib requests-oauth2client standardwebhooks oidc-provider-mock)
py_debs=(python3-jwt python3-cryptography python3-requests python3-pytest python3-aiosmtpd - - python3-prometheus-client python3-selenium - - - -)

err() { echo "install-deps: error: $*" >&2; }

apt_updated=0
apt_install() {
    local sudo=() log
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { err "not root and no sudo; install: $*"; exit 1; }
        sudo=(sudo)
    fi
    echo "install-deps: apt installing $*" >&2
    # apt-get's own output only matters when it fails: keep it and show it then.
    log=$(mktemp)
    if ((apt_updated == 0)); then
        if ! "${sudo[@]}" apt-get update -qq >"$log" 2>&1; then
            cat "$log" >&2; rm -f "$log"; err "apt-get update failed"; exit 1
        fi
        apt_updated=1
    fi
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2; rm -f "$log"; err "apt-get install $* failed"; exit 1
    fi
    rm -f "$log"
}

missing=()
for pkg in "${apt_packages[@]}"; do
    # dpkg-query also knows removed-but-not-purged packages, so check the status, not the exit code.
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "installed" ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) || apt_install "${missing[@]}"

python=${PYTHON:-python3}
command -v "$python" >/dev/null || { err "$python not found"; exit 1; }
need_idx=()
for i in "${!py_modules[@]}"; do
    "$python" -c "import ${py_modules[$i]}" 2>/dev/null || need_idx+=("$i")
done
if ((${#need_idx[@]} > 0)); then
    # Debian's own python3 refuses pip (PEP 668): use its python3-* packages where Debian has them.
    managed=$("$python" -c 'import os, sysconfig; print(int(os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))))')
    debs=()
    dists=()
    for i in "${need_idx[@]}"; do
        if [[ "$managed" == 1 && "${py_debs[$i]}" != "-" ]]; then debs+=("${py_debs[$i]}"); else dists+=("${py_dists[$i]}"); fi
    done
    ((${#debs[@]} == 0)) || apt_install "${debs[@]}"
    if ((${#dists[@]} > 0)); then
        # On Debian's own python3 only what Debian does not package comes from pip, over PEP 668.
        pip_extra=()
        [[ "$managed" == 1 ]] && pip_extra=(--break-system-packages)
        echo "install-deps: pip installing ${dists[*]}" >&2
        if [[ "$managed" == 1 ]] && ! "$python" -m pip --version >/dev/null 2>&1; then
            apt_install python3-pip
        fi
        if ! "$python" -m pip install -q --disable-pip-version-check --root-user-action=ignore "${pip_extra[@]}" "${dists[@]}"; then
            err "pip install ${dists[*]} failed"; exit 1
        fi
    fi
    for i in "${!py_modules[@]}"; do
        "$python" -c "import ${py_modules[$i]}" 2>/dev/null \
            || { err "python module ${py_modules[$i]} still missing for $python"; exit 1; }
    done
fi
