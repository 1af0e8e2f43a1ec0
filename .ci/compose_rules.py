#!/usr/bin/env python3
"""Checks a resolved docker-compose configuration against the Rinha submission rules.

Usage:
  compose_rules.py CONFIG.yml COMPOSE_DIR           check; exit 1 naming each broken rule
  compose_rules.py --self-test CONFIG.yml COMPOSE_DIR
      break CONFIG one way per rule and make sure the check fails naming that rule, and
      that the unbroken CONFIG passes

CONFIG.yml is the output of `docker-compose config`; COMPOSE_DIR is the directory of
the compose file, which relative seccomp profile paths are resolved against.
"""

import copy
import json
import os
import re
import sys
import tempfile

import yaml

# The submission's limits (challenge rules): all services together.
CPU_BUDGET = 1.5
MEMORY_BUDGET_MB = 350
# The only published port, and the service that publishes it.
PUBLIC_PORT = 9999
LB_SERVICE = "lb"
PROCESSOR_NETWORK = "payment-processor"
IO_URING = ("io_uring_setup", "io_uring_enter", "io_uring_register")
# Open files every gateway and the lb must be allowed (ulimits: nofile), and the margin
# above a gateway's MAX_CONNECTIONS for its processor connections, peers and listeners.
NOFILE_MIN = 4096
NOFILE_MARGIN = 1024
# Docker's grace between SIGTERM and SIGKILL when stop_grace_period is unset, and our
# binaries' SHUTDOWN_GRACE_MS when unset (ms).
DOCKER_STOP_GRACE_MS = 10_000
DEFAULT_SHUTDOWN_GRACE_MS = 8_000
# Restart policies that bring a dead gateway or lb back.
RESTARTING = ("always", "unless-stopped", "on-failure")
# Binary units, as Docker reads memory limits.
MEMORY_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
                "g": 1 << 30, "gb": 1 << 30}


def memory_bytes(value):
    if isinstance(value, (int, float)):
        return int(value)
    m = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in MEMORY_UNITS:
        raise ValueError(f"unreadable memory value {value!r}")
    return int(float(m.group(1)) * MEMORY_UNITS[m.group(2).lower()])


DURATION_UNITS = {"us": 1e-3, "ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def duration_ms(value):
    """A compose duration (`10s`, `1m30s`, `500ms`) in milliseconds."""
    parts = re.findall(r"([\d.]+)(us|ms|s|m|h)", str(value))
    if not parts or "".join(n + u for n, u in parts) != str(value).strip():
        raise ValueError(f"unreadable duration {value!r}")
    return sum(float(n) * DURATION_UNITS[u] for n, u in parts)


def volume_mounts(svc):
    """(source, target) of every named volume the service mounts."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            if v.get("type", "volume") == "volume":
                out.append((v.get("source"), v.get("target")))
        else:
            parts = str(v).split(":")
            if len(parts) >= 2 and not parts[0].startswith(("/", ".")):
                out.append((parts[0], parts[1]))
    return out


def limits_of(svc):
    return ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}


def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return env


def nofile_of(svc):
    """(soft, hard) of ulimits.nofile, or None when unset."""
    n = (svc.get("ulimits") or {}).get("nofile")
    if n is None:
        return None
    if isinstance(n, dict):
        return int(n.get("soft", 0)), int(n.get("hard", 0))
    return int(n), int(n)


def command_program(svc):
    cmd = svc.get("command") or svc.get("entrypoint") or []
    if isinstance(cmd, str):
        cmd = cmd.split()
    return os.path.basename(cmd[0]) if cmd else ""


def published_ports(svc):
    out = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            if p.get("published") is not None:
                out.append(int(str(p["published"]).split("-")[0]))
        else:
            parts = str(p).split("/")[0].split(":")
            if len(parts) >= 2:  # [ip:]published:target
                out.append(int(parts[-2].split("-")[0]))
    return out


def seccomp_profiles(svc):
    out = []
    for opt in svc.get("security_opt") or []:
        m = re.fullmatch(r"seccomp[=:](.+)", str(opt))
        if m and m.group(1) != "unconfined":
            out.append(m.group(1))
    return out


def allows_io_uring(path):
    """The io_uring syscalls that the profile at path does not allow unconditionally."""
    with open(path) as f:
        profile = json.load(f)
    allowed = set()
    for rule in profile.get("syscalls", []):
        if rule.get("action") == "SCMP_ACT_ALLOW" and not rule.get("args") \
                and not rule.get("includes") and not rule.get("excludes"):
            allowed.update(rule.get("names", []))
    return [s for s in IO_URING if s not in allowed]


def check(config, compose_dir):
    """Returns a list of (rule, message) for every broken rule."""
    errors = []
    services = config.get("services") or {}

    def err(rule, msg):
        errors.append((rule, msg))

    cpus = mem = 0.0
    for name, svc in services.items():
        lim = limits_of(svc)
        if "cpus" not in lim or "memory" not in lim:
            err("limits", f"service {name} has no deploy.resources.limits cpus and memory")
            continue
        cpus += float(lim["cpus"])
        mem += memory_bytes(lim["memory"])
    if cpus > CPU_BUDGET + 1e-9:
        err("cpu-budget", f"limits sum to {cpus:g} CPUs, above {CPU_BUDGET}")
    if mem > MEMORY_BUDGET_MB * (1 << 20):
        err("memory-budget", f"limits sum to {mem / (1 << 20):g} MB, above {MEMORY_BUDGET_MB} MB")

    if PUBLIC_PORT not in published_ports(services.get(LB_SERVICE) or {}):
        err("port-9999", f"service {LB_SERVICE} does not publish port {PUBLIC_PORT}")
    for name, svc in services.items():
        ports = published_ports(svc)
        if name != LB_SERVICE and ports:
            err("port-9999", f"service {name} publishes {ports}: only {LB_SERVICE} may publish a port")
        elif name == LB_SERVICE and set(ports) - {PUBLIC_PORT}:
            err("port-9999", f"service {name} publishes {ports}: only {PUBLIC_PORT}")

    for name, svc in services.items():
        if str(svc.get("network_mode", "")).startswith("host"):
            err("no-host-network", f"service {name} uses network_mode: host")
        if svc.get("privileged"):
            err("no-privileged", f"service {name} is privileged")
        if "scale" in svc or "replicas" in svc or "replicas" in (svc.get("deploy") or {}):
            err("no-replicas", f"service {name} sets replicas or scale")

    declared = (config.get("networks") or {}).get(PROCESSOR_NETWORK)
    if not declared or not declared.get("external") \
            or declared.get("name", PROCESSOR_NETWORK) != PROCESSOR_NETWORK:
        err("processor-network", f"network {PROCESSOR_NETWORK} is not declared external")
    for name, svc in services.items():
        env = env_of(svc)
        calls = command_program(svc) == "gateway" or any(k.startswith("PROCESSOR_") for k in env)
        nets = svc.get("networks") or {}
        if calls and PROCESSOR_NETWORK not in nets:
            err("processor-network", f"service {name} calls the processors but does not join {PROCESSOR_NETWORK}")

    for name, svc in services.items():
        profiles = seccomp_profiles(svc)
        for p in profiles:
            path = p if os.path.isabs(p) else os.path.join(compose_dir, p)
            if not os.path.isfile(path):
                err("seccomp-profile", f"service {name}: seccomp profile {p} does not exist")
                continue
            try:
                missing = allows_io_uring(path)
            except (OSError, ValueError) as e:
                err("seccomp-profile", f"service {name}: seccomp profile {p} is unreadable: {e}")
                continue
            if missing:
                err("seccomp-profile", f"service {name}: seccomp profile {p} does not allow {', '.join(missing)}")
        if env_of(svc).get("IO_DRIVER") == "uring" and not profiles:
            err("seccomp-profile", f"service {name} asks for IO_DRIVER=uring without a seccomp profile "
                                   "that allows it (Docker 25+ blocks io_uring by default)")
    for name, svc in services.items():
        if command_program(svc) not in ("gateway", "lb"):
            continue
        nofile = nofile_of(svc)
        need = NOFILE_MIN
        max_conns = env_of(svc).get("MAX_CONNECTIONS")
        if max_conns:
            need = max(need, int(max_conns) + NOFILE_MARGIN)
        if nofile is None:
            err("nofile", f"service {name} sets no ulimits.nofile (at least {need})")
        elif min(nofile) < need:
            err("nofile", f"service {name}: ulimits.nofile {nofile} below {need} "
                          f"(MAX_CONNECTIONS plus {NOFILE_MARGIN}, at least {NOFILE_MIN})")
    for name, svc in services.items():
        if command_program(svc) not in ("gateway", "lb"):
            continue
        grace = int(env_of(svc).get("SHUTDOWN_GRACE_MS", DEFAULT_SHUTDOWN_GRACE_MS))
        docker = svc.get("stop_grace_period")
        docker_ms = DOCKER_STOP_GRACE_MS if docker is None else duration_ms(docker)
        if docker_ms <= grace:
            err("stop-grace", f"service {name}: stop_grace_period ({docker or '10s, the default'}) "
                              f"is not above SHUTDOWN_GRACE_MS ({grace} ms): Docker would kill it "
                              "before it settles what it accepted")
        journal = env_of(svc).get("JOURNAL_DIR")
        if journal:
            sources = [s for s, t in volume_mounts(svc) if t == journal]
            if not sources:
                err("journal-volume", f"service {name}: JOURNAL_DIR {journal} is on no volume: the "
                                      "journal would be lost with the container")
            for other, osvc in services.items():
                if other != name and any(s in sources for s, _ in volume_mounts(osvc)):
                    err("journal-volume", f"services {name} and {other} share the journal volume "
                                          f"{sources[0]}: each instance needs its own")
        if svc.get("restart") not in RESTARTING:
            err("restart", f"service {name} is not restarted when it dies "
                           f"(restart: {svc.get('restart')!r}; want unless-stopped)")
    return errors


def self_test(config, compose_dir):
    """Breaks the configuration once per rule; each break must be caught by its rule."""
    ok = check(config, compose_dir)
    if ok:
        sys.exit(f"self-test: the configuration under test must pass first: {ok}")
    services = list(config["services"])
    gw = next(n for n in services if n != LB_SERVICE)
    tmp = tempfile.mkdtemp()
    no_uring = os.path.join(tmp, "no-io_uring.json")
    with open(no_uring, "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ERRNO",
                   "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}, f)

    def svc(c, n):
        return c["services"][n]

    def set_limit(key, value):
        return lambda c: svc(c, gw).setdefault("deploy", {}).setdefault("resources", {}) \
            .setdefault("limits", {}).__setitem__(key, value)

    breaks = [
        ("limits", "no deploy on a gateway", lambda c: svc(c, gw).pop("deploy", None)),
        ("cpu-budget", "a gateway at 1.5 CPUs", set_limit("cpus", 1.5)),
        ("memory-budget", "a gateway at 340 MB", set_limit("memory", "340M")),
        ("port-9999", "a gateway publishes 9999", lambda c: svc(c, gw).__setitem__("ports", ["9999:9999"])),
        ("port-9999", "the lb publishes nothing", lambda c: svc(c, LB_SERVICE).pop("ports", None)),
        ("port-9999", "the lb also publishes 8080",
         lambda c: svc(c, LB_SERVICE).__setitem__("ports", ["9999:9999", "8080:8080"])),
        ("no-host-network", "the lb on the host network",
         lambda c: svc(c, LB_SERVICE).__setitem__("network_mode", "host")),
        ("no-privileged", "a privileged gateway", lambda c: svc(c, gw).__setitem__("privileged", True)),
        ("no-replicas", "deploy.replicas on a gateway",
         lambda c: svc(c, gw).setdefault("deploy", {}).__setitem__("replicas", 2)),
        ("no-replicas", "scale on a gateway", lambda c: svc(c, gw).__setitem__("scale", 2)),
        ("processor-network", "the network not declared",
         lambda c: c.get("networks", {}).pop(PROCESSOR_NETWORK, None)),
        ("processor-network", "the network not external",
         lambda c: c["networks"].__setitem__(PROCESSOR_NETWORK, {"driver": "bridge"})),
        ("processor-network", "a gateway off the network",
         lambda c: svc(c, gw).__setitem__("networks", {"default": None})),
        ("processor-network", "a service with PROCESSOR_DEFAULT_URL off the network",
         lambda c: svc(c, LB_SERVICE).setdefault("environment", {})
         .__setitem__("PROCESSOR_DEFAULT_URL", "http://payment-processor-default:8080")),
        ("nofile", "no ulimits on a gateway", lambda c: svc(c, gw).pop("ulimits", None)),
        ("nofile", "no ulimits on the lb", lambda c: svc(c, LB_SERVICE).pop("ulimits", None)),
        ("nofile", "MAX_CONNECTIONS at the gateway's nofile",
         lambda c: svc(c, gw).setdefault("environment", {})
         .__setitem__("MAX_CONNECTIONS", str(min(nofile_of(svc(c, gw)))))),
        ("stop-grace", "a gateway's grace as long as Docker's",
         lambda c: svc(c, gw).setdefault("environment", {}).__setitem__("SHUTDOWN_GRACE_MS", "10000")),
        ("stop-grace", "a gateway's stop_grace_period below its grace",
         lambda c: svc(c, gw).__setitem__("stop_grace_period", "5s")),
        ("journal-volume", "a gateway's journal on no volume",
         lambda c: svc(c, gw).__setitem__("volumes", ["sockets:/sockets"])),
        ("journal-volume", "both gateways on one journal volume",
         lambda c: [svc(c, n).__setitem__("volumes", ["sockets:/sockets", "journal-1:/journal"])
                    for n in services if n != LB_SERVICE]),
        ("restart", "a gateway without a restart policy", lambda c: svc(c, gw).pop("restart", None)),
        ("restart", "the lb restarted never", lambda c: svc(c, LB_SERVICE).__setitem__("restart", "no")),
        ("seccomp-profile", "a gateway asking for io_uring without a profile",
         lambda c: (svc(c, gw).pop("security_opt", None),
                    svc(c, gw).setdefault("environment", {}).__setitem__("IO_DRIVER", "uring"))),
    ]
    # The shipped profile must be fit for the switch to io_uring docker-compose.yml
    # describes, whether or not a service uses it now.
    shipped = ["seccomp=./seccomp-io_uring.json"]
    breaks += [
        ("seccomp-profile", "a profile that does not exist",
         lambda c: svc(c, gw).__setitem__("security_opt", ["seccomp=./no-such-profile.json"])),
        ("seccomp-profile", "a profile without io_uring",
         lambda c: svc(c, gw).__setitem__("security_opt", [f"seccomp={no_uring}"])),
    ]
    failed = False
    switched = copy.deepcopy(config)
    svc(switched, gw)["security_opt"] = shipped
    svc(switched, gw).setdefault("environment", {})["IO_DRIVER"] = "uring"
    if check(switched, compose_dir):
        print(f"self-test: {gw} with IO_DRIVER=uring and {shipped[0]} fails: {check(switched, compose_dir)}")
        failed = True
    for rule, what, brk in breaks:
        broken = copy.deepcopy(config)
        brk(broken)
        caught = [r for r, _ in check(broken, compose_dir)]
        if rule not in caught:
            print(f"self-test: rule {rule} did not catch: {what} (caught: {caught or 'nothing'})")
            failed = True
    rules_tested = sorted({r for r, _, _ in breaks})
    if failed:
        sys.exit(1)
    print(f"self-test: {len(breaks)} broken configurations, each caught by its rule "
          f"({', '.join(rules_tested)})")


def main():
    args = sys.argv[1:]
    test = args[:1] == ["--self-test"]
    if test:
        args = args[1:]
    if len(args) != 2:
        sys.exit(__doc__)
    with open(args[0]) as f:
        config = yaml.safe_load(f)
    if test:
        self_test(config, args[1])
        return
    errors = check(config, args[1])
    for rule, msg in errors:
        print(f"compose-check: rule {rule} broken: {msg}")
    if errors:
        sys.exit(1)
    print(f"compose-check: {len(config.get('services') or {})} services pass every rule")


if __name__ == "__main__":
    main()
