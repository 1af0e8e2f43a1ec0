//! One-line logs on stderr, prefixed with the instance name.

use std::sync::OnceLock;

static NAME: OnceLock<String> = OnceLock::new();

/// Sets the prefix of every later line (first call wins).
pub fn set_name(name: &str) {
    let _ = NAME.set(name.to_string());
}

/// Writes one line; used through [`crate::log!`].
pub fn line(args: std::fmt::Arguments<'_>) {
    let name = NAME.get().map(String::as_str).unwrap_or("-");
    eprintln!("[{name}] {args}");
}

/// Logs one line on stderr: `log!("listening on {addr}")`.
#[macro_export]
macro_rules! log {
    ($($t:tt)*) => { $crate::log::line(format_args!($($t)*)) };
}

/// At most one line a second for one kind of event: each kind keeps its own
/// `static EVERY: Throttle = Throttle::new();`.
pub struct Throttle {
    /// The wall-clock second of the last line written, since the Unix epoch.
    last: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub const fn new() -> Throttle {
        Throttle {
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Writes `line()` unless a line of this kind was written this second.
    pub fn log(&self, line: impl FnOnce() -> String) {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.last.swap(second, std::sync::atomic::Ordering::Relaxed) != second {
            crate::log!("{}", line());
        }
    }
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new()
    }
}
