//! The WeChat front door, spoken to as WeChat does: documented XML, signatures and safe-mode
//! encryption computed here with `sha1sum` and `openssl` (not lore's code), WeChat's retries
//! with a slow model, customer-service delivery to a stand-in WeChat API, a clarification
//! round trip, and OCR of a rendered picture of Chinese text.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::answer::DOCS;
use crate::common::TestServer;
use crate::common::llm::{Script, ScriptedLlm};

const TOKEN: &str = "loreToken42";
const APP_ID: &str = "wx0123456789abcdef";
/// Base64 of the 32 bytes below, without the trailing "=", as WeChat shows an EncodingAESKey.
const AES_KEY: &str = "bG9yZS13ZWNoYXQtdGVzdC1rZXktMDEyMzQ1Njc4OSE";
const AES_KEY_BYTES: &[u8; 32] = b"lore-wechat-test-key-0123456789!";
const USER: &str = "oUser_test_openid";
const ACCOUNT: &str = "gh_lore_account";
const REFUND_QUESTION: &str = "签收后几天内可以退货？";
const REFUND_ANSWER: &str = "签收之日起七日内可以申请无理由退货[1]。";

// ---- WeChat's side, computed independently ----

fn sha1_hex(text: &str) -> String {
    let mut child = Command::new("sha1sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha1sum");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..40].to_owned()
}

/// WeChat's signature: SHA-1 of the sorted, concatenated parts.
fn sign(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort();
    sha1_hex(&sorted.concat())
}

fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

fn aes(decrypt: bool, input: &[u8]) -> Vec<u8> {
    let key = hex(AES_KEY_BYTES);
    let iv = hex(&AES_KEY_BYTES[..16]);
    let mode = if decrypt { "-d" } else { "-e" };
    openssl(
        &[
            "enc",
            mode,
            "-aes-256-cbc",
            "-nopad",
            "-K",
            &key,
            "-iv",
            &iv,
        ],
        input,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Safe mode, as WeChat seals a message: random(16) + length + XML + AppID, padded to 32.
fn seal(xml: &str) -> String {
    let mut plain = b"0123456789abcdef".to_vec();
    plain.extend((xml.len() as u32).to_be_bytes());
    plain.extend(xml.as_bytes());
    plain.extend(APP_ID.as_bytes());
    let pad = 32 - plain.len() % 32;
    plain.extend(std::iter::repeat_n(pad as u8, pad));
    let sealed = openssl(&["base64", "-A"], &aes(false, &plain));
    String::from_utf8(sealed).unwrap()
}

fn unseal(encrypted: &str) -> String {
    let raw = openssl(&["base64", "-d", "-A"], encrypted.as_bytes());
    let plain = aes(true, &raw);
    let pad = *plain.last().unwrap() as usize;
    let body = &plain[..plain.len() - pad];
    let len = u32::from_be_bytes(body[16..20].try_into().unwrap()) as usize;
    assert_eq!(&body[20 + len..], APP_ID.as_bytes(), "sealed for our AppID");
    String::from_utf8(body[20..20 + len].to_vec()).unwrap()
}

/// The value of `<name>` in a flat WeChat XML, CDATA or not.
fn field(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    let value = &xml[start..end];
    Some(
        value
            .strip_prefix("<![CDATA[")
            .and_then(|v| v.strip_suffix("]]>"))
            .unwrap_or(value)
            .to_owned(),
    )
}

fn text_message(msg_id: u64, content: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{USER}]]></FromUserName>\
         <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
}

/// WeChat pushing one try of a message to lore, giving up after `patience` like WeChat's 5 s.
async fn push(
    server: &TestServer,
    xml: &str,
    safe_mode: bool,
    patience: Duration,
) -> Option<(u16, String)> {
    let (timestamp, nonce) = ("1700000001", "184720591");
    let signature = sign(&[TOKEN, timestamp, nonce]);
    let mut url = format!(
        "{}?signature={signature}&timestamp={timestamp}&nonce={nonce}&openid={USER}",
        server.url("/wechat/kb")
    );
    let body = if safe_mode {
        let encrypted = seal(xml);
        let msg_signature = sign(&[TOKEN, timestamp, nonce, &encrypted]);
        url.push_str(&format!("&encrypt_type=aes&msg_signature={msg_signature}"));
        format!(
            "<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        )
    } else {
        xml.to_owned()
    };
    let response = server
        .http
        .post(url)
        .body(body)
        .timeout(patience)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// The text a passive reply shows the user.
fn shown(body: &str) -> String {
    field(body, "Content").unwrap_or_else(|| panic!("not a text reply: {body:?}"))
}

// ---- a stand-in for WeChat's API and picture host ----

#[derive(Clone, Default)]
struct StandIn {
    token_requests: Arc<Mutex<Vec<Value>>>,
    sent: Arc<Mutex<Vec<Value>>>,
    picture: Arc<Mutex<Vec<u8>>>,
}

impl StandIn {
    async fn spawn() -> (String, Self) {
        let stand_in = StandIn::default();
        let app = Router::new()
            .route("/cgi-bin/token", get(token))
            .route("/cgi-bin/message/custom/send", post(send))
            .route("/pic.png", get(picture))
            .with_state(stand_in.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (base, stand_in)
    }

    fn sent(&self) -> Vec<Value> {
        self.sent.lock().unwrap().clone()
    }
}

async fn token(
    State(s): State<StandIn>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> axum::Json<Value> {
    s.token_requests.lock().unwrap().push(json!(q));
    axum::Json(json!({ "access_token": "ACCESS_TOKEN_1", "expires_in": 7200 }))
}

async fn send(
    State(s): State<StandIn>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    let ok = q.get("access_token").map(String::as_str) == Some("ACCESS_TOKEN_1");
    s.sent.lock().unwrap().push(body);
    axum::Json(if ok {
        json!({ "errcode": 0, "errmsg": "ok" })
    } else {
        json!({ "errcode": 40001, "errmsg": "invalid credential" })
    })
}

async fn picture(State(s): State<StandIn>) -> Vec<u8> {
    s.picture.lock().unwrap().clone()
}

// ---- set-up ----

struct Setup {
    server: TestServer,
    llm: ScriptedLlm,
    stand_in: StandIn,
    stand_in_base: String,
}

async fn setup(script: Script, account: Value, reply_wait_ms: u64) -> Setup {
    let llm = ScriptedLlm::spawn(script).await;
    let (stand_in_base, stand_in) = StandIn::spawn().await;
    let (base_url, api_base) = (llm.base_url.clone(), stand_in_base.clone());
    let server = TestServer::spawn_with(move |c| {
        c.llm.base_url = base_url;
        c.wechat.api_base = api_base;
        c.wechat.reply_wait_ms = reply_wait_ms;
    })
    .await;
    server.create_kb("kb").await;
    let files = DOCS
        .iter()
        .map(|(n, t)| ((*n).to_owned(), t.as_bytes().to_vec()))
        .collect();
    server.upload("kb", files).await;
    server.wait_idle("kb").await;
    let response = server
        .http
        .put(server.url("/api/kbs/kb/wechat"))
        .json(&account)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    Setup {
        server,
        llm,
        stand_in,
        stand_in_base,
    }
}

fn plain_account() -> Value {
    json!({ "token": TOKEN, "app_id": APP_ID })
}

const WAIT: u64 = 4_500;
const WECHAT_PATIENCE: Duration = Duration::from_secs(5);

// ---- tests ----

#[tokio::test]
async fn the_server_url_handshake_checks_the_signature_and_settings_hide_secrets() {
    let secret_account = json!({ "token": TOKEN, "app_id": APP_ID, "encoding_aes_key": AES_KEY,
        "app_secret": "s3cr3t-app-secret", "welcome": "你好" });
    let s = setup(Script::Answer("-"), secret_account, WAIT).await;
    let (timestamp, nonce, echo) = ("1700000000", "12345", "echo-5829");
    let signature = sign(&[TOKEN, timestamp, nonce]);
    let query =
        format!("?signature={signature}&timestamp={timestamp}&nonce={nonce}&echostr={echo}");
    let response = s
        .server
        .http
        .get(s.server.url(&format!("/wechat/kb{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), echo);

    let forged = query.replace(&signature, &sign(&["wrong", timestamp, nonce]));
    let (status, body) = s.server.get(&format!("/wechat/kb{forged}")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");

    let (status, settings) = s.server.get("/api/kbs/kb/wechat").await;
    assert_eq!(status, 200);
    assert_eq!(settings["safe_mode"], true);
    assert_eq!(settings["customer_service"], true);
    let shown = settings.to_string();
    for secret in [TOKEN, AES_KEY, "s3cr3t-app-secret"] {
        assert!(!shown.contains(secret), "{secret} leaked in {shown}");
    }
    // Settings are checked as WeChat's own form would.
    let bad = s
        .server
        .http
        .put(s.server.url("/api/kbs/kb/wechat"))
        .json(&json!({ "token": "a b", "app_id": APP_ID }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let (status, _) = s.server.get("/wechat/nope?signature=x").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn text_voice_and_subscribe_messages_get_answers_and_forgeries_get_nothing() {
    let account = json!({ "token": TOKEN, "app_id": APP_ID, "welcome": "欢迎来到测试商城" });
    let s = setup(Script::Answer(REFUND_ANSWER), account, WAIT).await;

    let (status, body) = push(
        &s.server,
        &text_message(1, REFUND_QUESTION),
        false,
        WECHAT_PATIENCE,
    )
    .await
    .expect("a reply within 5 s");
    assert_eq!(status, 200);
    assert_eq!(field(&body, "ToUserName").as_deref(), Some(USER));
    assert_eq!(field(&body, "FromUserName").as_deref(), Some(ACCOUNT));
    let text = shown(&body);
    assert!(text.contains("七日内") && !text.contains("[1]"), "{text}");
    assert!(text.ends_with("来源：refund"), "{text}");

    let voice = format!(
        "<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{USER}</FromUserName><CreateTime>1700000005</CreateTime>\
         <MsgType>voice</MsgType><MediaId>media1</MediaId><Format>amr</Format>\
         <Recognition><![CDATA[{REFUND_QUESTION}]]></Recognition><MsgId>2</MsgId></xml>"
    );
    let (_, body) = push(&s.server, &voice, false, WECHAT_PATIENCE)
        .await
        .unwrap();
    assert!(shown(&body).contains("七日内"), "{body}");
    let silent_voice = voice.replace(
        &format!("<Recognition><![CDATA[{REFUND_QUESTION}]]></Recognition><MsgId>2"),
        "<MsgId>3",
    );
    let (_, body) = push(&s.server, &silent_voice, false, WECHAT_PATIENCE)
        .await
        .unwrap();
    assert!(shown(&body).contains("接收语音识别结果"), "{body}");

    let subscribe = format!(
        "<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{USER}</FromUserName><CreateTime>1700000009</CreateTime>\
         <MsgType>event</MsgType><Event>subscribe</Event></xml>"
    );
    let (_, body) = push(&s.server, &subscribe, false, WECHAT_PATIENCE)
        .await
        .unwrap();
    assert_eq!(shown(&body), "欢迎来到测试商城");

    // What cannot be asked is explained to the user in Chinese, without a model call.
    let (_, body) = push(&s.server, &text_message(5, "   "), false, WECHAT_PATIENCE)
        .await
        .unwrap();
    assert!(shown(&body).contains("请直接发送您的问题"), "{body}");
    let long = "退款怎么办理".repeat(400);
    let (_, body) = push(&s.server, &text_message(6, &long), false, WECHAT_PATIENCE)
        .await
        .unwrap();
    let text = shown(&body);
    assert!(
        text.contains("问题太长了") && text.contains("2000"),
        "{text}"
    );
    let calls = s.llm.calls();
    assert_eq!(calls, 2);

    // A forged signature: 403, and nothing is answered.
    let response = s
        .server
        .http
        .post(
            s.server
                .url("/wechat/kb?signature=0000&timestamp=1&nonce=2"),
        )
        .body(text_message(4, REFUND_QUESTION))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.llm.calls(), calls);
}

#[tokio::test]
async fn safe_mode_messages_are_opened_and_replies_sealed() {
    let account = json!({ "token": TOKEN, "app_id": APP_ID, "encoding_aes_key": AES_KEY });
    let s = setup(Script::Answer(REFUND_ANSWER), account, WAIT).await;
    let (status, body) = push(
        &s.server,
        &text_message(10, REFUND_QUESTION),
        true,
        WECHAT_PATIENCE,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let encrypted = field(&body, "Encrypt").expect("an encrypted reply");
    let (timestamp, nonce) = (
        field(&body, "TimeStamp").unwrap(),
        field(&body, "Nonce").unwrap(),
    );
    assert_eq!(
        field(&body, "MsgSignature").unwrap(),
        sign(&[TOKEN, &timestamp, &nonce, &encrypted]),
        "the reply's msg_signature"
    );
    let reply = unseal(&encrypted);
    assert!(shown(&reply).contains("七日内"), "{reply}");

    // A sealed message whose msg_signature is wrong is refused unopened.
    let encrypted = seal(&text_message(11, REFUND_QUESTION));
    let signature = sign(&[TOKEN, "1", "2"]);
    let url = format!(
        "{}?signature={signature}&timestamp=1&nonce=2&encrypt_type=aes&msg_signature={}",
        s.server.url("/wechat/kb"),
        sign(&["x"])
    );
    let response = s
        .server
        .http
        .post(url)
        .body(format!("<xml><Encrypt>{encrypted}</Encrypt></xml>"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(s.llm.calls(), 1);
}

#[tokio::test]
async fn retries_of_a_slow_answer_share_one_model_call_and_get_the_answer() {
    let slow = Script::Slow(Duration::from_secs(8), REFUND_ANSWER);
    let s = setup(slow, plain_account(), WAIT).await;
    let message = text_message(20, REFUND_QUESTION);
    let started = Instant::now();
    let mut answered_on = None;
    for attempt in 1..=3 {
        match push(&s.server, &message, false, WECHAT_PATIENCE).await {
            None => continue, // WeChat gave up on this try and sends the message again.
            Some((status, body)) => {
                assert_eq!(status, 200);
                assert!(shown(&body).contains("七日内"), "try {attempt}: {body}");
                answered_on = Some(attempt);
                break;
            }
        }
    }
    let attempt = answered_on.expect("one of WeChat's three tries gets the answer");
    assert!(attempt >= 2, "the model takes 8 s, so not the first try");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(
        s.llm.calls(),
        1,
        "WeChat's retries joined the first computation"
    );
}

#[tokio::test]
async fn with_customer_service_permission_the_first_try_says_success_and_the_answer_follows() {
    let slow = Script::Slow(Duration::from_secs(8), REFUND_ANSWER);
    let account = json!({ "token": TOKEN, "app_id": APP_ID, "app_secret": "the-app-secret" });
    let s = setup(slow, account, WAIT).await;
    let (status, body) = push(
        &s.server,
        &text_message(30, REFUND_QUESTION),
        false,
        WECHAT_PATIENCE,
    )
    .await
    .expect("the first try is answered within 5 s");
    assert_eq!((status, body.as_str()), (200, "success"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.stand_in.sent().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = s.stand_in.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["touser"], USER);
    assert_eq!(sent[0]["msgtype"], "text");
    assert!(
        sent[0]["text"]["content"]
            .as_str()
            .unwrap()
            .contains("七日内"),
        "{sent:?}"
    );
    let tokens = s.stand_in.token_requests.lock().unwrap().clone();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["appid"], APP_ID);
    assert_eq!(tokens[0]["secret"], "the-app-secret");
    assert_eq!(s.llm.calls(), 1);
}

#[tokio::test]
async fn an_answer_that_misses_every_try_comes_with_the_next_message() {
    // Short tries (1 s wait + lore's hold, WeChat patience 2 s) and a 6 s model: all three
    // tries pass before the answer is ready, so the last one says it is on its way.
    let slow = Script::Slow(Duration::from_secs(6), REFUND_ANSWER);
    let s = setup(slow, plain_account(), 1_000).await;
    let message = text_message(40, REFUND_QUESTION);
    let patience = Duration::from_secs(2);
    assert!(push(&s.server, &message, false, patience).await.is_none());
    assert!(push(&s.server, &message, false, patience).await.is_none());
    let (_, body) = push(&s.server, &message, false, patience)
        .await
        .expect("the last try gets a reply");
    assert!(shown(&body).contains("发送任意消息"), "{body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, body) = push(&s.server, &text_message(41, "好的"), false, WECHAT_PATIENCE)
        .await
        .expect("a reply");
    assert!(shown(&body).contains("七日内"), "{body}");
}

#[tokio::test]
async fn a_clarification_is_answered_by_the_number_of_an_option() {
    let s = setup(
        Script::Answer("可以转让，需要邮箱验证码确认[1]。"),
        plain_account(),
        WAIT,
    )
    .await;
    let (_, body) = push(
        &s.server,
        &text_message(50, "工作空间的所有权可以转让吗？"),
        false,
        WECHAT_PATIENCE,
    )
    .await
    .unwrap();
    let question = shown(&body);
    assert!(
        question.contains("1. ") && question.contains("2. "),
        "{question}"
    );
    assert_eq!(s.llm.calls(), 0, "a clarifying question needs no model");
    let first = question
        .lines()
        .find_map(|l| l.strip_prefix("1. "))
        .unwrap()
        .to_owned();

    let (_, body) = push(&s.server, &text_message(51, "1"), false, WECHAT_PATIENCE)
        .await
        .unwrap();
    let answer = shown(&body);
    assert!(answer.starts_with(&format!("「{first}」")), "{answer}");
    assert_eq!(s.llm.calls(), 1);
    // The model saw the first option's document only, and the original question.
    let prompt = s.llm.last_request.lock().unwrap().to_string();
    assert!(prompt.contains("所有权可以转让吗"), "{prompt}");
    let (mine, other) = if first.contains("cloud") {
        ("邮箱验证码", "无法将工作空间")
    } else {
        ("无法将工作空间", "邮箱验证码")
    };
    assert!(prompt.contains(mine) && !prompt.contains(other), "{prompt}");
}

#[tokio::test]
async fn a_picture_of_a_question_is_read_and_answered() {
    let s = setup(Script::Answer(REFUND_ANSWER), plain_account(), WAIT).await;
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("question.png");
    let convert = if std::path::Path::new("/usr/bin/convert").exists() {
        "/usr/bin/convert"
    } else {
        "convert"
    };
    let status = Command::new(convert)
        .args(["-size", "1000x140", "xc:white", "-font"])
        .arg("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
        .args([
            "-pointsize",
            "56",
            "-fill",
            "black",
            "-annotate",
            "+30+95",
            REFUND_QUESTION,
        ])
        .arg(&png)
        .status()
        .expect("ImageMagick (scripts/setup-ocr installs it)");
    assert!(status.success());
    *s.stand_in.picture.lock().unwrap() = std::fs::read(&png).unwrap();
    let image = format!(
        "<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{USER}</FromUserName><CreateTime>1700000100</CreateTime>\
         <MsgType>image</MsgType><PicUrl><![CDATA[{}/pic.png]]></PicUrl><MediaId>m1</MediaId><MsgId>60</MsgId></xml>",
        s.stand_in_base
    );
    let (_, body) = push(&s.server, &image, false, WECHAT_PATIENCE)
        .await
        .unwrap();
    let text = shown(&body);
    assert!(
        text.contains("来源：refund"),
        "the OCR text found the refund policy: {text}"
    );
    let prompt = s.llm.last_request.lock().unwrap().to_string();
    assert!(prompt.contains("签收后几天内可以退货"), "{prompt}");
}
