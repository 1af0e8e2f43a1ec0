//! The stack binary: the whole topology (lb, two gateways, processor simulators, Redis
//! when asked) in the foreground; see [`stack`] for its environment and output.

fn main() {
    let config = match stack::StackConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stack: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = stack::run(config) {
        eprintln!("stack: {e}");
        std::process::exit(1);
    }
}
