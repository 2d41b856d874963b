//! # projections
//!
//! Read models folded from the committed event log, keyed by global
//! position: member balances and lots, account history, merchant
//! settlements and the clearing matrix, supply and budget views, risk
//! alerts. Each is a pure fold, idempotent by position and rebuildable from
//! genesis; the server and the replay tool run the same code.
//!
//! Status: the folds arrive with the engine-and-projections issue; until
//! then this crate only reserves its place in the workspace.
