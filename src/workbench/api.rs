//! The services' APIs as the workbench calls them: with the signed-in person's token, so each
//! service decides what that person may see and do.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;

/// Where each service listens.
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub intake: String,
    pub assignment: String,
    pub verification: String,
    pub notification: String,
    pub publication: String,
}

impl Upstreams {
    pub fn all(&self) -> [(&'static str, &str); 5] {
        [
            ("intake", &self.intake),
            ("assignment", &self.assignment),
            ("verification", &self.verification),
            ("notification", &self.notification),
            ("publication", &self.publication),
        ]
    }

    fn base(&self, service: Service) -> &str {
        match service {
            Service::Intake => &self.intake,
            Service::Assignment => &self.assignment,
            Service::Verification => &self.verification,
            Service::Notification => &self.notification,
            Service::Publication => &self.publication,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Service {
    Intake,
    Assignment,
    Verification,
    Notification,
    Publication,
}

/// A service's answer that was not a success: its status and its problem+json `detail`s.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub detail: String,
}

impl Refused {
    fn from_body(status: StatusCode, body: &[u8]) -> Self {
        let problem: Value = serde_json::from_slice(body).unwrap_or_default();
        let fields: Vec<String> = problem["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e["field"].as_str().unwrap_or(""), e["detail"].as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        let detail = if fields.is_empty() {
            problem["detail"].as_str().unwrap_or(status.canonical_reason().unwrap_or("error")).to_string()
        } else {
            fields.join("; ")
        };
        Self { status, detail }
    }

    fn unreachable(e: reqwest::Error) -> Self {
        Self { status: StatusCode::BAD_GATEWAY, detail: format!("a service did not answer: {e}") }
    }
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    upstreams: Upstreams,
}

impl Api {
    pub fn new(upstreams: Upstreams) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { http, upstreams })
    }

    async fn answer(response: Result<reqwest::Response, reqwest::Error>) -> Result<Value, Refused> {
        let response = response.map_err(Refused::unreachable)?;
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = response.bytes().await.map_err(Refused::unreachable)?;
        if status.is_success() {
            Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
        } else {
            Err(Refused::from_body(status, &body))
        }
    }

    pub async fn get(&self, service: Service, path: &str, token: &str) -> Result<Value, Refused> {
        let url = format!("{}{path}", self.upstreams.base(service));
        Self::answer(self.http.get(url).bearer_auth(token).send().await).await
    }

    /// A POST with a JSON body; `token` is `None` only for signing in.
    pub async fn post<B: Serialize>(
        &self,
        service: Service,
        path: &str,
        token: Option<&str>,
        body: &B,
    ) -> Result<Value, Refused> {
        let url = format!("{}{path}", self.upstreams.base(service));
        let mut request = self.http.post(url).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Self::answer(request.send().await).await
    }

    /// A PUT with a JSON body (the campaign set-up).
    pub async fn put<B: Serialize>(
        &self,
        service: Service,
        path: &str,
        token: &str,
        body: &B,
    ) -> Result<Value, Refused> {
        let url = format!("{}{path}", self.upstreams.base(service));
        Self::answer(self.http.put(url).bearer_auth(token).json(body).send().await).await
    }

    /// Stores a photo in intake's evidence store; answers its `{url, sha256}`.
    pub async fn upload(&self, token: &str, content_type: &str, bytes: Vec<u8>) -> Result<Value, Refused> {
        let url = format!("{}/v1/evidence", self.upstreams.intake);
        let request = self.http.post(url).bearer_auth(token).header("content-type", content_type).body(bytes);
        Self::answer(request.send().await).await
    }
}
