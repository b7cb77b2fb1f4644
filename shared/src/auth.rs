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
    /// The person a sign-in token names (a machine token for scripts names nobody).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<Uuid>,
    /// That person's name, as the campaign office invited them: for pages and the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
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
    #[error("the token has been revoked")]
    Revoked,
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

/// The id (`jti`) of a token given as its id or as the token itself; the signature is not
/// checked (revoking a token needs only to name it).
pub fn token_id(token_or_id: &str) -> Option<Uuid> {
    let text = token_or_id.trim();
    if let Ok(id) = Uuid::parse_str(text) {
        return Some(id);
    }
    let body = text.strip_prefix(PREFIX)?.split('.').next()?;
    let claims: Claims = serde_json::from_slice(&B64.decode(body).ok()?).ok()?;
    Some(claims.jti)
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
        TokenVerifier::new(self.key.verifying_key())
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let body = B64.encode(serde_json::to_vec(claims).expect("claims serialise"));
        let signed = format!("{PREFIX}{body}");
        let signature = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", B64.encode(signature.to_bytes()))
    }

    /// A token with these claims, once their role binding holds (a person's sign-in token).
    pub fn issue_claims(&self, claims: &Claims) -> anyhow::Result<String> {
        claims.check_binding().map_err(anyhow::Error::msg)?;
        Ok(self.sign(claims))
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
        let claims = Claims {
            jti: Uuid::now_v7(),
            role,
            team,
            jurisdiction,
            sub: None,
            name: None,
            iat: now,
            exp: now + ttl_secs,
        };
        claims.check_binding().map_err(anyhow::Error::msg)?;
        Ok(self.sign(&claims))
    }
}

/// Checks tokens with the public key, and against the revocations heard so far: of single
/// tokens (a signed-out session) and of people (every token naming them).
#[derive(Clone)]
pub struct TokenVerifier {
    key: VerifyingKey,
    revoked: Arc<std::sync::RwLock<std::collections::HashSet<Uuid>>>,
    revoked_people: Arc<std::sync::RwLock<std::collections::HashSet<Uuid>>>,
}

impl TokenVerifier {
    pub fn from_public_key_hex(hex_key: &str) -> anyhow::Result<Self> {
        let bytes: [u8; 32] = hex::decode(hex_key.trim())?
            .try_into()
            .map_err(|_| anyhow::anyhow!("a public key is 32 bytes (64 hex digits)"))?;
        Ok(Self::new(VerifyingKey::from_bytes(&bytes)?))
    }

    fn new(key: VerifyingKey) -> Self {
        Self { key, revoked: Arc::default(), revoked_people: Arc::default() }
    }

    /// From now on, the token with this id is refused.
    pub fn revoke(&self, token_id: Uuid) {
        self.revoked.write().expect("revocation lock").insert(token_id);
    }

    /// From now on, every token naming this person is refused.
    pub fn revoke_person(&self, person_id: Uuid) {
        self.revoked_people.write().expect("revocation lock").insert(person_id);
    }

    /// The configured public key, or the one derived from the deployment's key file.
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Self> {
        if config.public_key.trim().is_empty() {
            Ok(TokenSigner::load_or_create(Path::new(&config.signing_key_file))?.verifier())
        } else {
            Self::from_public_key_hex(&config.public_key)
        }
    }

    /// A token's claims if its signature verifies, expired or revoked or not: for the audit
    /// log, which records who tried.
    pub fn claims_even_if_stale(&self, token: &str) -> Option<Claims> {
        self.signed_claims(token).ok()
    }

    fn signed_claims(&self, token: &str) -> Result<Claims, TokenError> {
        let rest = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
        let (body, signature) = rest.split_once('.').ok_or(TokenError::Malformed)?;
        let signature: [u8; 64] =
            B64.decode(signature).ok().and_then(|s| s.try_into().ok()).ok_or(TokenError::Malformed)?;
        self.key
            .verify(&token.as_bytes()[..PREFIX.len() + body.len()], &Signature::from_bytes(&signature))
            .map_err(|_| TokenError::BadSignature)?;
        B64.decode(body).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(TokenError::Malformed)
    }

    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let claims = self.signed_claims(token)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if self.revoked.read().expect("revocation lock").contains(&claims.jti)
            || claims.sub.is_some_and(|p| self.revoked_people.read().expect("revocation lock").contains(&p))
        {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }
}

/// The cookie a person's sign-in token travels in at the one origin (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "skyledger_session";
/// The header (or, on the workbench's forms, the field `csrf`) a write with the session cookie
/// must carry: a value only a page of the origin can know, since it derives from the HttpOnly
/// cookie a cross-site page can neither read nor (SameSite=Strict) send.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF token that goes with a session token.
pub fn csrf_token(session_token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(format!("skyledger-csrf\0{session_token}").as_bytes())[..16])
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The token a request carries: its bearer token, else the session cookie. A write with the
/// cookie needs the matching CSRF header; the answer says which way the token came.
pub fn request_token(parts: &Parts) -> Result<Option<&str>, &'static str> {
    token_in(&parts.headers, &parts.method)
}

/// [`request_token`] from a request's headers and method.
pub fn token_in<'h>(
    headers: &'h axum::http::HeaderMap,
    method: &axum::http::Method,
) -> Result<Option<&'h str>, &'static str> {
    if let Some(header) = headers.get(axum::http::header::AUTHORIZATION) {
        let token = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")).ok_or("expected `Bearer <token>`")?;
        return Ok(Some(token.trim()));
    }
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    let safe = matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS);
    if !safe {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if sent != csrf_token(token) {
            return Err("a write with the session cookie needs its x-csrf-token");
        }
    }
    Ok(Some(token))
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
        let token = request_token(parts)
            .map_err(unauthenticated)?
            .ok_or_else(|| unauthenticated("a bearer token (or a signed-in session) is required"))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        verifier.verify(token, now).map(Caller).map_err(|e| unauthenticated(&e.to_string()))
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
        let verifier = signer.verifier();
        let claims = verifier.verify(&token, 1_010).unwrap();
        verifier.revoke(claims.jti);
        assert_eq!(verifier.verify(&token, 1_010), Err(TokenError::Revoked));
        assert_eq!(verifier.claims_even_if_stale(&token).map(|c| c.jti), Some(claims.jti));
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
