//! The official account connected to a knowledge base: token, AppID and optional keys, kept in
//! `wechat.json` inside the knowledge base's folder (owner-only permissions; it holds secrets).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::crypto::Envelope;
use crate::config::Secret;
use crate::error::{Error, Result};

/// What `PUT /api/kbs/{kb}/wechat` accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    /// The token entered on WeChat's server settings page (3–32 letters or digits).
    pub token: String,
    pub app_id: String,
    /// Safe mode's EncodingAESKey (43 characters); without it messages are plain.
    #[serde(default)]
    pub encoding_aes_key: Option<String>,
    /// Only for accounts allowed to send customer-service messages: answers that miss the
    /// 5-second window are then sent that way.
    #[serde(default)]
    pub app_secret: Option<String>,
    /// Reply to a new follower; default a short built-in greeting.
    #[serde(default)]
    pub welcome: Option<String>,
}

/// A connected account, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub token: Secret,
    pub app_id: String,
    pub encoding_aes_key: Option<Secret>,
    pub app_secret: Option<Secret>,
    pub welcome: Option<String>,
}

impl Account {
    /// Checks the settings the way WeChat's own form does, so mistakes show here and not as
    /// a failed handshake.
    pub fn from_settings(settings: AccountSettings) -> Result<Self> {
        let token = settings.token.trim();
        if !(3..=32).contains(&token.len()) || !token.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::invalid_request(
                "token must be 3 to 32 letters or digits, as on WeChat's server settings page",
            ));
        }
        let app_id = settings.app_id.trim();
        if app_id.is_empty() || app_id.len() > 64 {
            return Err(Error::invalid_request("app_id is required"));
        }
        let aes_key = settings
            .encoding_aes_key
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty());
        if let Some(key) = &aes_key {
            Envelope::new(key, app_id).map_err(|e| Error::invalid_request(e.to_string()))?;
        }
        Ok(Self {
            token: Secret::new(token),
            app_id: app_id.to_owned(),
            encoding_aes_key: aes_key.map(Secret::new),
            app_secret: settings
                .app_secret
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            welcome: settings.welcome.filter(|w| !w.trim().is_empty()),
        })
    }

    /// The safe-mode envelope, when the account has an EncodingAESKey.
    pub fn envelope(&self) -> Option<Envelope> {
        let key = self.encoding_aes_key.as_ref()?;
        Envelope::new(key.expose(), &self.app_id).ok()
    }

    /// Whether late answers can be sent as customer-service messages.
    pub fn can_send_later(&self) -> bool {
        self.app_secret.is_some()
    }

    /// What `GET /api/kbs/{kb}/wechat` shows: everything but the secrets.
    pub fn public_view(&self, kb: &str) -> Value {
        json!({
            "configured": true,
            "server_path": format!("/wechat/{kb}"),
            "app_id": self.app_id,
            "safe_mode": self.encoding_aes_key.is_some(),
            "customer_service": self.app_secret.is_some(),
            "welcome": self.welcome,
        })
    }
}

fn path(kb_dir: &Path) -> PathBuf {
    kb_dir.join("wechat.json")
}

pub fn load(kb_dir: &Path) -> Result<Option<Account>> {
    match std::fs::read(path(kb_dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::internal(anyhow::anyhow!("wechat.json is unreadable: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::internal(e)),
    }
}

/// Writes atomically (temp file + rename), readable by the owner only.
pub fn save(kb_dir: &Path, account: &Account) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(account).map_err(Error::internal)?;
    let mut file = tempfile::NamedTempFile::new_in(kb_dir).map_err(Error::internal)?;
    std::io::Write::write_all(&mut file, &bytes).map_err(Error::internal)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o600))
            .map_err(Error::internal)?;
    }
    file.persist(path(kb_dir))
        .map_err(|e| Error::internal(e.error))?;
    Ok(())
}

pub fn remove(kb_dir: &Path) -> Result<()> {
    match std::fs::remove_file(path(kb_dir)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::internal(e)),
    }
}
