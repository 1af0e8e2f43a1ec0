//! One monoio runtime per core, on the I/O driver the configuration asks for.

/// io_uring submission-queue entries per runtime. Each in-flight read, write, accept
/// and timer holds one; a core carries a few hundred client connections plus hundreds
/// of processor requests, and the ring must not run short under bursts.
const URING_ENTRIES: u32 = 4096;

/// `IO_DRIVER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    Auto,
    Uring,
    Epoll,
}

/// The driver actually used, after `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Uring,
    Epoll,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Uring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// Resolves `auto` to io_uring when this kernel (and seccomp profile) allows it.
pub fn resolve(driver: IoDriver) -> Result<Driver, String> {
    let uring = monoio::utils::detect_uring();
    match driver {
        IoDriver::Auto if uring => Ok(Driver::Uring),
        IoDriver::Auto | IoDriver::Epoll => Ok(Driver::Epoll),
        IoDriver::Uring if uring => Ok(Driver::Uring),
        IoDriver::Uring => Err(
            "IO_DRIVER: io_uring was asked for but is not available here \
                                (kernel or seccomp profile); use auto or epoll"
                .to_string(),
        ),
    }
}

/// Starts `cores` threads, each running `make(core)` to completion on its own
/// runtime, and waits for them all. A runtime that cannot be built ends the process
/// with a message: a gateway with a dead core would silently drop connections.
pub fn run_per_core<F, Fut>(cores: usize, driver: Driver, make: F)
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let mut threads = Vec::with_capacity(cores);
    for core in 0..cores {
        let make = make.clone();
        let t = std::thread::Builder::new()
            .name(format!("core-{core}"))
            .spawn(move || block_on(driver, make(core)))
            .expect("spawning a core thread");
        threads.push(t);
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Runs one future on a new runtime of the given driver, on this thread.
pub fn block_on<Fut: std::future::Future<Output = ()>>(driver: Driver, fut: Fut) {
    match driver {
        Driver::Uring => {
            match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .with_entries(URING_ENTRIES)
                .enable_timer()
                .build()
            {
                Ok(mut rt) => rt.block_on(fut),
                Err(e) => fatal(driver, e),
            }
        }
        Driver::Epoll => {
            match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
            {
                Ok(mut rt) => rt.block_on(fut),
                Err(e) => fatal(driver, e),
            }
        }
    }
}

fn fatal(driver: Driver, e: std::io::Error) -> ! {
    crate::log!("cannot start a {} runtime: {e}", driver.name());
    std::process::exit(1);
}
