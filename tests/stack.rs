//! The `stack` runner end to end: it starts the real topology (simulators, gateways, lb,
//! and redis-server with `LEDGER=redis`), prints where everything listens, carries a
//! payment from the lb to a processor, and leaves nothing behind when it stops, when a
//! child dies, or when it is killed itself.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use common::*;

/// One line of the stack's output: an address and `key value` pairs.
#[derive(Debug, Clone)]
struct Entry {
    addr: String,
    keys: HashMap<String, String>,
}

impl Entry {
    fn pid(&self) -> u32 {
        self.keys["pid"].parse().unwrap()
    }
}

/// A running stack; killed (SIGKILL) if still running when dropped.
struct Stack {
    child: Child,
    entries: HashMap<String, Entry>,
    stderr: Arc<Mutex<String>>,
}

/// The environment a test gives the stack: nothing inherited but PATH (for
/// redis-server), light gateways, and the lb on an ephemeral port.
fn base_env() -> Vec<(&'static str, String)> {
    vec![
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("LISTEN", "127.0.0.1:0".to_string()),
        ("CORES", "1".to_string()),
        ("MAX_IN_FLIGHT", "16".to_string()),
        ("IO_DRIVER", "epoll".to_string()),
    ]
}

fn stack_command(env: &[(&str, String)]) -> Command {
    // The stack finds the lb next to itself: make sure it is built there.
    lb_bin();
    let mut cmd = Command::new(common::workspace_bin("stack"));
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Collects a child's stderr in the background.
fn collect(from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    log
}

impl Stack {
    /// Starts the stack and reads its output up to `ready`.
    fn start(env: &[(&str, String)]) -> Stack {
        let mut child = stack_command(env).spawn().expect("starting stack");
        let stderr = collect(child.stderr.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut entries = HashMap::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "stack never said ready; stderr:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            };
            if line == "ready" {
                break;
            }
            let mut words = line.split(' ');
            let name = words.next().unwrap().to_string();
            let addr = words.next().unwrap_or_else(|| panic!("no address: {line}"));
            let rest: Vec<&str> = words.collect();
            let keys = if rest == ["external"] {
                HashMap::new()
            } else {
                assert!(rest.len().is_multiple_of(2), "key value pairs: {line}");
                rest.chunks(2)
                    .map(|kv| (kv[0].to_string(), kv[1].to_string()))
                    .collect()
            };
            entries.insert(
                name,
                Entry {
                    addr: addr.to_string(),
                    keys,
                },
            );
        }
        Stack {
            child,
            entries,
            stderr,
        }
    }

    fn entry(&self, name: &str) -> &Entry {
        self.entries
            .get(name)
            .unwrap_or_else(|| panic!("no {name} line in {:?}", self.entries))
    }

    /// `host:port` of a component printed as `http://host:port`.
    fn tcp(&self, name: &str) -> String {
        let addr = &self.entry(name).addr;
        addr.strip_prefix("http://")
            .unwrap_or_else(|| panic!("{name} is not on TCP: {addr}"))
            .to_string()
    }

    /// Pids of every child the stack printed.
    fn child_pids(&self) -> Vec<(String, u32)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.keys.contains_key("pid"))
            .map(|(n, e)| (n.clone(), e.pid()))
            .collect()
    }

    fn run_dir(&self) -> String {
        self.entry("run-dir").addr.clone()
    }

    fn signal(&self, sig: &str) {
        signal(self.child.id(), sig);
    }

    /// Waits for the stack to exit.
    fn wait(&mut self) -> ExitStatus {
        wait_for("stack to exit", || self.child.try_wait().unwrap())
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- stack's stderr ----\n{}", self.stderr());
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
    }
}

/// Every child the stack printed is gone, and so is its run directory.
fn assert_nothing_left(stack: &Stack) {
    for (name, pid) in stack.child_pids() {
        wait_for(&format!("{name} (pid {pid}) to be gone"), || {
            (!alive(pid)).then_some(())
        });
    }
    assert!(
        !Path::new(&stack.run_dir()).exists(),
        "run dir {} removed",
        stack.run_dir()
    );
}

/// A payment through the lb: 202, then in the summary through the lb and in one of the
/// simulators' admin summaries.
fn assert_payment_flows(stack: &Stack, tag: u16) {
    assert_payment_flows_among(stack, tag, 1);
}

/// [`assert_payment_flows`] for the `n`th payment of 12.34 of a run.
fn assert_payment_flows_among(stack: &Stack, tag: u16, n: u64) {
    let lb = stack.tcp("lb");
    let r = post_json(&lb, "/payments", &payment_body(&uuid(tag, 1), "12.34"));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let want_cents = 1234 * n as i64;
    wait_for("the payment in the summary", || {
        // 503 while a peer is not answering yet (a gateway just restarted).
        let r = get(&lb, "/payments-summary");
        if r.status == 503 {
            return None;
        }
        let v = r.json();
        let (dc, da) = totals(&v, "default");
        let (fc, fa) = totals(&v, "fallback");
        (dc + fc == n).then(|| assert_eq!(da + fa, want_cents))
    });
    let mut processed = (0, 0);
    for sim in ["processor-default", "processor-fallback"] {
        let r = admin(&stack.tcp(sim), "GET", "/admin/payments-summary", "");
        assert_eq!(r.status, 200);
        let v = r.json();
        processed.0 += v["totalRequests"].as_u64().unwrap();
        processed.1 += cents(&v["totalAmount"]);
    }
    assert_eq!(
        processed,
        (n, want_cents),
        "charged once each, by one processor"
    );
}

#[test]
fn memory_ledger_stack_serves_and_stops_cleanly_on_sigterm() {
    let mut stack = Stack::start(&base_env());
    for name in [
        "run-dir",
        "processor-default",
        "processor-fallback",
        "gateway-1",
        "gateway-2",
        "lb",
    ] {
        stack.entry(name);
    }
    assert!(!stack.entries.contains_key("redis"));
    assert_eq!(stack.entry("processor-default").keys["fee"], "0.07");
    assert_eq!(stack.entry("processor-fallback").keys["fee"], "0.10");
    assert_eq!(stack.entry("lb").keys["mode"], "handoff");
    assert!(stack.entry("gateway-1").addr.starts_with("unix:"));
    // /metrics is on each gateway's internal socket, and answers 404 through the lb.
    for gw in ["gateway-1", "gateway-2"] {
        let internal = &stack.entry(gw).keys["internal"];
        assert!(internal.ends_with(&format!("{gw}.internal")), "{internal}");
        assert_eq!(get(internal, "/metrics").status, 200, "{gw}");
    }
    assert_eq!(get(&stack.tcp("lb"), "/metrics").status, 404);
    assert_payment_flows(&stack, 0x5701);
    stack.signal("TERM");
    let status = stack.wait();
    assert_eq!(status.code(), Some(0), "{}", stack.stderr());
    assert_nothing_left(&stack);
}

#[test]
fn redis_ledger_proxy_stack_serves_and_stops_cleanly_on_sigint() {
    let mut env = base_env();
    env.push(("LEDGER", "redis".to_string()));
    env.push(("LB_MODE", "proxy".to_string()));
    env.push(("PROCESSOR_DEFAULT_FEE", "0.05".to_string()));
    let mut stack = Stack::start(&env);
    assert!(stack.entry("redis").addr.starts_with("unix:"));
    assert_eq!(stack.entry("lb").keys["mode"], "proxy");
    assert_eq!(stack.entry("processor-default").keys["fee"], "0.05");
    assert_payment_flows(&stack, 0x5702);
    stack.signal("INT");
    let status = stack.wait();
    assert_eq!(status.code(), Some(0), "{}", stack.stderr());
    assert_nothing_left(&stack);
}

#[test]
fn a_child_that_dies_stops_the_stack_naming_it() {
    let mut stack = Stack::start(&base_env());
    signal(stack.entry("processor-fallback").pid(), "KILL");
    let status = stack.wait();
    assert_eq!(status.code(), Some(1));
    let err = stack.stderr();
    assert!(
        err.lines()
            .any(|l| l.starts_with("stack: processor-fallback exited unexpectedly")),
        "names the child: {err}"
    );
    assert_nothing_left(&stack);
}

#[test]
fn a_gateway_that_dies_is_restarted_and_the_stack_serves_on() {
    let mut stack = Stack::start(&base_env());
    signal(stack.entry("gateway-2").pid(), "KILL");
    let line = wait_for("the restart of gateway-2", || {
        stack
            .stderr()
            .lines()
            .find(|l| l.starts_with("stack: gateway-2 exited") && l.contains("restarted it"))
            .map(str::to_string)
    });
    let pid: u32 = line
        .rsplit_once("pid ")
        .and_then(|(_, p)| p.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("a pid in {line:?}"));
    assert!(alive(pid));
    // Both gateways serve: payments through the lb reach them in turn.
    for tag in 70..74 {
        assert_payment_flows_among(&stack, tag, u64::from(tag - 69));
    }
    stack.signal("TERM");
    assert!(stack.wait().success(), "{}", stack.stderr());
    wait_for("the restarted gateway to be gone", || {
        (!alive(pid)).then_some(())
    });
    assert_nothing_left(&stack);
}

#[test]
fn children_do_not_outlive_a_killed_stack() {
    let mut stack = Stack::start(&base_env());
    stack.signal("KILL");
    stack.wait();
    for (name, pid) in stack.child_pids() {
        wait_for(&format!("{name} (pid {pid}) to die with the stack"), || {
            (!alive(pid)).then_some(())
        });
    }
    // Nobody was left to remove it.
    let _ = std::fs::remove_dir_all(stack.run_dir());
}

#[test]
fn given_processor_urls_start_no_simulators() {
    let default = sim("sim-default", "0.05", &[]);
    let fallback = sim("sim-fallback", "0.15", &[]);
    let mut env = base_env();
    env.push(("PROCESSOR_DEFAULT_URL", format!("http://{}", default.addr)));
    env.push((
        "PROCESSOR_FALLBACK_URL",
        format!("http://{}", fallback.addr),
    ));
    let mut stack = Stack::start(&env);
    let d = stack.entry("processor-default");
    assert_eq!(d.addr, format!("http://{}", default.addr));
    assert!(!d.keys.contains_key("pid"), "not started by the stack");
    assert_payment_flows(&stack, 0x5703);
    stack.signal("TERM");
    assert_eq!(stack.wait().code(), Some(0));
    assert_nothing_left(&stack);
}

#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("PROCESSOR_DEFAULT_URL", "http://127.0.0.1:8001")],
            "PROCESSOR_FALLBACK_URL",
        ),
        (
            &[("PROCESSOR_FALLBACK_URL", "http://127.0.0.1:8002")],
            "PROCESSOR_DEFAULT_URL",
        ),
        (&[("LEDGER", "sqlite")], "LEDGER"),
        (&[("LB_MODE", "dsr")], "LB_MODE"),
        (&[("PROCESSOR_DEFAULT_FEE", "-1")], "PROCESSOR_DEFAULT_FEE"),
    ];
    for (vars, var) in cases {
        let env: Vec<(&str, String)> = vars.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let out = stack_command(&env).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{vars:?}");
        assert!(out.stdout.is_empty(), "{vars:?}: nothing announced");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.starts_with(&format!("stack: {var}:")),
            "{vars:?} names {var}: {err}"
        );
    }
}
