//! The two payment processors, as every layer names them.

/// Which processor charged (or is asked to charge) a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Processor {
    /// The cheap one.
    Default,
    /// The dear one.
    Fallback,
}

impl Processor {
    pub const ALL: [Processor; 2] = [Processor::Default, Processor::Fallback];

    pub fn name(self) -> &'static str {
        match self {
            Processor::Default => "default",
            Processor::Fallback => "fallback",
        }
    }

    /// The processor [`Processor::name`] names.
    pub fn from_name(name: &str) -> Option<Processor> {
        Processor::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}
