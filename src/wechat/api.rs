//! WeChat's server API, for accounts allowed to send customer-service messages: the access
//! token (fetched once, cached until shortly before it expires) and the message send call.
//! Errors name the call, never the URL: it carries the secret or the access token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::account::Account;

/// WeChat's codes for an access token that is no longer valid: fetch a new one and retry once.
const STALE_TOKEN: [i64; 3] = [40001, 40014, 42001];

pub struct WeChatApi {
    base: String,
    http: reqwest::Client,
    /// AppID -> (token, when to stop using it).
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    expires_in: Option<u64>,
    errcode: Option<i64>,
    errmsg: Option<String>,
}

#[derive(Deserialize)]
struct CallReply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

impl WeChatApi {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                .timeout(Duration::from_secs(10))
                .build()?,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Sends `text` to `user` as a customer-service message.
    pub async fn send_text(&self, account: &Account, user: &str, text: &str) -> anyhow::Result<()> {
        for attempt in 0..2 {
            let token = self.access_token(account, attempt > 0).await?;
            let reply: CallReply = self
                .http
                .post(format!("{}/cgi-bin/message/custom/send", self.base))
                .query(&[("access_token", token.as_str())])
                .json(&json!({ "touser": user, "msgtype": "text", "text": { "content": text } }))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("customer-service send failed: {}", e.without_url()))?
                .json()
                .await
                .map_err(|e| {
                    anyhow::anyhow!("customer-service send: bad reply: {}", e.without_url())
                })?;
            match reply.errcode {
                0 => return Ok(()),
                code if STALE_TOKEN.contains(&code) && attempt == 0 => continue,
                code => anyhow::bail!("customer-service send refused: {code} {}", reply.errmsg),
            }
        }
        anyhow::bail!("customer-service send refused: the access token stays invalid")
    }

    async fn access_token(&self, account: &Account, refresh: bool) -> anyhow::Result<String> {
        let mut tokens = self.tokens.lock().await;
        if !refresh
            && let Some((token, until)) = tokens.get(&account.app_id)
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let secret = account
            .app_secret
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no AppSecret configured"))?;
        let reply: TokenReply = self
            .http
            .get(format!("{}/cgi-bin/token", self.base))
            .query(&[
                ("grant_type", "client_credential"),
                ("appid", account.app_id.as_str()),
                ("secret", secret.expose()),
            ])
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("access token request failed: {}", e.without_url()))?
            .json()
            .await
            .map_err(|e| anyhow::anyhow!("access token: bad reply: {}", e.without_url()))?;
        let Some(token) = reply.access_token else {
            anyhow::bail!(
                "access token refused: {} {}",
                reply.errcode.unwrap_or_default(),
                reply.errmsg.unwrap_or_default()
            );
        };
        // Renew five minutes early, so a token never expires between check and use.
        let lifetime = reply.expires_in.unwrap_or(7200).saturating_sub(300).max(60);
        let until = Instant::now() + Duration::from_secs(lifetime);
        tokens.insert(account.app_id.clone(), (token.clone(), until));
        Ok(token)
    }
}
