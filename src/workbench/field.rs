//! The field app (issue 14): the installable web app the inspection teams carry, served at
//! `/field/` of the one origin. Its shell, script, service worker and manifest are part of the
//! build (no outside code); everything it records waits in the device's IndexedDB and goes to
//! intake's batch API and evidence store when the network returns.
//!
//! The app signs in as the workbench does (the invitation link sets the HttpOnly session
//! cookie); `/field/session` tells the app who it is and the CSRF token its writes carry.

use askama::Template;
use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use shared::auth::{SESSION_COOKIE, cookie, csrf_token};
use shared::error::ApiError;
use shared::i18n::Lang;

use super::api::Service;
use super::pages::{LangQuery, State, language};

/// Bumped with every change of the shell's files, so a device's service worker fetches them anew.
const VERSION: &str = "field-2";

const APP_JS: &str = include_str!("field/app.js");
const SERVICE_WORKER_JS: &str = include_str!("field/sw.js");
const ICON_SVG: &str = include_str!("field/icon.svg");

pub struct Choice {
    pub code: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "field.html")]
struct FieldPage {
    lang: Lang,
    version: &'static str,
    categories: Vec<Choice>,
    severities: Vec<Choice>,
}

/// `/field` lives under `/field/`, the service worker's scope.
pub async fn to_app() -> Redirect {
    Redirect::permanent("/field/")
}

/// The app's shell: the same for every inspector (the service worker keeps it), so nothing
/// personal is in it; the team's rounds and cities come from the APIs into IndexedDB.
pub async fn app(headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let lang = language(&headers, q.lang.as_deref());
    let page = FieldPage {
        lang,
        version: VERSION,
        categories: shared::reference::categories()
            .iter()
            .map(|c| Choice { code: c.code.clone(), name: lang.t(&c.name_zh, &c.name_en).to_string() })
            .collect(),
        severities: [("serious", "严重", "serious"), ("general", "一般", "general"), ("minor", "轻微", "minor")]
            .into_iter()
            .map(|(code, zh, en)| Choice { code: code.into(), name: lang.t(zh, en).into() })
            .collect(),
    };
    match page.render() {
        Ok(body) => asset("text/html; charset=utf-8", body),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("the page did not render: {e}")).into_response(),
    }
}

/// A file of the shell: looked at again on every load (the service worker serves it offline).
fn asset(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body.into(),
    )
        .into_response()
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn service_worker() -> Response {
    asset("text/javascript; charset=utf-8", SERVICE_WORKER_JS.replace("__VERSION__", VERSION))
}

pub async fn icon() -> Response {
    asset("image/svg+xml", ICON_SVG)
}

pub async fn manifest(headers: HeaderMap) -> Response {
    let lang = language(&headers, None);
    let manifest = json!({
        "name": lang.t("Skyledger 外勤", "Skyledger field"),
        "short_name": lang.t("外勤", "Field"),
        "description": lang.t("记录现场检查，离线可用，联网后同步。", "Record site checks, offline; they sync when the network returns."),
        "lang": lang.code(),
        "id": "/field/",
        "start_url": "/field/",
        "scope": "/field/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#0b5cad",
        "icons": [ { "src": "/field/icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any" } ],
    });
    asset("application/manifest+json", manifest.to_string())
}

/// Who the device is signed in as, and the CSRF token its writes carry. The person is checked
/// by the service that keeps people, so a revoked phone learns it here (401).
pub async fn session(AxumState(s): AxumState<State>, headers: HeaderMap) -> Response {
    let Some(token) = cookie(&headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
        return ApiError::Unauthenticated(shared::error::FieldError::new(
            SESSION_COOKIE,
            "not signed in: open the sign-in link the campaign office sent you",
        ))
        .into_response();
    };
    match s.api.get(Service::Notification, "/v1/me", token).await {
        Ok(me) => {
            let mut answer = json!({
                "name": me["name"], "role": me["role"], "team": me["team"], "person_id": me["person_id"],
                "expires_at": me["expires_at"], "csrf": csrf_token(token),
            });
            if me["role"] != "inspector" {
                answer["warning"] = "the field app records site checks, which only inspectors do".into();
            }
            ([(header::CACHE_CONTROL, "no-store")], axum::Json(answer)).into_response()
        }
        Err(refused) => {
            let field = shared::error::FieldError::new(SESSION_COOKIE, refused.detail);
            let error = if refused.status == StatusCode::UNAUTHORIZED {
                ApiError::Unauthenticated(field)
            } else {
                ApiError::Unavailable { detail: field.detail, retry_after_secs: 5 }
            };
            error.into_response()
        }
    }
}
