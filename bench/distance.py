"""Scenarios L1 and L2 of bench/bench.py: the pipe at a distance (issue #27, item 3).

A local server answers in under a millisecond; a real bucket in 20–200 ms. These scenarios put
bench/delay-proxy between the client and the server, which holds every byte the server sends
for a fixed delay (so every request/response exchange takes that much longer, as over a network
with that round trip), and compare each tool with itself near and far.

- L1: a no-op redeploy of 100,000 files from a fresh CI clone (every mtime new, no content
  changed) against moto (lists ETags), at 0 ms (direct) and at 100 ms per request.
  s3-deploy-pipe, and the baseline build with --baseline. Targets (#27): at 100 ms at most
  1.5x the 0 ms time, peak RSS at most 300 MB.
- L2: an initial upload of 3,000 files of 1-20 KiB to s3s-fs at 0 ms (direct), 30 ms and
  100 ms per request: s3-deploy-pipe at its default and at fixed MAX_CONCURRENCY 64, 128 and
  256, s5cmd (its defaults), and the baseline's default with --baseline. Targets (#27): at
  30 ms the default reaches 90% of the best fixed level's throughput and 2x s5cmd's; at 100 ms
  90% of the best fixed.

The functions take the harness module (`h`, bench.py itself) and its Bench instance: bench.py
runs as a script, so importing it from here would load a second copy with other globals.
"""

import os
import statistics
import time

L1_DELAYS = (0, 100)
L2_DELAYS = (0, 30, 100)
L2_LEVELS = ("c64", "c128", "c256")
L1_FILES = 100_000
L2_FILES = 3_000


def _load():
    return round(os.getloadavg()[0], 2)


def _tools_of(h):
    """The builds of s3-deploy-pipe (default settings): "ours", and "base" with --baseline."""
    return list(h.PIPES)


def l1(b, h):
    tree = h.WORK / "site100k"
    h.log("L1: generating 100,000 files")
    total = h.gen_tree(tree, L1_FILES, 100, 2048, 100_000)
    b.notes["site100k_bytes"] = total
    files = h.all_files(tree)
    s = h.Server("moto")
    far = h.Delayed(s, L1_DELAYS[1])
    started = _load()
    try:
        s.make_bucket("far-noop")
        # Seeded by the pipe itself, although moto takes minutes for 100,000 PUTs over HTTP: a
        # bucket filled any other way (e.g. in moto's process) is not a no-op for the pipe, whose
        # first deploy then re-applies its headers to every object (CopyObject, as slow).
        h.log("L1 seed: s3-deploy-pipe uploads 100,000 files (moto, no delay)")
        seed = h.run("ours", tree, "far-noop", s)
        if s.count("far-noop") != (L1_FILES, total):
            raise SystemExit("L1 seed: wrong bucket content")
        b.results["L1seed"] = {"ours": [seed]}
        out = {f"{t}@{d}": [] for t in _tools_of(h) for d in L1_DELAYS}
        for r in range(b.slow_reps):
            now = time.time()  # a fresh clone: every file's mtime is new, its content is not
            for p in files:
                os.utime(p, (now, now))
            delays = L1_DELAYS if r % 2 == 0 else L1_DELAYS[::-1]
            for t in h.round_order(_tools_of(h), r):
                for d in delays:
                    res = h.run(t, tree, "far-noop", far if d else s)
                    out[f"{t}@{d}"].append(res)
                    h.log(f"L1 round {r + 1}/{b.slow_reps} {t} at {d} ms: {res['wall']:.3f} s, "
                          f"client cpu {h.cpu(res):.2f} s, rss {res['rss_mb']:.0f} MB, "
                          f"requests {_total_requests(res)}, PUTs {res['puts']}")
        b.results["L1"] = out
    finally:
        far.stop()
        s.stop()
    b.notes["L1_load"] = (started, _load())


def l2(b, h):
    tree = h.WORK / "site3k"
    total = h.gen_tree(tree, L2_FILES, 1024, 20 * 1024, 3000)
    b.notes["site3k_bytes"] = total
    tools = ["ours", *[t for t in h.PIPES if t != "ours"], *L2_LEVELS]
    if "s5cmd" in h.PEERS:
        tools.append("s5cmd")
    env = {c: {"MAX_CONCURRENCY": c[1:]} for c in L2_LEVELS}
    s = h.Server("s3s-fs")
    started = _load()
    try:
        b.warm_up(s)
        for d in L2_DELAYS:
            server = h.Delayed(s, d) if d else s
            try:
                h.log(f"L2: initial upload of 3,000 files at {d} ms per request (s3s-fs)")
                b.results[f"L2@{d}"] = b.fresh_bucket_runs(
                    f"L2-{d}", server, tree, tools, b.reps, (L2_FILES, total), extra_env=env)
            finally:
                if d:
                    server.stop()
    finally:
        s.stop()
    b.notes["L2_load"] = (started, _load())


def _total_requests(res):
    return sum(res.get("requests", {}).values())


def _fmt_requests(rs):
    """The requests of the runs by method (distinct counts over the runs), e.g. `GET 101`."""
    methods = sorted({m for r in rs for m in r.get("requests", {})})
    parts = []
    for m in methods:
        v = sorted({r["requests"].get(m, 0) for r in rs})
        parts.append(f"{m} {'/'.join(map(str, v))}")
    return ", ".join(parts) or "–"


def _name(b, h, t):
    """A tool as the tables show it, with the build's label (--label, --baseline-label)."""
    if t in h.PIPES:
        build = b.notes.get("baseline" if t == "base" else "binary", {}).get("label")
        return h.NAMES[t] + (f" [{build}]" if build else "") + ", default"
    if t in h.NAMES:
        return h.NAMES[t]
    return f"s3-deploy-pipe MAX_CONCURRENCY={t[1:]}"


def report(b, h):
    """The "Distance" section of BENCHMARKS.md: L1 and L2 with their targets; '' without them."""
    R = b.results
    if "L1" not in R and not any(k.startswith("L2@") for k in R):
        return ""
    lines = ["## Distance: a delay per request (L1, L2)", "",
             "`bench/delay-proxy` (Rust, tokio, one thread) sits between the client and the server "
             "and holds every byte the server sends for the delay, in order, per connection; what "
             "the client sends passes at once. Every request/response exchange takes that much "
             "longer, as over a network with that round trip; many connections wait side by side. "
             "0 ms is direct to the server, without the proxy. The proxy costs about 9 µs of CPU per "
             "small request (`bench/delay-proxy/check.py`).", ""]
    w = lines.append
    targets = []
    if "L1" in R:
        lo, hi = b.notes.get("L1_load", (None, None))
        rounds = max(len(rs) for rs in R["L1"].values())
        w(f"**L1: no-op redeploy of 100,000 files** (a fresh CI clone: every mtime new, no content "
          f"changed; *site100k*) against moto, {rounds} round{'s' if rounds > 1 else ''}; in each round every build runs "
          f"at 0 and at 100 ms (the order of the builds and of the delays alternating). "
          f"Load average (1 min) {lo} at the start, {hi} at the end.")
        w("")
        w("| Build | Delay ms | Wall s, median (min–max) | Client CPU s | Server CPU s | Peak RSS MB "
          "| Requests (by method) | Wall 100 ms / 0 ms |")
        w("|---|---|---|---|---|---|---|---|")
        for t in _tools_of(h):
            near, far = R["L1"].get(f"{t}@0"), R["L1"].get(f"{t}@{L1_DELAYS[1]}")
            if not near or not far:
                continue
            x = h.ratio(h.med(far), h.med(near))
            for d, rs in ((0, near), (L1_DELAYS[1], far)):
                w(f"| {_name(b, h, t)} | {d} | {h.fmt_s(rs)} | {h.fmt_cpu(rs)} | "
                  f"{statistics.median(r['server_cpu'] for r in rs):.2f} | {h.fmt_mb(rs)} | "
                  f"{_fmt_requests(rs)} | {f'{x:.2f}×' if d else ''} |")
            mx = max(r["rss_mb"] for r in near + far)
            targets.append((f"L1 {_name(b, h, t)}: 100 ms ≤ 1.5× the 0 ms time", f"{x:.2f}×", x <= 1.5))
            targets.append((f"L1 {_name(b, h, t)}: peak RSS ≤ 300 MB", f"max {mx:.0f} MB", mx <= 300))
        w("")
        w("Requests: counted from moto's log, the distinct counts over the runs (`GET` includes "
          "the listing's pages).")
        w("")
    l2 = [d for d in L2_DELAYS if f"L2@{d}" in R]
    if l2:
        lo, hi = b.notes.get("L2_load", (None, None))
        rounds = max(len(rs) for d in l2 for rs in R[f"L2@{d}"].values())
        w(f"**L2: initial upload of 3,000 files of 1–20 KiB** (*site3k*, "
          f"{b.notes.get('site3k_bytes', 0) / h.MIB:.1f} MiB) to s3s-fs, {rounds} round{'s' if rounds > 1 else ''} per "
          f"delay, the tools interleaved, a new bucket for every run. Load average (1 min) {lo} at "
          f"the start, {hi} at the end. Throughput: files per second of wall time (medians).")
        w("")
        w("| Delay ms | Tool | Wall s, median (min–max) | Files/s | Client CPU s | Peak RSS MB "
          "| Default's throughput / this one's |")
        w("|---|---|---|---|---|---|---|")
        for d in l2:
            res = R[f"L2@{d}"]
            default = h.med(res["ours"])
            for t, rs in res.items():
                rel = "" if t == "ours" else f"{h.ratio(h.med(rs), default):.2f}"
                w(f"| {d} | {_name(b, h, t)} | {h.fmt_s(rs)} | {L2_FILES / h.med(rs):.0f} | "
                  f"{h.fmt_cpu(rs)} | {h.fmt_mb(rs)} | {rel} |")
            best = min((t for t in L2_LEVELS if t in res), key=lambda t: h.med(res[t]))
            share = h.ratio(h.med(res[best]), default)
            if d:
                targets.append((f"L2 at {d} ms: the default ≥ 90% of the best fixed level's "
                                f"throughput (best: {best[1:]})", f"{share * 100:.0f}%",
                                share >= 0.9))
            if d == 30 and "s5cmd" in res:
                x = h.ratio(h.med(res["s5cmd"]), default)
                targets.append(("L2 at 30 ms: the default ≥ 2× s5cmd's throughput",
                                f"{x:.2f}×", x >= 2))
        w("")
        w("*Default's throughput / this one's*: this tool's median wall time divided by the "
          "default's: above 1 the default is faster. The fixed levels are runs of the first "
          "build (`--binary`) with `MAX_CONCURRENCY` set; the targets compare its default.")
        w("")
    if targets:
        w("| Target (#27) | Measured | Met |")
        w("|---|---|---|")
        for name, val, ok in targets:
            w(f"| {name} | {val} | {'yes' if ok else '**no**'} |")
        w("")
    return "\n".join(lines)
