//! Settings from environment variables, shared by every binary's configuration.
//!
//! [`Vars`] reads variables through a lookup (the environment, or a table in tests);
//! an empty value counts as unset. A bad value is a [`ConfigError`] naming the variable
//! and what is wrong with it; the binary prints it and exits.

use std::time::Duration;

use crate::addr::Addr;
use crate::runtime::IoDriver;

/// Longest duration any setting takes: a day. Longer ones are mistakes, and would
/// overflow the clock arithmetic of timers.
pub const MAX_MILLIS: u64 = 86_400_000;

/// The bounds of `SCHED_SLICE_US`: the kernel clamps a thread's slice to them.
pub const SCHED_SLICE_MIN_US: u64 = 100;
pub const SCHED_SLICE_MAX_US: u64 = 100_000;

/// A variable with a bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.var, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Reads variables through `lookup` (the environment, or a table in tests). An empty
/// value counts as unset.
pub struct Vars<F: Fn(&str) -> Option<String>>(pub F);

impl Vars<Box<dyn Fn(&str) -> Option<String>>> {
    /// Variables from a table (tests, tools).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Vars(Box::new(move |k| map.get(k).cloned()))
    }
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    pub fn get(&self, var: &'static str) -> Option<String> {
        (self.0)(var).filter(|v| !v.trim().is_empty())
    }

    pub fn parse<T>(
        &self,
        var: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => parse(v.trim()).map_err(|reason| ConfigError { var, reason }),
        }
    }

    /// A positive integer count.
    pub fn count(&self, var: &'static str, default: usize) -> Result<usize, ConfigError> {
        self.parse(var, default, |v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("expected a positive integer, got {v:?}")),
        })
    }

    /// A positive number of milliseconds, at most a day.
    pub fn millis(&self, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        self.parse(var, default, |v| match v.parse::<u64>() {
            Ok(n) if n > 0 && n <= MAX_MILLIS => Ok(Duration::from_millis(n)),
            _ => Err(format!(
                "expected a positive number of milliseconds up to {MAX_MILLIS} (a day), got {v:?}"
            )),
        })
    }

    /// A fee: a fraction in [0, 1).
    pub fn fee(&self, var: &'static str, default: f64) -> Result<f64, ConfigError> {
        self.parse(var, default, |v| match v.parse::<f64>() {
            Ok(f) if (0.0..1.0).contains(&f) => Ok(f),
            _ => Err(format!(
                "expected a fraction of the amount in [0, 1), such as 0.05, got {v:?}"
            )),
        })
    }

    pub fn io_driver(&self) -> Result<IoDriver, ConfigError> {
        self.parse("IO_DRIVER", IoDriver::Auto, |v| match v {
            "auto" => Ok(IoDriver::Auto),
            "uring" | "io_uring" => Ok(IoDriver::Uring),
            "epoll" => Ok(IoDriver::Epoll),
            _ => Err(format!("expected auto, uring or epoll, got {v:?}")),
        })
    }

    /// `SCHED_SLICE_US`: the scheduler slice each core thread asks for
    /// ([`crate::sched`]), in microseconds from 100 to 100,000 (the kernel's bounds), or
    /// `0` for the kernel's own; `default` when unset.
    pub fn sched_slice(&self, default: Option<Duration>) -> Result<Option<Duration>, ConfigError> {
        self.parse("SCHED_SLICE_US", default, |v| match v.parse::<u64>() {
            Ok(0) => Ok(None),
            Ok(n) if (SCHED_SLICE_MIN_US..=SCHED_SLICE_MAX_US).contains(&n) => {
                Ok(Some(Duration::from_micros(n)))
            }
            _ => Err(format!(
                "expected 0 (the kernel's slice) or microseconds from {SCHED_SLICE_MIN_US} \
                 to {SCHED_SLICE_MAX_US}, got {v:?}"
            )),
        })
    }

    pub fn addr(&self, var: &'static str, default: &str) -> Result<Addr, ConfigError> {
        let v = self.get(var).unwrap_or_else(|| default.to_string());
        Addr::parse(v.trim()).map_err(|reason| ConfigError { var, reason })
    }
}

/// CPUs this process may use: the affinity mask, capped by the cgroup CPU quota
/// (Rust's `available_parallelism` reads both), at least 1.
pub fn default_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(1)
}
