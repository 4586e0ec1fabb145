"""Schemathesis hooks for scripts/fuzz.sh (loaded through SCHEMATHESIS_HOOKS).

Random UUIDs in paths only ever reach "404 not found". So that the operations under an org,
an invite, a key… are really exercised, two of every three well-formed generated ids are
replaced by a real one that scripts/fuzz_setup.py seeded (ids.json in FUZZ_IDS_FILE). The choice
hangs on a hash of the generated value, so a fixed seed still gives a fixed run. Malformed ids
(not UUIDs) are left alone: they must answer 404. So are ids taken from earlier responses.
"""

import json
import os
import uuid
import zlib

import schemathesis

with open(os.environ["FUZZ_IDS_FILE"]) as f:
    IDS = json.load(f)


def _real_id(path, method, name):
    if name == "org_id" and method == "DELETE" and path == "/v1/orgs/{org_id}":
        return IDS["doomed_org_id"]  # an org of its own: the run's org must live to the end
    if name == "key_id" and "/service-accounts/" in path:
        return IDS["account_key_id"]
    return IDS.get(name)


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if not params:
        return
    # Ids that schemathesis took from earlier responses (stateful links, its resource pool) are
    # real already: replacing them would break the chain it is testing.
    meta = getattr(case, "meta", None)
    if meta is not None and (str(meta.phase.name) == "stateful" or meta.pool_draws):
        return
    for name, value in list(params.items()):
        if not isinstance(value, str):
            continue
        try:
            uuid.UUID(value)
        except ValueError:
            continue
        real = _real_id(case.operation.path, case.operation.method.upper(), name)
        if real and zlib.crc32(value.encode()) % 3 != 0:
            params[name] = real
