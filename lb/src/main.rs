//! The lb binary: configuration from the environment, then [`lb::run`].

fn main() {
    let config = match lb::config::LbConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lb: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = lb::run(config) {
        eprintln!("lb: {e}");
        std::process::exit(1);
    }
}
