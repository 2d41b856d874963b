//! A digest of the whole decision state, independent of hash-map iteration
//! order: two states are the same exactly when their digests are. Used to
//! prove determinism (replaying the events rebuilds the identical state,
//! with or without a snapshot).

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::state::State;

fn write<T: Serialize + ?Sized>(hasher: &mut Sha256, value: &T) {
    // Writing JSON into a hasher cannot fail: every state type serialises
    // (string keys, no non-finite floats) and the sink never errors.
    if let Err(error) = serde_json::to_writer(&mut *hasher, value) {
        panic!("state serialisation failed: {error}");
    }
    hasher.update(b"\n");
}

fn write_sorted<'map, K: Serialize + Ord + 'map, V: Serialize + 'map>(
    hasher: &mut Sha256,
    label: &str,
    map: impl Iterator<Item = (&'map K, &'map V)>,
) {
    let mut entries: Vec<(&K, &V)> = map.collect();
    entries.sort_unstable_by(|left, right| left.0.cmp(right.0));
    write(hasher, label);
    write(hasher, &entries.len());
    for (key, value) in entries {
        write(hasher, key);
        write(hasher, value);
    }
}

pub fn state_digest(state: &State) -> [u8; 32] {
    let mut hasher = Sha256::new();
    write(&mut hasher, &state.program);
    write_sorted(&mut hasher, "merchants", state.merchants.iter());
    write_sorted(&mut hasher, "api_keys", state.api_keys.iter());
    write_sorted(&mut hasher, "accounts", state.accounts.iter());
    write(&mut hasher, &state.issuances);
    let mut orders: Vec<_> = state
        .orders
        .iter()
        .flat_map(|(merchant_id, orders)| {
            orders
                .iter()
                .map(move |(order_ref, issuance_id)| (merchant_id, order_ref, issuance_id))
        })
        .collect();
    orders.sort_unstable();
    write(&mut hasher, &orders);
    write(&mut hasher, &state.redemptions);
    write(&mut hasher, &state.holds);
    write(&mut hasher, &state.hold_timeouts);
    write(&mut hasher, &state.lot_expiries.iter().collect::<Vec<_>>());
    write(&mut hasher, &state.supply);
    write(&mut hasher, &state.period);
    write(&mut hasher, &state.next_ids);
    hasher.finalize().into()
}
