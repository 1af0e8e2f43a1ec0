//! The gateway binary: configuration from the environment, then [`gateway::app::start::run`].

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let config = match gateway::app::config::GatewayConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gateway: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = gateway::app::start::run(config) {
        eprintln!("gateway: {e}");
        std::process::exit(1);
    }
}
