//! The payment-processor simulator binary: see [`processor_sim`].

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let config = match processor_sim::SimConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("processor-sim: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = processor_sim::run(config) {
        eprintln!("processor-sim: {e}");
        std::process::exit(1);
    }
}
