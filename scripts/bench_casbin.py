"""The in-process decision benchmark's dataset and checks, answered by pycasbin and by plain
Python dicts, for comparison with `portcullis-bench` (same seeds, same generator: SplitMix64,
reimplemented below, so both see the very same 1M memberships, 100k bindings and checks).

    python3 scripts/bench_casbin.py [--orgs N] [--casbin-checks N] [--dict-checks N]

Prints JSON on stdout and human-readable lines on stderr. Needs `pip install casbin`
(scripts/bench.sh installs it when missing).

The casbin model (RBAC with domains, one domain per org) answers Portcullis' question
"does user U hold at least role R on object O of org D, counting the org membership and
every binding on O or one of its ancestors":

    r = dom, sub, obj, act        dom = org id, sub = user id, obj = path below the org with a
                                  trailing "/" ("/" for the org itself, "/project:3/doc:7/"),
                                  act = the least role required
    p = dom, sub, obj, act        the holder of sub (a role or a user) has role act on obj in dom
    g = _, _, _                   memberships: g, <user>, <role>, <org>
    g2 = _, _                     the role hierarchy: g2, owner, admin / admin, editor / editor, viewer
    m = r.dom == p.dom && g(r.sub, p.sub, r.dom) && keyMatch(r.obj, p.obj) && g2(p.act, r.act)

Policies: per org and role R, `p, <org>, R, *, R` (a member with role R has R on everything
in the org); per binding, `p, <org>, <user>, <path>/*, <role>` (keyMatch's prefix match on
"<path>/" covers the object itself and everything below it, and "/project:3/" does not match
"/project:30/"). g(user, user, org) holds for any user, so binding rules match their own user.
The hierarchy sits on the action side: g2(granted, required) is "granted >= required".

casbin.FastEnforcer with cache_key_order=[0] indexes p rules by domain, so a check scans only
its org's rules (4 role rules + about 10 bindings); a plain Enforcer would scan all 140k rules
for every check.
"""
import argparse
import gc
import json
import platform
import statistics
import sys
import time

M64 = (1 << 64) - 1
ROLES = ["viewer", "editor", "admin", "owner"]  # rank = index + 1
SEED = 0x5EED2026
CHECK_SEED = 0xC0FFEE
USERS = 100_000
MEMBERS_PER_ORG = 100
BINDINGS_PER_ORG = 10

MODEL = """
[request_definition]
r = dom, sub, obj, act

[policy_definition]
p = dom, sub, obj, act

[role_definition]
g = _, _, _
g2 = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.dom == p.dom && g(r.sub, p.sub, r.dom) && keyMatch(r.obj, p.obj) && g2(p.act, r.act)
"""


def say(line):
    print(line, file=sys.stderr, flush=True)


def rss_bytes():
    with open("/proc/self/statm") as f:
        import os
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class SplitMix64:
    """Same generator as Benchmarks/portcullis-bench/Dataset.swift."""

    def __init__(self, seed):
        self.state = seed

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % n

    def uuid(self):
        a, b = self.next(), self.next()
        bs = bytearray(a.to_bytes(8, "big") + b.to_bytes(8, "big"))
        bs[6] = (bs[6] & 0x0F) | 0x40
        bs[8] = (bs[8] & 0x3F) | 0x80
        h = bs.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def member_role(r):
    return 0 if r < 60 else 1 if r < 85 else 2 if r < 95 else 3


def binding_role(r):
    return 0 if r < 50 else 1 if r < 80 else 2 if r < 95 else 3


class Dataset:
    def __init__(self, org_count):
        rng = SplitMix64(SEED)
        self.org_count = org_count
        self.users = [rng.uuid() for _ in range(USERS)]
        self.orgs = []
        self.member_user, self.member_role = [], []
        self.binding_id, self.binding_user, self.binding_path, self.binding_is_doc, self.binding_role = [], [], [], [], []
        for _ in range(org_count):
            self.orgs.append(rng.uuid())
            start = rng.below(USERS)
            step = 1 + rng.below(997)
            first = len(self.member_user)
            for k in range(MEMBERS_PER_ORG):
                self.member_user.append((start + k * step) % USERS)
                self.member_role.append(3 if k == 0 else member_role(rng.below(100)))
            seen = set()
            made = 0
            while made < BINDINGS_PER_ORG:
                if rng.below(2) == 0:
                    user = self.member_user[first + rng.below(MEMBERS_PER_ORG)]
                else:
                    user = rng.below(USERS)
                project = rng.below(20)
                is_doc = rng.below(10) >= 3
                path = f"/project:{project}"
                if is_doc:
                    path += f"/doc:{rng.below(50)}"
                role = binding_role(rng.below(100))
                if (user, path) in seen:
                    continue
                seen.add((user, path))
                self.binding_id.append(rng.uuid())
                self.binding_user.append(user)
                self.binding_path.append(path)
                self.binding_is_doc.append(is_doc)
                self.binding_role.append(role)
                made += 1


def generate_checks(d, count):
    """Same draws as `Checks` in Dataset.swift: (org index, user index, path, required role index)."""
    rng = SplitMix64(CHECK_SEED)

    def random_path():
        r = rng.below(10)
        if r < 2:
            return ""
        p = rng.below(20)
        if r < 5:
            return f"/project:{p}"
        return f"/project:{p}/doc:{rng.below(50)}"

    out = []
    for _ in range(count):
        o = rng.below(d.org_count)
        kind = rng.below(100)
        if kind < 55:
            u = d.member_user[o * MEMBERS_PER_ORG + rng.below(MEMBERS_PER_ORG)]
            p = random_path()
        elif kind < 80:
            b = o * BINDINGS_PER_ORG + rng.below(BINDINGS_PER_ORG)
            u = d.binding_user[b]
            p = d.binding_path[b]
            if d.binding_is_doc[b]:
                if rng.below(2) == 0:
                    p += f"/page:{rng.below(10)}"
            elif rng.below(2) == 0:
                p += f"/doc:{rng.below(50)}"
        else:
            u = rng.below(USERS)
            p = random_path()
        out.append((o, u, p, rng.below(4)))
    return out


# --- casbin -------------------------------------------------------------------------------

def casbin_rules(d):
    """(ptype, rule) for every policy line, generated lazily so no second copy sits in memory."""
    for o, org in enumerate(d.orgs):
        for role in ROLES:
            yield "p", [org, role, "*", role]
        for i in range(o * MEMBERS_PER_ORG, (o + 1) * MEMBERS_PER_ORG):
            yield "g", [d.users[d.member_user[i]], ROLES[d.member_role[i]], org]
        for i in range(o * BINDINGS_PER_ORG, (o + 1) * BINDINGS_PER_ORG):
            yield "p", [org, d.users[d.binding_user[i]], d.binding_path[i] + "/*", ROLES[d.binding_role[i]]]
    for higher, lower in zip(ROLES[:0:-1], ROLES[-2::-1]):
        yield "g2", [higher, lower]


def bench_casbin(d, checks, n):
    import casbin
    from casbin import persist

    class GeneratedAdapter(persist.Adapter):
        """Feeds rules the way casbin's own file adapter does (appending to the model)."""

        def load_policy(self, model):
            for key, rule in casbin_rules(d):
                model.model[key[0]][key].policy.append(rule)

    gc.collect()
    rss0 = rss_bytes()
    start = time.perf_counter()
    class FastModel(casbin.FastModel):
        """casbin 1.43's FastModel.add_def returns None, which stops the model loader after the
        first `g` of a section (g2 would silently vanish); pass the base class' answer on."""

        def add_def(self, sec, key, value):
            added = casbin.Model.add_def(self, sec, key, value)
            if sec == "p" and key == "p":
                self.model[sec][key].policy = casbin.FastPolicy(self._cache_key_order)
            return added

    model = FastModel([0])
    model.load_model_from_text(MODEL)
    assert "g2" in model.model["g"], "the model lost g2"
    e = casbin.FastEnforcer(model, GeneratedAdapter(), cache_key_order=[0])
    constructed = time.perf_counter() - start

    # casbin's DomainManager builds each domain's role manager on the domain's first check. With
    # its default matching function (plain equality) that build is quadratic in the domain's
    # links; equality matching adds nothing to exact lookups, so it is switched off here, and
    # every org's role manager is built before the checks are timed (counted in the load time).
    rm = e.get_role_manager()
    sample = d.orgs[:20]
    t = time.perf_counter()
    for org in sample:
        rm.get_roles(d.users[d.member_user[d.orgs.index(org) * MEMBERS_PER_ORG]], org)
    default_build_ms = (time.perf_counter() - t) * 1000 / len(sample)
    for org in sample:
        rm.rm_map.pop(org, None)
    rm.matching_func = None
    t = time.perf_counter()
    for o, org in enumerate(d.orgs):
        rm.get_roles(d.users[d.member_user[o * MEMBERS_PER_ORG]], org)
    warm = time.perf_counter() - t
    load = time.perf_counter() - start
    gc.collect()
    rss1 = rss_bytes()
    say(f"casbin {casbin_version()}: loaded in {load:.1f} s ({constructed:.1f} s enforcer, {warm:.1f} s building "
        f"{len(d.orgs)} domain role managers; {default_build_ms:.1f} ms per org with casbin's default matching function), "
        f"RSS +{(rss1 - rss0) / 2**20:.0f} MiB ({(rss1 - rss0) / len(d.member_user):.0f} B per membership)")

    requests = [(d.orgs[o], d.users[u], (p or "") + "/", ROLES[r]) for o, u, p, r in checks[:n]]
    for req in requests[:200]:  # warm-up
        e.enforce(*req)
    lat = []
    allowed = []
    clock = time.perf_counter_ns
    cpu = time.process_time()
    start = time.perf_counter()
    for req in requests:
        t = clock()
        ok = e.enforce(*req)
        lat.append(clock() - t)
        allowed.append(ok)
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu
    lat.sort()
    result = {
        "version": casbin_version(),
        "enforcer": "FastEnforcer(cache_key_order=[0])",
        "load_seconds": load,
        "enforcer_seconds": constructed,
        "domain_build_seconds": warm,
        "default_domain_build_ms_per_org": default_build_ms,
        "rss_growth_bytes": rss1 - rss0,
        "bytes_per_membership": (rss1 - rss0) / len(d.member_user),
        "checks": n,
        "checks_per_second": n / total,
        "cpu_checks_per_second": n / cpu,
        "p50_microseconds": lat[len(lat) // 2] / 1000,
        "p99_microseconds": lat[min(len(lat) - 1, int(0.99 * len(lat)))] / 1000,
        "allowed_in_first_5000": sum(allowed[:5000]),
        "allowed_fraction": sum(allowed) / n,
    }
    say(f"casbin: {result['checks_per_second']:,.0f} checks/s over {n} checks, p50 {result['p50_microseconds']:.1f} µs, "
        f"p99 {result['p99_microseconds']:.1f} µs; allowed among the first 5000: {result['allowed_in_first_5000']}")
    return result, allowed


def casbin_version():
    try:
        from importlib.metadata import version
        return version("casbin")
    except Exception:
        return "unknown"


# --- plain dicts --------------------------------------------------------------------------

def bench_dict(d, checks, n, rounds):
    gc.collect()
    rss0 = rss_bytes()
    start = time.perf_counter()
    # org id -> (user id -> rank, user id -> [(path, path + "/", rank)]), like Portcullis' OrgGrants.
    orgs = {}
    for o, org in enumerate(d.orgs):
        members = {}
        for i in range(o * MEMBERS_PER_ORG, (o + 1) * MEMBERS_PER_ORG):
            members[d.users[d.member_user[i]]] = d.member_role[i] + 1
        bindings = {}
        for i in range(o * BINDINGS_PER_ORG, (o + 1) * BINDINGS_PER_ORG):
            path = d.binding_path[i]
            bindings.setdefault(d.users[d.binding_user[i]], []).append((path, path + "/", d.binding_role[i] + 1))
        orgs[org] = (members, bindings)
    load = time.perf_counter() - start
    gc.collect()
    rss1 = rss_bytes()

    requests = [(d.orgs[o], d.users[u], p, r + 1) for o, u, p, r in checks[:n]]

    def decide(org, user, path, required):
        g = orgs.get(org)
        if g is None:
            return False
        best = g[0].get(user, 0)
        for bpath, prefix, rank in g[1].get(user, ()):
            if rank > best and (path == bpath or path.startswith(prefix)):
                best = rank
        return best >= required

    def run():
        return [decide(*req) for req in requests]

    allowed = run()
    rates, cpu_rates = [], []
    for _ in range(rounds):
        cpu = time.process_time()
        start = time.perf_counter()
        run()
        rates.append(n / (time.perf_counter() - start))
        cpu_rates.append(n / (time.process_time() - cpu))
    result = {
        "build_seconds": load,
        "rss_growth_bytes": rss1 - rss0,
        "bytes_per_membership": (rss1 - rss0) / len(d.member_user),
        "checks": n,
        "rounds": rounds,
        "checks_per_second": statistics.median(rates),
        "cpu_checks_per_second": statistics.median(cpu_rates),
        "allowed_in_first_5000": sum(allowed[:5000]),
        "allowed_fraction": sum(allowed) / n,
    }
    say(f"python dict: {result['checks_per_second']:,.0f} checks/s (p50 of {rounds} rounds over {n} checks), "
        f"RSS +{(rss1 - rss0) / 2**20:.0f} MiB; allowed among the first 5000: {result['allowed_in_first_5000']}")
    return result, allowed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orgs", type=int, default=10_000)
    ap.add_argument("--casbin-checks", type=int, default=20_000)
    ap.add_argument("--dict-checks", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    start = time.perf_counter()
    d = Dataset(args.orgs)
    checks = generate_checks(d, max(args.casbin_checks, args.dict_checks, 5000))
    say(f"python: dataset ({len(d.orgs)} orgs, {len(d.member_user)} memberships, {len(d.binding_user)} bindings) "
        f"and {len(checks)} checks generated in {time.perf_counter() - start:.1f} s")

    dict_result, dict_allowed = bench_dict(d, checks, args.dict_checks, args.rounds)
    casbin_result, casbin_allowed = bench_casbin(d, checks, args.casbin_checks)
    n = min(len(dict_allowed), len(casbin_allowed))
    disagreements = sum(1 for a, b in zip(dict_allowed[:n], casbin_allowed[:n]) if a != b)
    if disagreements:
        say(f"WARNING: casbin and the dict baseline disagree on {disagreements} of {n} checks")
    print(json.dumps({
        "python": platform.python_version(),
        "dataset": {"orgs": len(d.orgs), "memberships": len(d.member_user), "bindings": len(d.binding_user),
                    "seed": f"{SEED:x}"},
        "dict": dict_result,
        "casbin": casbin_result,
        "casbin_dict_disagreements": disagreements,
        "compared_checks": n,
    }, indent=2))


if __name__ == "__main__":
    main()
