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
