//! The gateway binary: configuration from the environment, then [`gateway::gateway::run`].

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let config = match gateway::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gateway: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = gateway::gateway::run(config) {
        eprintln!("gateway: {e}");
        std::process::exit(1);
    }
}
