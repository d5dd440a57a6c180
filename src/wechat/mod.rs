//! The WeChat official-account front door. WeChat waits 5 seconds for a reply, then hangs up
//! and sends the same message again (three tries in all). So each message is answered once,
//! keyed by its MsgId; every try waits a while for that one answer; a try that cannot have it
//! keeps WeChat waiting past its limit, so that WeChat tries again, except the last, which
//! says the answer is on its way. The answer then goes out as a customer-service message when
//! the account may send one, or with the reply to the user's next message.

pub mod account;
pub mod api;
pub mod crypto;
pub mod message;
pub mod ocr;
pub mod reply;

mod conversation;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use self::account::{Account, AccountSettings};
use self::api::WeChatApi;
use self::conversation::{Answering, Conversations};
use self::message::{Incoming, Kind};
use crate::answer::Language;
use crate::config::WeChatConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::kb::{AnswerRequest, KnowledgeBase};
use crate::search::filter::MetadataCondition;

/// WeChat sends a message at most this many times.
const WECHAT_TRIES: u32 = 3;
/// How long a try that cannot have the answer stays open: past WeChat's 5 seconds, so WeChat
/// gives up on it and tries again (a reply of "success" or "" would stop the retries).
const HOLD_PAST_WECHAT: Duration = Duration::from_millis(1_500);

/// What a try of a pushed message gets back.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// A passive text reply to the user.
    Text(String),
    /// "success": handled, nothing to show now (the answer follows another way).
    Success,
    /// Nothing, after WeChat has hung up: it will try again.
    Silence,
}

/// The signature parameters of every call from WeChat (the query string).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Signed {
    #[serde(default)]
    pub signature: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub nonce: String,
    /// Present on the server-URL handshake only.
    pub echostr: Option<String>,
    /// "aes" in safe mode.
    pub encrypt_type: Option<String>,
    pub msg_signature: Option<String>,
}

pub struct WeChat {
    service: Arc<KnowledgeBase>,
    config: WeChatConfig,
    api: WeChatApi,
    http: reqwest::Client,
    conversations: Conversations,
}

impl WeChat {
    pub fn new(service: Arc<KnowledgeBase>) -> anyhow::Result<Arc<Self>> {
        let config = service.config().wechat.clone();
        Ok(Arc::new(Self {
            api: WeChatApi::new(&config.api_base)?,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(3))
                .build()?,
            conversations: Conversations::new(&config),
            config,
            service,
        }))
    }

    // ---- the account settings (REST, behind the API key) ----

    pub fn settings(&self, kb: &str) -> Result<serde_json::Value> {
        let dir = self.service.kb_dir(kb)?;
        Ok(match account::load(&dir)? {
            Some(account) => account.public_view(kb),
            None => json!({ "configured": false, "server_path": format!("/wechat/{kb}") }),
        })
    }

    pub fn configure(&self, kb: &str, settings: AccountSettings) -> Result<serde_json::Value> {
        let dir = self.service.kb_dir(kb)?;
        let account = Account::from_settings(settings)?;
        account::save(&dir, &account)?;
        Ok(account.public_view(kb))
    }

    pub fn disconnect(&self, kb: &str) -> Result<()> {
        account::remove(&self.service.kb_dir(kb)?)
    }

    // ---- calls from WeChat (signed, no API key) ----

    /// The server-URL handshake: echo `echostr` when the signature is the account's.
    pub fn handshake(&self, kb: &str, signed: &Signed) -> Result<String> {
        let account = self.account(kb)?;
        check_signature(&account, signed)?;
        signed
            .echostr
            .clone()
            .ok_or_else(|| Error::invalid_request("echostr is missing"))
    }

    /// A pushed message: check its signature, open it (safe mode), answer it, and return the
    /// body WeChat expects (reply XML, sealed again in safe mode; "success"; or "").
    pub async fn receive(
        self: &Arc<Self>,
        kb: &str,
        signed: &Signed,
        body: &str,
    ) -> Result<String> {
        let account = self.account(kb)?;
        check_signature(&account, signed)?;
        let safe_mode = signed.encrypt_type.as_deref() == Some("aes");
        let xml = if safe_mode {
            open_sealed(&account, signed, body)?
        } else {
            body.to_owned()
        };
        let incoming = message::parse(&xml).map_err(|e| Error::invalid_request(e.to_string()))?;
        let text = match self.respond(kb, &account, incoming.clone()).await {
            Outcome::Text(text) => text,
            Outcome::Success => return Ok("success".to_owned()),
            Outcome::Silence => return Ok(String::new()),
        };
        let reply = message::text_reply(&incoming.user, &incoming.account, &text, now_secs());
        if !safe_mode {
            return Ok(reply);
        }
        let envelope = account
            .envelope()
            .ok_or_else(|| Error::invalid_request("safe mode needs the EncodingAESKey"))?;
        let sealed = envelope.seal(&reply, *uuid::Uuid::new_v4().as_bytes());
        let timestamp = now_secs().to_string();
        let nonce = format!("{:010}", uuid::Uuid::new_v4().as_u128() % 10_000_000_000);
        let signature = crypto::signature(&[account.token.expose(), &timestamp, &nonce, &sealed]);
        Ok(message::encrypted_reply(
            &sealed, &signature, &timestamp, &nonce,
        ))
    }

    fn account(&self, kb: &str) -> Result<Account> {
        account::load(&self.service.kb_dir(kb)?)?.ok_or_else(|| {
            Error::new(
                ErrorCode::KbNotFound,
                format!(
                    "knowledge base {kb} has no WeChat account: PUT /api/kbs/{kb}/wechat first"
                ),
            )
        })
    }

    /// What one try of a message gets.
    pub async fn respond(
        self: &Arc<Self>,
        kb: &str,
        account: &Account,
        incoming: Incoming,
    ) -> Outcome {
        let language = match &incoming.kind {
            Kind::Text(t) => Language::of(t),
            _ => Language::Chinese,
        };
        match &incoming.kind {
            Kind::Event(event) if event == "subscribe" => {
                return Outcome::Text(
                    account
                        .welcome
                        .clone()
                        .unwrap_or_else(|| WELCOME.to_owned()),
                );
            }
            Kind::Event(_) => return Outcome::Success,
            Kind::Voice { recognition: None } => return Outcome::Text(VOICE_OFF.to_owned()),
            Kind::Other(_) => return Outcome::Text(UNSUPPORTED.to_owned()),
            Kind::Text(_) | Kind::Voice { .. } | Kind::Image { .. } => {}
        }
        let user = incoming.user.clone();
        let key = incoming.key();
        let answering = self.conversations.join_or_start(kb, &key, || {
            let this = Arc::clone(self);
            let kb = kb.to_owned();
            async move { this.answer(&kb, incoming).await }
        });
        let attempt = answering.new_try();
        let wait = Duration::from_millis(self.config.reply_wait_ms);
        let ready = answering.wait(wait).await;
        let earlier = self.conversations.take_ready(kb, &user, &answering);
        if let Some(text) = ready {
            return Outcome::Text(join_replies(&earlier, &text, self.config.max_reply_bytes));
        }
        if account.can_send_later() {
            if answering.hand_off() {
                self.send_later(kb, account.clone(), user, answering);
            }
            return Outcome::Success;
        }
        if !earlier.is_empty() {
            // Deliver what is ready now; this message's answer comes with the next one.
            self.conversations.defer(kb, &user, &answering);
            let note = on_its_way(language);
            return Outcome::Text(join_replies(&earlier, note, self.config.max_reply_bytes));
        }
        if attempt < WECHAT_TRIES {
            return match answering.wait(HOLD_PAST_WECHAT).await {
                Some(text) => Outcome::Text(text.to_string()),
                None => Outcome::Silence,
            };
        }
        self.conversations.defer(kb, &user, &answering);
        Outcome::Text(on_its_way(language).to_owned())
    }

    /// Sends the answer as a customer-service message once it is ready; if that fails, it
    /// waits for the user's next message instead.
    fn send_later(
        self: &Arc<Self>,
        kb: &str,
        account: Account,
        user: String,
        answering: Arc<Answering>,
    ) {
        let this = Arc::clone(self);
        let kb = kb.to_owned();
        tokio::spawn(async move {
            let Some(text) = answering.wait(Duration::from_secs(600)).await else {
                return;
            };
            if let Err(err) = this.api.send_text(&account, &user, &text).await {
                tracing::warn!(kb, error = %err, "customer-service message failed; it goes with the next reply");
                this.conversations.defer(&kb, &user, &answering);
            }
        });
    }

    /// The WeChat text for a message: its question (typed, spoken or photographed), read
    /// together with a pending clarifying question, answered by the knowledge base.
    async fn answer(&self, kb: &str, incoming: Incoming) -> String {
        let question = match incoming.kind {
            Kind::Text(text) => text,
            Kind::Voice { recognition } => recognition.unwrap_or_default(),
            Kind::Image { pic_url } => {
                match ocr::read_picture(&self.http, &pic_url, &self.config).await {
                    Ok(text) if !text.is_empty() => text,
                    Ok(_) => return NO_TEXT_IN_PICTURE.to_owned(),
                    Err(err) => {
                        tracing::warn!(kb, error = %err, "OCR of a picture failed");
                        return PICTURE_FAILED.to_owned();
                    }
                }
            }
            Kind::Event(_) | Kind::Other(_) => return UNSUPPORTED.to_owned(),
        };
        let (question, chosen) = self.conversations.read_choice(kb, &incoming.user, question);
        if let Some(refusal) = unaskable(&question, self.service.config().limits.max_query_chars) {
            return refusal;
        }
        let language = Language::of(&question);
        let request = AnswerRequest {
            question: question.clone(),
            deadline_ms: Some(self.config.deadline_ms),
            filter: chosen.as_ref().map(|o| only_document(&o.document_id)),
            ..AnswerRequest::default()
        };
        match self.service.answer(kb, request).await {
            Ok(reply) => {
                if reply.verdict == "clarify" {
                    self.conversations
                        .ask(kb, &incoming.user, question, reply.options.clone());
                }
                let text = reply::answer_text(&reply, language, self.config.max_reply_bytes);
                match chosen {
                    Some(option) => format!("「{}」{text}", option.label),
                    None => text,
                }
            }
            Err(err) => {
                tracing::warn!(kb, code = %err.code(), reason = err.message(), "a WeChat question could not be answered");
                SORRY.to_owned()
            }
        }
    }
}

/// The reply to a message that cannot be asked as it is (blank, or longer than questions may
/// be), in words for the person who sent it: the service's own refusals are written for API
/// clients, in English.
fn unaskable(question: &str, max_chars: usize) -> Option<String> {
    let chars = question.trim().chars().count();
    if chars == 0 {
        Some(EMPTY_QUESTION.to_owned())
    } else if chars > max_chars {
        Some(format!(
            "问题太长了（{chars} 字），请精简到 {max_chars} 字以内再发送。"
        ))
    } else {
        None
    }
}

fn check_signature(account: &Account, signed: &Signed) -> Result<()> {
    let parts = [
        account.token.expose(),
        signed.timestamp.as_str(),
        signed.nonce.as_str(),
    ];
    if crypto::verify(&signed.signature, &parts) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::Forbidden,
            "the WeChat signature does not match",
        ))
    }
}

/// Safe mode: check `msg_signature` over the encrypted part, then decrypt it.
fn open_sealed(account: &Account, signed: &Signed, body: &str) -> Result<String> {
    let envelope = account.envelope().ok_or_else(|| {
        Error::invalid_request("safe mode needs the EncodingAESKey: set encoding_aes_key")
    })?;
    let fields = message::fields(body).map_err(|e| Error::invalid_request(e.to_string()))?;
    let encrypted = fields
        .get("Encrypt")
        .ok_or_else(|| Error::invalid_request("safe mode message without Encrypt"))?;
    let parts = [
        account.token.expose(),
        signed.timestamp.as_str(),
        signed.nonce.as_str(),
        encrypted.as_str(),
    ];
    if !crypto::verify(signed.msg_signature.as_deref().unwrap_or_default(), &parts) {
        return Err(Error::new(
            ErrorCode::Forbidden,
            "the WeChat msg_signature does not match",
        ));
    }
    envelope
        .open(encrypted)
        .map_err(|e| Error::invalid_request(e.to_string()))
}

/// The filter that keeps one document: the option the user chose.
fn only_document(document_id: &str) -> MetadataCondition {
    MetadataCondition {
        logical_operator: Some("and".to_owned()),
        conditions: Some(vec![crate::search::filter::Condition {
            name: crate::search::filter::Name::One("document_id".to_owned()),
            comparison_operator: "is".to_owned(),
            value: Some(json!(document_id)),
        }]),
    }
}

/// Answers to earlier messages first, then this one, within WeChat's length limit.
fn join_replies(earlier: &[Arc<str>], text: &str, max_bytes: usize) -> String {
    let mut parts: Vec<&str> = earlier.iter().map(AsRef::as_ref).collect();
    parts.push(text);
    reply::fit(&parts.join("\n\n———\n\n"), max_bytes)
}

fn on_its_way(language: Language) -> &'static str {
    match language {
        Language::Chinese => "答案还在整理中，请稍后发送任意消息查看。",
        Language::English => "The answer is on its way: send any message in a moment to see it.",
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

const WELCOME: &str = "欢迎关注！直接发送问题（文字、语音或图片）即可获得解答。";
const VOICE_OFF: &str = "暂时无法识别语音：请公众号管理员在微信公众平台「设置与开发 → 接口权限」中开启「接收语音识别结果」。您也可以直接发送文字。";
const UNSUPPORTED: &str = "目前只能回答文字、语音和图片消息。";
const NO_TEXT_IN_PICTURE: &str = "图片中没有识别到文字，请换一张清晰的图片或直接发送文字。";
const PICTURE_FAILED: &str = "图片暂时无法识别，请直接发送文字问题。";
const SORRY: &str = "抱歉，暂时无法回答，请稍后再试。";
const EMPTY_QUESTION: &str = "请直接发送您的问题（文字、语音或图片）。";
