//! Bearer tokens signed with the deployment's Ed25519 key. No service stores them: every
//! service checks the signature with the public key alone.
//!
//! A token is `sl1.<claims>.<signature>`, both parts base64url without padding; the signature
//! covers `sl1.<claims>`.

use std::path::Path;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AuthConfig;
use crate::error::{ApiError, FieldError};
use crate::reference;

const PREFIX: &str = "sl1.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Inspector,
    LocalGov,
    Verifier,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inspector => "inspector",
            Role::LocalGov => "local_gov",
            Role::Verifier => "verifier",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "inspector" => Ok(Role::Inspector),
            "local_gov" => Ok(Role::LocalGov),
            "verifier" => Ok(Role::Verifier),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}: inspector, local_gov, verifier or admin")),
        }
    }
}

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub jti: Uuid,
    pub role: Role,
    /// The team an inspector or verifier belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The city or county a local government speaks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// Issued and expiry times, Unix seconds.
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    /// Checks the role binding DESIGN.md gives: inspectors and verifiers to a team, local
    /// governments to a known jurisdiction.
    pub fn check_binding(&self) -> Result<(), String> {
        match self.role {
            Role::Inspector | Role::Verifier if self.team.as_deref().is_none_or(str::is_empty) => {
                Err(format!("a {} token needs --team", self.role.as_str()))
            }
            Role::LocalGov => match self.jurisdiction.as_deref() {
                Some(code) if reference::is_jurisdiction(code) => Ok(()),
                Some(code) => Err(format!("{code} is not a key city or a county of one")),
                None => Err("a local_gov token needs --jurisdiction".into()),
            },
            _ => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is not a Skyledger token")]
    Malformed,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

fn signing_key_from_seed_hex(seed: &str) -> anyhow::Result<SigningKey> {
    let bytes: [u8; 32] = hex::decode(seed.trim())?
        .try_into()
        .map_err(|_| anyhow::anyhow!("a signing key is 32 bytes (64 hex digits)"))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// An Ed25519 key kept as its hex seed in `path`, created (mode 0600) on first use; when two
/// processes race to create it, both end up with the one that was written first.
pub fn load_or_create_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    match std::fs::read_to_string(path) {
        Ok(seed) => signing_key_from_seed_hex(&seed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
                Ok(mut file) => {
                    file.write_all(hex::encode(key.to_bytes()).as_bytes())?;
                    Ok(key)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    signing_key_from_seed_hex(&std::fs::read_to_string(path)?)
                }
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The deployment's signing key; only `skyledger token create` (and tests) need it.
pub struct TokenSigner {
    key: SigningKey,
}

impl TokenSigner {
    pub fn generate() -> Self {
        Self { key: SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    pub fn from_seed_hex(seed: &str) -> anyhow::Result<Self> {
        Ok(Self { key: signing_key_from_seed_hex(seed)? })
    }

    /// Reads the key file, creating it (mode 0600) with a new key when it does not exist, so a
    /// one-machine deployment works with no set-up.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        Ok(Self { key: load_or_create_signing_key(path)? })
    }

    pub fn seed_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier { key: self.key.verifying_key() }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let body = B64.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let signed = format!("{PREFIX}{body}");
        let signature = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", B64.encode(signature.to_bytes()))
    }

    /// A token for `role`, valid for `ttl_secs` from `now` (Unix seconds).
    pub fn issue(
        &self,
        role: Role,
        team: Option<String>,
        jurisdiction: Option<String>,
        now: i64,
        ttl_secs: i64,
    ) -> anyhow::Result<String> {
        let claims = Claims { jti: Uuid::now_v7(), role, team, jurisdiction, iat: now, exp: now + ttl_secs };
        claims.check_binding().map_err(anyhow::Error::msg)?;
        Ok(self.sign(&claims))
    }
}

/// Checks tokens with the public key.
#[derive(Clone)]
pub struct TokenVerifier {
    key: VerifyingKey,
}

impl TokenVerifier {
    pub fn from_public_key_hex(hex_key: &str) -> anyhow::Result<Self> {
        let bytes: [u8; 32] = hex::decode(hex_key.trim())?
            .try_into()
            .map_err(|_| anyhow::anyhow!("a public key is 32 bytes (64 hex digits)"))?;
        Ok(Self { key: VerifyingKey::from_bytes(&bytes)? })
    }

    /// The configured public key, or the one derived from the deployment's key file.
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Self> {
        if config.public_key.trim().is_empty() {
            Ok(TokenSigner::load_or_create(Path::new(&config.signing_key_file))?.verifier())
        } else {
            Self::from_public_key_hex(&config.public_key)
        }
    }

    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let rest = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
        let (body, signature) = rest.split_once('.').ok_or(TokenError::Malformed)?;
        let signature: [u8; 64] =
            B64.decode(signature).ok().and_then(|s| s.try_into().ok()).ok_or(TokenError::Malformed)?;
        self.key
            .verify(&token.as_bytes()[..PREFIX.len() + body.len()], &Signature::from_bytes(&signature))
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims =
            B64.decode(body).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// The authenticated caller of a request. Handlers take it as an extractor and then say which
/// role they need; a request without a valid bearer token is answered 401 before the handler runs.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl Caller {
    pub fn require(&self, role: Role) -> Result<&Claims, ApiError> {
        if self.0.role == role {
            Ok(&self.0)
        } else {
            Err(ApiError::forbidden("Authorization", format!("this needs a {} token", role.as_str())))
        }
    }

    /// The team of an inspector or verifier token.
    pub fn team(&self) -> Result<&str, ApiError> {
        self.0.team.as_deref().ok_or_else(|| ApiError::forbidden("Authorization", "the token names no team"))
    }

    /// The jurisdiction of a local government token.
    pub fn jurisdiction(&self) -> Result<&str, ApiError> {
        self.0
            .jurisdiction
            .as_deref()
            .ok_or_else(|| ApiError::forbidden("Authorization", "the token names no jurisdiction"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let unauthenticated = |detail: &str| ApiError::Unauthenticated(FieldError::new("Authorization", detail));
        let verifier = parts
            .extensions
            .get::<Arc<TokenVerifier>>()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no token verifier installed")))?;
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthenticated("a bearer token is required"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| unauthenticated("expected `Bearer <token>`"))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        verifier.verify(token.trim(), now).map(Caller).map_err(|e| unauthenticated(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_and_a_tampered_one_does_not() {
        let signer = TokenSigner::generate();
        let token = signer.issue(Role::Inspector, Some("T-130".into()), None, 1_000, 60).unwrap();
        let claims = signer.verifier().verify(&token, 1_010).unwrap();
        assert_eq!(claims.role, Role::Inspector);
        assert_eq!(claims.team.as_deref(), Some("T-130"));
        assert_eq!(signer.verifier().verify(&token, 1_060), Err(TokenError::Expired));
        let other = TokenSigner::generate();
        assert_eq!(other.verifier().verify(&token, 1_010), Err(TokenError::BadSignature));
        // Raise the role inside the claims: the signature no longer covers them.
        let (head, sig) = token.rsplit_once('.').unwrap();
        let body = B64.decode(head.strip_prefix(PREFIX).unwrap()).unwrap();
        let forged = String::from_utf8(body).unwrap().replace("inspector", "admin");
        let forged = format!("{PREFIX}{}.{sig}", B64.encode(forged));
        assert_eq!(signer.verifier().verify(&forged, 1_010), Err(TokenError::BadSignature));
        assert_eq!(signer.verifier().verify("garbage", 1_010), Err(TokenError::Malformed));
    }

    #[test]
    fn roles_are_bound_as_the_design_says() {
        let signer = TokenSigner::generate();
        assert!(signer.issue(Role::Inspector, None, None, 0, 60).is_err());
        assert!(signer.issue(Role::LocalGov, None, Some("999999".into()), 0, 60).is_err());
        assert!(signer.issue(Role::LocalGov, None, Some("130502".into()), 0, 60).is_ok());
        assert!(signer.issue(Role::Admin, None, None, 0, 60).is_ok());
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("skyledger-key-{}", Uuid::now_v7()));
        let path = dir.join("signing.key");
        let first = TokenSigner::load_or_create(&path).unwrap();
        let second = TokenSigner::load_or_create(&path).unwrap();
        assert_eq!(first.public_key_hex(), second.public_key_hex());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
