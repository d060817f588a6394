//! Pure domain rules of RULES.md: no I/O, no clock, no HTTP. Each rule lives
//! in the file named after it.

pub mod loa;
pub mod lockout;
pub mod maiden_name;
pub mod no_pesel;
pub mod password;
pub mod pesel;
pub mod rate_limit;
pub mod window;

pub use loa::Loa;
pub use lockout::{LockState, LockoutPolicy, Millis, Outcome, Reservation};
pub use maiden_name::MaidenName;
pub use password::{LoginPassword, NewPassword, PasswordViolation};
pub use pesel::{Pesel, PeselError};

/// One broken rule of one input field, reported in a 422 `violations` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    /// The JSON field name (`pesel`, `password`, …).
    pub field: &'static str,
    /// The stable code from RULES.md.
    pub code: &'static str,
}

impl Violation {
    pub const fn new(field: &'static str, code: &'static str) -> Self {
        Self { field, code }
    }
}
