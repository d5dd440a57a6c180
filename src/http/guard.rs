//! The gate in front of the REST and OpenAI front doors: who is calling (API key), whether
//! their role and knowledge-base list allow this request, and whether their rate allows it now.
//! Handlers behind it find the caller as an `Extension<Principal>`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::auth::{Keys, Principal, RateLimiter, Role};
use crate::config::Config;
use crate::error::ErrorCode;

pub struct Guard {
    pub keys: Keys,
    limiter: RateLimiter,
}

impl Guard {
    pub fn new(config: &Config) -> Self {
        Self {
            keys: Keys::from_config(config),
            limiter: RateLimiter::new(config.limits.requests_per_minute, config.limits.burst),
        }
    }

    /// The caller named by the request's bearer key; `Err` with the reason when there is none.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Principal, &'static str> {
        if self.keys.is_open() {
            return Ok(Principal::anonymous());
        }
        let key = bearer(headers).ok_or("an API key is required (Authorization: Bearer <key>)")?;
        self.keys
            .identify(key)
            .cloned()
            .ok_or("the API key is not valid")
    }
}

/// `Authorization: Bearer <key>`, if the header has that form.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

pub async fn check(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    let principal = match guard.caller(request.headers()) {
        Ok(principal) => principal,
        Err(reason) => {
            let mut response = ApiError::new(ErrorCode::Unauthorized, reason).into_response();
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    if let Err(reason) = permitted(&principal, request.method(), request.uri().path()) {
        return ApiError::new(ErrorCode::Forbidden, reason).into_response();
    }
    if let Err(wait) = guard.limiter.check(&principal.name) {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut response = ApiError::new(
            ErrorCode::RateLimited,
            format!("too many requests for this key; retry in {seconds} s"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Whether `principal` may make this request, judged from the method and path alone.
/// Reading is GET plus the read-only POSTs (search, answer, chat); everything else is admin.
/// Creating and deleting knowledge bases needs an admin key not limited to some of them.
fn permitted(principal: &Principal, method: &Method, path: &str) -> Result<(), String> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reads = *method == Method::GET
        || *method == Method::HEAD
        || matches!(segments.as_slice(), ["api", "kbs", _, "search" | "answer"])
        || path == "/v1/chat/completions";
    let needed = if reads { Role::Read } else { Role::Admin };
    if !principal.has_role(needed) {
        return Err(format!(
            "this key may only read; {method} {path} needs an admin key"
        ));
    }
    let whole_kb = matches!(segments.as_slice(), ["api", "kbs"] | ["api", "kbs", _]);
    if whole_kb && !reads && !principal.may_manage_all() {
        return Err(
            "creating or deleting knowledge bases needs an admin key for all of them".to_owned(),
        );
    }
    if let ["api", "kbs", kb, ..] = segments.as_slice()
        && !principal.may_use(kb)
    {
        return Err(format!("this key may not use knowledge base {kb}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(role: Role, kbs: Option<&[&str]>) -> Principal {
        Principal {
            name: "k".into(),
            role,
            kbs: kbs.map(|k| k.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    #[test]
    fn roles_and_knowledge_base_lists_decide_each_route() {
        let read = key(Role::Read, Some(&["faq"]));
        let admin_faq = key(Role::Admin, Some(&["faq"]));
        let admin = key(Role::Admin, None);
        let cases: &[(&Principal, Method, &str, bool)] = &[
            (&read, Method::GET, "/api/kbs", true),
            (&read, Method::POST, "/api/kbs/faq/search", true),
            (&read, Method::POST, "/api/kbs/faq/answer", true),
            (&read, Method::POST, "/api/kbs/hr/search", false),
            (&read, Method::POST, "/api/kbs/faq/documents", false),
            (&read, Method::DELETE, "/api/kbs/faq/documents/x", false),
            (&read, Method::PUT, "/api/kbs/faq/wechat", false),
            (&read, Method::POST, "/v1/chat/completions", true),
            (&admin_faq, Method::POST, "/api/kbs/faq/documents", true),
            (&admin_faq, Method::POST, "/api/kbs/hr/documents", false),
            (&admin_faq, Method::POST, "/api/kbs", false),
            (&admin_faq, Method::DELETE, "/api/kbs/faq", false),
            (&admin, Method::POST, "/api/kbs", true),
            (&admin, Method::DELETE, "/api/kbs/hr", true),
        ];
        for (principal, method, path, allowed) in cases {
            assert_eq!(
                permitted(principal, method, path).is_ok(),
                *allowed,
                "{:?} {method} {path}",
                principal.role
            );
        }
    }
}
