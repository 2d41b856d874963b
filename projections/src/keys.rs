//! API keys, as the events record them: hashed secrets, roles, merchant
//! scope, revocation. The server authenticates requests against this.

use ledger_core::domain::Event;
use ledger_core::domain::command::{Actor, Role};
use ledger_core::domain::ids::{KeyId, MerchantId};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub key_id: KeyId,
    pub role: Role,
    pub merchant_id: Option<MerchantId>,
    pub revoked: bool,
}

impl KeyRecord {
    pub fn actor(&self) -> Actor {
        Actor {
            key_id: self.key_id.clone(),
            role: self.role,
            merchant_id: self.merchant_id.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    /// Hex SHA-256 of the secret → the key.
    by_hash: FxHashMap<String, KeyRecord>,
    hash_of: FxHashMap<KeyId, String>,
}

impl Keys {
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ApiKeyCreated(created) => {
                self.hash_of
                    .insert(created.key_id.clone(), created.key_hash.hex.clone());
                self.by_hash.insert(
                    created.key_hash.hex.clone(),
                    KeyRecord {
                        key_id: created.key_id.clone(),
                        role: created.role,
                        merchant_id: created.merchant_id.clone(),
                        revoked: false,
                    },
                );
            }
            Event::ApiKeyRevoked(revoked) => {
                if let Some(record) = self
                    .hash_of
                    .get(&revoked.key_id)
                    .and_then(|hash| self.by_hash.get_mut(hash))
                {
                    record.revoked = true;
                }
            }
            _ => {}
        }
    }

    /// Every key ever created, revoked ones too, in no order.
    pub fn all(&self) -> impl Iterator<Item = &KeyRecord> {
        self.by_hash.values()
    }

    /// The live (not revoked) key whose secret hashes to `key_hash`.
    pub fn by_hash(&self, key_hash: &str) -> Option<&KeyRecord> {
        self.by_hash.get(key_hash).filter(|record| !record.revoked)
    }
}
