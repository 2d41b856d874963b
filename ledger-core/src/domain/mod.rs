//! The pure domain: value types, commands, events, the decision state, and
//! the two functions everything else is built around, `decide` and `apply`.
//!
//! Architecture invariant: nothing here performs I/O, reads a clock, draws
//! randomness or generates ids. Time, ids and the actor arrive with the
//! command; the tidy test in `tests/` enforces this.

/// A JSON Schema for a type serialised as a string with its own format:
/// `string_schema!(Type, { "pattern": ..., "description": ... })`.
#[cfg(feature = "schemas")]
macro_rules! string_schema {
    ($name:ident, { $($schema:tt)* }) => {
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", $($schema)* })
            }
        }
    };
}

pub mod apply;
pub mod chunked_queue;
pub mod command;
pub mod decide;
pub mod digest;
pub mod earning;
pub mod event;
pub mod expiry_index;
pub mod idempotency;
pub mod ids;
pub mod invariants;
pub mod money;
pub mod program;
pub mod rejection;
pub mod sharded_map;
pub mod state;
pub mod time;

pub use apply::{ApplyError, apply, try_apply};
pub use command::{Actor, Command, Context, Role};
pub use decide::{decide, execute};
pub use digest::state_digest;
pub use event::Event;
pub use invariants::{InvariantViolation, check_all};
pub use money::{Amount, Currency, Money, Points};
pub use rejection::Rejection;
pub use state::State;
pub use time::Timestamp;

#[cfg(test)]
mod tests;
