//! The payment-processor simulator binary: see [`gateway::sim`].

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let config = match gateway::sim::SimConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("processor-sim: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = gateway::sim::run(config) {
        eprintln!("processor-sim: {e}");
        std::process::exit(1);
    }
}
