//! What a single check run returns.

use std::time::Duration;

/// The outcome of one check run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Whether the check passed.
    pub ok: bool,
    /// A human-readable explanation (the failure reason, or what passed).
    pub detail: String,
    /// How long the run took.
    pub elapsed: Duration,
    /// A new weight requested by the checker (MISC_CHECK `misc_dynamic`, FILE_CHECK).
    pub weight: Option<u32>,
}

impl CheckResult {
    /// A passing result (`elapsed` is filled in by [`crate::checkers::check`]).
    pub fn pass(detail: impl Into<String>) -> Self {
        CheckResult {
            ok: true,
            detail: detail.into(),
            elapsed: Duration::ZERO,
            weight: None,
        }
    }

    /// A failing result (`elapsed` is filled in by [`crate::checkers::check`]).
    pub fn fail(detail: impl Into<String>) -> Self {
        CheckResult {
            ok: false,
            detail: detail.into(),
            elapsed: Duration::ZERO,
            weight: None,
        }
    }

    /// The same result carrying a requested weight.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = Some(weight);
        self
    }
}
