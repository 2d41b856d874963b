//! Bearer API keys. Secrets are never stored: the ledger records each key's
//! SHA-256, and a request's key is hashed and looked up in the key read
//! model. The bootstrap admin key comes from the configuration.

use std::path::Path;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use ledger_core::domain::command::{Actor, Role};
use ledger_core::domain::ids::KeyId;
use ledger_core::store::EventLog;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::server::AppState;

pub const BOOTSTRAP_KEY_ID: &str = "bootstrap-admin";
/// How long an unknown key waits for the read model to reach the log's
/// head, so a key is usable as soon as its creation is acknowledged.
const NEW_KEY_WAIT: Duration = Duration::from_secs(2);

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The actor behind the request's bearer key.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Actor);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|secret| !secret.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let hash = hash_secret(secret);
        if state.admin_key_hash.as_deref() == Some(hash.as_str()) {
            return Ok(Authenticated(bootstrap_actor()?));
        }
        if let Some(actor) = lookup(state, &hash).await {
            return Ok(Authenticated(actor));
        }
        let head = state.log.head().position;
        if state.projections.position() < head
            && state.projections.wait_for(head, NEW_KEY_WAIT).await.is_ok()
            && let Some(actor) = lookup(state, &hash).await
        {
            return Ok(Authenticated(actor));
        }
        Err(ApiError::unauthorized())
    }
}

/// Waits (bounded by `--min-position-wait-ms`) until the key read model
/// has applied `position`: a revocation answered after this is refused by
/// every later request, not only by the writer.
pub async fn until_keys_reach(state: &AppState, position: u64) {
    let _ = state
        .projections
        .wait_for(position, state.config.min_position_wait())
        .await;
}

async fn lookup(state: &AppState, hash: &str) -> Option<Actor> {
    let projections = state.projections.read().await;
    projections.keys.by_hash(hash).map(|record| record.actor())
}

fn bootstrap_actor() -> Result<Actor, ApiError> {
    Ok(Actor {
        key_id: KeyId::parse(BOOTSTRAP_KEY_ID)
            .map_err(|error| ApiError::unavailable(error.to_string()))?,
        role: Role::Admin,
        merchant_id: None,
    })
}

/// Refuses roles a query is not for.
pub fn require_role(actor: &Actor, allowed: &[Role]) -> Result<(), ApiError> {
    if allowed.contains(&actor.role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "a key with the {} role may not read this",
            role_name(actor.role)
        )))
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Merchant => "merchant",
        Role::Auditor => "auditor",
        Role::Analyst => "analyst",
    }
}

/// The server's secret for deriving new API keys. Deriving a key from the
/// command id (rather than drawing it at random) lets a retried creation
/// answer with the same key; the secret keeps the key unguessable from
/// the command id, which the log records. Created on first start.
#[derive(Clone)]
pub struct KeyDerivation([u8; 32]);

impl std::fmt::Debug for KeyDerivation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("KeyDerivation(..)")
    }
}

impl KeyDerivation {
    const FILE_NAME: &'static str = "api-key-derivation.secret";

    pub fn load_or_create(data_dir: &Path) -> std::io::Result<KeyDerivation> {
        let path = data_dir.join(Self::FILE_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    std::io::Error::other(format!("{} must hold exactly 32 bytes", path.display()))
                })?;
                Ok(KeyDerivation(secret))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // The master secret of every key comes straight from the
                // operating system's generator.
                let mut secret = [0; 32];
                getrandom::fill(&mut secret).map_err(|error| {
                    std::io::Error::other(format!(
                        "no random bytes for {}: {error}",
                        path.display()
                    ))
                })?;
                ledger_core::store::small_file::write_durably(&path, &secret)?;
                Ok(KeyDerivation(secret))
            }
            Err(error) => Err(error),
        }
    }

    /// The key id and secret for the creation command `command_id`.
    pub fn derive(&self, command_id: Uuid) -> (String, String) {
        let derive = |purpose: &[u8]| {
            let mut hasher = Sha256::new();
            hasher.update(self.0);
            hasher.update(purpose);
            hasher.update(command_id.as_bytes());
            hex::encode(hasher.finalize())
        };
        let key_id = format!("key_{}", &derive(b"key id")[..16]);
        let secret = format!("plk_{}", derive(b"secret"));
        (key_id, secret)
    }
}
