//! The people of the workbench: the campaign office invites a person by name, role and team or
//! jurisdiction; the person gets a one-time sign-in link by e-mail; using it gives a token that
//! names them, which every service checks as it checks any token. Revoking a person, or signing
//! out, travels on the revocation stream and takes effect in every service within moments.
//!
//! Notification keeps people because it is the service that reaches them; it signs their tokens
//! with the deployment's key, the same key `skyledger token create` uses.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::auth::{Caller, Claims, Role, TokenSigner, TokenVerifier};
use shared::clock::Clock;
use shared::error::ApiError;
use shared::http::JsonBody;
use shared::revocation::TokenRevoked;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::NotificationConfig;
use crate::domain::{self, InviteRequest, SignInLinks};
use crate::store::{self, Person};

#[derive(Clone)]
pub struct PeopleState {
    pub pool: PgPool,
    pub clock: Clock,
    pub links: SignInLinks,
    /// The deployment's signing key, when this service holds it (else sign-in answers 503).
    pub signer: Option<Arc<TokenSigner>>,
    pub verifier: Arc<TokenVerifier>,
    pub jetstream: async_nats::jetstream::Context,
    pub namespace: String,
    /// JetStream replicas of the revocation stream, should it not exist yet.
    pub replicas: usize,
    pub invitation_ttl_secs: i64,
    pub session_ttl_secs: i64,
    pub links_in_answer: bool,
}

pub fn router(state: PeopleState) -> Router {
    Router::new()
        .route("/v1/people", get(list_people).post(invite))
        .route("/v1/people/{id}", get(get_person))
        .route("/v1/people/{id}/invitation", post(invite_again))
        .route("/v1/people/{id}/revoke", post(revoke))
        .route("/v1/sign-in", post(sign_in))
        .route("/v1/sign-out", post(sign_out))
        .route("/v1/me", get(me))
        .with_state(state)
}

fn person_id(text: &str) -> Result<Uuid, ApiError> {
    text.parse().map_err(|_| ApiError::invalid("id", "a person's id (UUID)"))
}

/// Who did it, for the record: the person's name where the token names one.
fn actor(claims: &Claims) -> String {
    match (&claims.name, claims.sub) {
        (Some(name), Some(id)) => format!("{name} ({id})"),
        _ => format!("{} token {}", claims.role.as_str(), claims.jti),
    }
}

async fn invite(
    State(s): State<PeopleState>,
    caller: Caller,
    JsonBody(request): JsonBody<InviteRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let admin = caller.require(Role::Admin)?;
    let role = domain::validate_invitation(&request).map_err(|v| v.finish().expect_err("refused"))?;
    let now = s.clock.now();
    let person = Person {
        id: Uuid::now_v7(),
        name: request.name.trim().to_string(),
        role: role.as_str().to_string(),
        team: request.team.filter(|_| matches!(role, Role::Inspector | Role::Verifier)),
        jurisdiction: request.jurisdiction.filter(|_| role == Role::LocalGov),
        email: request.email,
        phone: request.phone,
        language: request.language,
        invited_by: Some(actor(admin)),
        invited_at: now,
        signed_in_at: None,
        revoked_at: None,
        revoked_reason: None,
    };
    let mut tx = s.pool.begin().await?;
    store::insert_person(&mut tx, &person).await?;
    let invitation = new_invitation(&s, &mut tx, person.id, now).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({ "person": person, "invitation": invitation }))))
}

async fn new_invitation(
    s: &PeopleState,
    conn: &mut sqlx::PgConnection,
    person: Uuid,
    now: OffsetDateTime,
) -> Result<Value, ApiError> {
    let id = Uuid::now_v7();
    let expires_at = now + time::Duration::seconds(s.invitation_ttl_secs);
    store::insert_invitation(conn, id, person, now, expires_at).await?;
    let mut invitation = json!({ "id": id, "expires_at": shared::csv::timestamp(expires_at) });
    if s.links_in_answer {
        invitation["link"] = Value::from(s.links.link(id));
    }
    Ok(invitation)
}

/// A fresh link for someone whose link expired or went astray.
async fn invite_again(
    State(s): State<PeopleState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Role::Admin)?;
    let id = person_id(&id)?;
    let mut tx = s.pool.begin().await?;
    let person = store::person(&mut tx, id).await?.ok_or_else(|| ApiError::not_found(format!("person {id}")))?;
    if person.revoked_at.is_some() {
        return Err(ApiError::conflict("id", "this person was revoked; invite them anew"));
    }
    let invitation = new_invitation(&s, &mut tx, id, s.clock.now()).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({ "person": person, "invitation": invitation }))))
}

async fn list_people(State(s): State<PeopleState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let people = store::people(&mut *s.pool.acquire().await?).await?;
    Ok(Json(json!({ "count": people.len(), "items": people })))
}

async fn get_person(
    State(s): State<PeopleState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let id = person_id(&id)?;
    let person = store::person(&mut *s.pool.acquire().await?, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("person {id}")))?;
    Ok(Json(json!({ "person": person })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    reason: String,
}

/// Revokes a person: every token naming them is refused from now on, everywhere.
async fn revoke(
    State(s): State<PeopleState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<RevokeRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let id = person_id(&id)?;
    let mut v = shared::error::Validator::new();
    v.reason(&request.reason);
    v.finish()?;
    let mut tx = s.pool.begin().await?;
    store::person(&mut tx, id).await?.ok_or_else(|| ApiError::not_found(format!("person {id}")))?;
    store::revoke_person(&mut tx, id, s.clock.now(), &request.reason).await?;
    // Published before the commit answers: if publishing fails nothing is recorded, and a
    // repeated revocation is one message (its id is the person's).
    let revoked = TokenRevoked { token_id: None, person_id: Some(id), reason: request.reason };
    shared::revocation::revoke(&s.jetstream, &s.namespace, s.replicas, &revoked).await?;
    s.verifier.revoke_person(id);
    tx.commit().await?;
    let person = store::person(&mut *s.pool.acquire().await?, id).await?;
    Ok(Json(json!({ "person": person, "revoked": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInRequest {
    code: String,
}

/// Uses a one-time sign-in link: answers the person's token (the workbench puts it in an
/// HttpOnly cookie) and the CSRF token its pages send with writes.
async fn sign_in(
    State(s): State<PeopleState>,
    JsonBody(request): JsonBody<SignInRequest>,
) -> Result<Json<Value>, ApiError> {
    let signer = s.signer.clone().ok_or_else(|| ApiError::Unavailable {
        detail: "this notification service does not hold the deployment's signing key".into(),
        retry_after_secs: 60,
    })?;
    let invitation = s
        .links
        .check(&request.code)
        .ok_or_else(|| ApiError::forbidden("code", "not a sign-in link of this deployment"))?;
    let now = s.clock.now();
    let mut tx = s.pool.begin().await?;
    let person =
        store::use_invitation(&mut tx, invitation, now).await?.map_err(|why| ApiError::forbidden("code", why))?;
    let role: Role = person.role.parse().map_err(|e: String| ApiError::Internal(anyhow::anyhow!(e)))?;
    // Sessions run on the wall clock: a simulated clock moves deadlines, not sign-ins.
    let issued = OffsetDateTime::now_utc().unix_timestamp();
    let claims = Claims {
        jti: Uuid::now_v7(),
        role,
        team: person.team.clone(),
        jurisdiction: person.jurisdiction.clone(),
        sub: Some(person.id),
        name: Some(person.name.clone()),
        iat: issued,
        exp: issued + s.session_ttl_secs,
    };
    let token = signer.issue_claims(&claims).map_err(ApiError::Internal)?;
    tx.commit().await?;
    Ok(Json(json!({
        "token": token,
        "csrf": shared::auth::csrf_token(&token),
        "expires_in": s.session_ttl_secs,
        "person": { "id": person.id, "name": person.name, "role": person.role, "team": person.team,
                    "jurisdiction": person.jurisdiction, "language": person.language },
    })))
}

/// Ends the caller's session: its token is refused from now on, everywhere.
async fn sign_out(State(s): State<PeopleState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let revoked = TokenRevoked { token_id: Some(caller.0.jti), person_id: None, reason: "signed out".into() };
    shared::revocation::revoke(&s.jetstream, &s.namespace, s.replicas, &revoked).await?;
    s.verifier.revoke(caller.0.jti);
    Ok(Json(json!({ "signed_out": true })))
}

/// Who the caller is, as their token says.
async fn me(caller: Caller) -> Json<Value> {
    let c = caller.0;
    Json(json!({
        "person_id": c.sub, "name": c.name, "role": c.role, "team": c.team, "jurisdiction": c.jurisdiction,
        "token_id": c.jti, "expires_at": c.exp,
    }))
}

/// The invitation e-mail (`templates/invitation.txt`).
#[derive(Template)]
#[template(path = "invitation.txt")]
struct InvitationText<'a> {
    language: &'a str,
    name: &'a str,
    role: &'a str,
    expires: String,
    link: String,
}

fn role_name(role: &str, language: &str) -> &'static str {
    let zh = language != "en";
    match role {
        "inspector" if zh => "检查组成员",
        "inspector" => "inspector",
        "local_gov" if zh => "地方政府",
        "local_gov" => "local government",
        "verifier" if zh => "核查人员",
        "verifier" => "verifier",
        _ if zh => "督查办",
        _ => "campaign office",
    }
}

/// An alert to the campaign office (`templates/office_alert.txt`).
#[derive(Template)]
#[template(path = "office_alert.txt")]
struct OfficeAlertText<'a> {
    language: &'a str,
    what: &'a str,
    jurisdiction: String,
    problem_id: Uuid,
    detail: &'a str,
    link: String,
}

/// How long to wait before the next try of a failed e-mail: 2, 4, 8 … seconds, at most 10 min.
fn backoff(attempts: i32) -> f64 {
    2f64.powi(attempts.clamp(1, 9)).min(600.0)
}

/// Mail to people (not to jurisdictions): sign-in invitations, and what the campaign office must
/// decide. Sent by a job, retried until the SMTP server takes it.
pub struct PeopleMail {
    pub pool: PgPool,
    pub links: SignInLinks,
    pub workbench_url: String,
    pub mailer: AsyncSmtpTransport<Tokio1Executor>,
    pub from: Mailbox,
    pub lease_secs: f64,
}

impl PeopleMail {
    pub fn new(pool: PgPool, links: SignInLinks, config: &NotificationConfig) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            links,
            workbench_url: config.workbench_url.trim_end_matches('/').to_string(),
            mailer: crate::delivery::mailer(&config.smtp)?,
            from: config.smtp.from.parse()?,
            lease_secs: config.lease_secs() as f64,
        })
    }

    pub async fn send_due(&self) -> anyhow::Result<()> {
        self.send_invitations().await?;
        self.send_office_alerts().await
    }

    /// Each alert goes to every person of the office with an e-mail, in one message.
    async fn send_office_alerts(&self) -> anyhow::Result<()> {
        let due = store::claim_office_alerts(&mut *self.pool.acquire().await?, 20, self.lease_secs).await?;
        if due.is_empty() {
            return Ok(());
        }
        let office = store::office_mailboxes(&mut *self.pool.acquire().await?).await?;
        for alert in due {
            let outcome = self.send_alert(&alert, &office).await;
            let mut conn = self.pool.acquire().await?;
            match outcome {
                Ok(()) => store::office_alert_done(&mut conn, alert.source_event_id, None, 0.0).await?,
                Err(e) => {
                    tracing::warn!(error = %e, alert = %alert.source_event_id, "the office alert failed; trying again");
                    store::office_alert_done(
                        &mut conn,
                        alert.source_event_id,
                        Some(&e.to_string()),
                        backoff(alert.attempts),
                    )
                    .await?
                }
            }
        }
        Ok(())
    }

    async fn send_alert(
        &self,
        alert: &store::DueOfficeAlert,
        office: &[(String, String, String)],
    ) -> anyhow::Result<()> {
        // Nobody of the office has a mailbox yet: the alert stays on the office's screen only.
        let Some((_, _, language)) = office.first() else { return Ok(()) };
        let lang = shared::i18n::Lang::from_query(Some(language));
        let what = match alert.kind.as_str() {
            "dispute" => lang.t("地方政府对交办提出申诉", "A government disputes a handover"),
            _ => lang.t("地方政府申请延期", "A government asks for an extension"),
        };
        let text = OfficeAlertText {
            language,
            what,
            jurisdiction: shared::i18n::jurisdiction_name(&alert.jurisdiction, lang),
            problem_id: alert.problem_id,
            detail: &alert.detail,
            link: format!("{}/workbench", self.workbench_url),
        }
        .render()?;
        let html = crate::delivery::NoticeEmail { language, subject: what, text: &text }.render()?;
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(what)
            .message_id(Some(format!("<office.{}@skyledger>", alert.source_event_id)));
        for (name, email, _) in office {
            message = message.to(Mailbox::new(Some(name.clone()), email.parse()?));
        }
        self.mailer.send(message.multipart(MultiPart::alternative_plain_html(text, html))?).await?;
        Ok(())
    }

    async fn send_invitations(&self) -> anyhow::Result<()> {
        let due = store::claim_invitations(&mut *self.pool.acquire().await?, 20, self.lease_secs).await?;
        for invitation in due {
            let outcome = self.send(&invitation).await;
            let mut conn = self.pool.acquire().await?;
            match outcome {
                Ok(()) => store::invitation_sent(&mut conn, invitation.id, OffsetDateTime::now_utc()).await?,
                Err(e) => {
                    tracing::warn!(error = %e, invitation = %invitation.id, "the sign-in e-mail failed; trying again");
                    store::invitation_failed(&mut conn, invitation.id, backoff(invitation.attempts), &e.to_string())
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn send(&self, invitation: &store::DueInvitation) -> anyhow::Result<()> {
        let language = invitation.language.as_str();
        let text = InvitationText {
            language,
            name: &invitation.name,
            role: role_name(&invitation.role, language),
            expires: shared::clock::beijing_minute(invitation.expires_at),
            link: self.links.link(invitation.id),
        }
        .render()?;
        let subject =
            if language == "en" { "Sign in to the Skyledger workbench" } else { "Skyledger 工作台登录邀请" };
        let html = crate::delivery::NoticeEmail { language, subject, text: &text }.render()?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(Some(invitation.name.clone()), invitation.email.parse()?))
            .subject(subject)
            .message_id(Some(format!("<invitation.{}@skyledger>", invitation.id)))
            .multipart(MultiPart::alternative_plain_html(text, html))?;
        self.mailer.send(message).await?;
        Ok(())
    }
}

/// Whether `signer` signs what `verifier` accepts: a service given only the public key must not
/// mint tokens with a key of its own making.
pub fn signer_matches(signer: &TokenSigner, verifier: &TokenVerifier) -> bool {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    signer.issue(Role::Admin, None, None, now, 60).is_ok_and(|probe| verifier.verify(&probe, now).is_ok())
}

/// How often the sender looks for invitations to send.
pub const SEND_EVERY: Duration = Duration::from_millis(500);
