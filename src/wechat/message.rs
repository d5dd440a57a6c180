//! WeChat's message XML: the flat `<xml>` of a pushed message, and the text and encrypted replies.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::Event;

/// A message WeChat pushed to the server URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The official account (`ToUserName`).
    pub account: String,
    /// The user's OpenID (`FromUserName`).
    pub user: String,
    pub create_time: u64,
    pub msg_id: Option<String>,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Text(String),
    /// `Recognition` is present when the account has speech recognition turned on.
    Voice {
        recognition: Option<String>,
    },
    Image {
        pic_url: String,
    },
    Event(String),
    /// Any other type (video, location, link...), by its `MsgType`.
    Other(String),
}

impl Incoming {
    /// What identifies the message across WeChat's retries: `MsgId`, or for events (which have
    /// none) the sender and creation time, as WeChat's documentation says.
    pub fn key(&self) -> String {
        match &self.msg_id {
            Some(id) => format!("id:{id}"),
            None => format!("ev:{}:{}", self.user, self.create_time),
        }
    }
}

/// Why a body is not a WeChat message.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("not a WeChat message: {0}")]
pub struct MalformedMessage(&'static str);

/// The child elements of the root `<xml>`, text or CDATA, by name. WeChat's messages are flat;
/// nested elements are skipped, and a DOCTYPE (entity tricks) is refused.
pub fn fields(xml: &str) -> Result<HashMap<String, String>, MalformedMessage> {
    let mut reader = Reader::from_str(xml);
    let mut fields = HashMap::new();
    let mut depth = 0usize;
    let mut current: Option<(String, String)> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                depth += 1;
                if depth == 2 {
                    let name = e.local_name().as_ref().to_owned();
                    current = Some((name, String::new()));
                }
            }
            Ok(Event::End(_)) => {
                if depth == 2
                    && let Some((name, value)) = current.take()
                {
                    fields.insert(name, value);
                }
                depth = depth.saturating_sub(1);
            }
            Ok(Event::Text(t)) if depth == 2 => {
                if let Some((_, value)) = current.as_mut() {
                    value.push_str(&t.xml10_content());
                }
            }
            Ok(Event::CData(t)) if depth == 2 => {
                if let Some((_, value)) = current.as_mut() {
                    value.push_str(&t.xml10_content());
                }
            }
            Ok(Event::GeneralRef(r)) if depth == 2 => {
                if let Some((_, value)) = current.as_mut() {
                    crate::ingest::docx::push_reference(value, &r);
                }
            }
            Ok(Event::DocType(_)) => return Err(MalformedMessage("a DOCTYPE is not allowed")),
            Ok(Event::Eof) => break,
            Err(_) => return Err(MalformedMessage("the XML does not parse")),
            Ok(_) => {}
        }
    }
    if fields.is_empty() {
        return Err(MalformedMessage("no fields"));
    }
    Ok(fields)
}

/// Reads a plain (or decrypted) message.
pub fn parse(xml: &str) -> Result<Incoming, MalformedMessage> {
    let mut f = fields(xml)?;
    let mut take = |name: &str| f.remove(name).filter(|v| !v.trim().is_empty());
    let account = take("ToUserName").ok_or(MalformedMessage("no ToUserName"))?;
    let user = take("FromUserName").ok_or(MalformedMessage("no FromUserName"))?;
    let create_time = take("CreateTime")
        .and_then(|t| t.trim().parse().ok())
        .ok_or(MalformedMessage("no CreateTime"))?;
    let msg_type = take("MsgType").ok_or(MalformedMessage("no MsgType"))?;
    let kind = match msg_type.as_str() {
        "text" => Kind::Text(take("Content").unwrap_or_default()),
        "voice" => Kind::Voice {
            recognition: take("Recognition"),
        },
        "image" => Kind::Image {
            pic_url: take("PicUrl").ok_or(MalformedMessage("an image without PicUrl"))?,
        },
        "event" => Kind::Event(take("Event").unwrap_or_default().to_ascii_lowercase()),
        other => Kind::Other(other.to_owned()),
    };
    Ok(Incoming {
        account,
        user,
        create_time,
        msg_id: take("MsgId"),
        kind,
    })
}

/// A passive text reply to `to` (the user) from `from` (the account).
pub fn text_reply(to: &str, from: &str, content: &str, now: u64) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName>\
         <CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content>{}</Content></xml>",
        cdata(to),
        cdata(from),
        cdata(content)
    )
}

/// The safe-mode wrapper around an encrypted reply.
pub fn encrypted_reply(encrypt: &str, signature: &str, timestamp: &str, nonce: &str) -> String {
    format!(
        "<xml><Encrypt>{}</Encrypt><MsgSignature>{}</MsgSignature>\
         <TimeStamp>{}</TimeStamp><Nonce>{}</Nonce></xml>",
        cdata(encrypt),
        cdata(signature),
        cdata(timestamp),
        cdata(nonce)
    )
}

/// A CDATA section holding any text: `]]>` inside is split across two sections.
fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_documented_message_type() {
        let text = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oU1]]></FromUserName>\
            <CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType>\
            <Content><![CDATA[退货 & 退款]]></Content><MsgId>1234567890123456</MsgId></xml>";
        let m = parse(text).unwrap();
        assert_eq!(m.kind, Kind::Text("退货 & 退款".into()));
        assert_eq!(m.key(), "id:1234567890123456");
        assert_eq!((m.account.as_str(), m.user.as_str()), ("gh_1", "oU1"));

        let voice = "<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName><CreateTime>1</CreateTime>\
            <MsgType>voice</MsgType><MediaId>m</MediaId><Format>amr</Format>\
            <Recognition><![CDATA[怎么退货]]></Recognition><MsgId>9</MsgId></xml>";
        assert_eq!(
            parse(voice).unwrap().kind,
            Kind::Voice {
                recognition: Some("怎么退货".into())
            }
        );
        let event = "<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName><CreateTime>7</CreateTime>\
            <MsgType>event</MsgType><Event>subscribe</Event></xml>";
        let e = parse(event).unwrap();
        assert_eq!(e.kind, Kind::Event("subscribe".into()));
        assert_eq!(e.key(), "ev:u:7");
        let image = "<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName><CreateTime>7</CreateTime>\
            <MsgType>image</MsgType><PicUrl>http://x/p.png</PicUrl><MsgId>3</MsgId></xml>";
        assert_eq!(
            parse(image).unwrap().kind,
            Kind::Image {
                pic_url: "http://x/p.png".into()
            }
        );
    }

    #[test]
    fn refuses_what_is_not_a_message() {
        for bad in [
            "",
            "not xml",
            "<xml></xml>",
            "<xml><ToUserName>a</ToUserName></xml>",
            "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><Content>&e;</Content></xml>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replies_survive_cdata_terminators() {
        let reply = text_reply("u", "gh", "a]]>b <tag>", 5);
        let f = fields(&reply).unwrap();
        assert_eq!(f["Content"], "a]]>b <tag>");
        assert_eq!(f["MsgType"], "text");
    }
}
