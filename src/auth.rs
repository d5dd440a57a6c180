//! Who is calling: API keys with a role (`admin` or `read`), optionally limited to some
//! knowledge bases, and a per-key request rate.
//!
//! Keys are kept as SHA-256 digests and a presented key is hashed and compared with every
//! configured digest in constant time, so neither memory dumps nor response timing reveal them.
//! Only the key's name ever reaches logs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::config::Config;
pub use crate::config::Role;

/// A caller the server knows.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The key's name (`admin` for `LORE_API_KEY`, `anonymous` when no keys are configured).
    pub name: String,
    pub role: Role,
    /// The knowledge bases it may use; `None`: all.
    pub kbs: Option<Vec<String>>,
}

impl Principal {
    /// The caller when no keys are configured (lore then only listens on loopback).
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".to_owned(),
            role: Role::Admin,
            kbs: None,
        }
    }

    pub fn has_role(&self, needed: Role) -> bool {
        self.role == Role::Admin || needed == Role::Read
    }

    pub fn may_use(&self, kb: &str) -> bool {
        self.kbs
            .as_ref()
            .is_none_or(|kbs| kbs.iter().any(|k| k == kb))
    }

    /// Creating or deleting knowledge bases themselves takes an unrestricted admin key.
    pub fn may_manage_all(&self) -> bool {
        self.role == Role::Admin && self.kbs.is_none()
    }
}

/// The configured keys, by digest.
pub struct Keys {
    entries: Vec<([u8; 32], Principal)>,
}

impl Keys {
    pub fn from_config(config: &Config) -> Self {
        let mut entries = Vec::new();
        if let Some(key) = &config.api_key {
            entries.push((
                digest(key.expose()),
                Principal {
                    name: "admin".to_owned(),
                    role: Role::Admin,
                    kbs: None,
                },
            ));
        }
        for key in &config.keys {
            let hash = match (&key.key, &key.key_sha256) {
                (Some(k), _) => digest(k.expose()),
                (None, Some(hex_digest)) => match hex::decode(hex_digest)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                {
                    Some(hash) => hash,
                    None => continue, // rejected by Config::validate already
                },
                (None, None) => continue,
            };
            entries.push((
                hash,
                Principal {
                    name: key.name.clone(),
                    role: key.role,
                    kbs: key.kbs.clone(),
                },
            ));
        }
        Self { entries }
    }

    /// No keys configured: everyone is let in (and lore listens on loopback only).
    pub fn is_open(&self) -> bool {
        self.entries.is_empty()
    }

    /// The holder of `presented`, comparing against every key without stopping early.
    pub fn identify(&self, presented: &str) -> Option<&Principal> {
        let wanted = digest(presented);
        let mut found = None;
        for (hash, principal) in &self.entries {
            if bool::from(hash.ct_eq(&wanted)) {
                found = Some(principal);
            }
        }
        found
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A token bucket per key: `burst` requests at once, refilled at `per_minute`.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `who`'s bucket, or says how long until one is available.
    pub fn check(&self, who: &str) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = buckets.entry(who.to_owned()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KeyConfig, Secret};

    fn config() -> Config {
        Config {
            api_key: Some(Secret::new("the-admin-key-0123456789")),
            keys: vec![
                KeyConfig {
                    name: "bot".into(),
                    key: Some(Secret::new("the-read-key-0123456789")),
                    key_sha256: None,
                    role: Role::Read,
                    kbs: Some(vec!["faq".into()]),
                },
                KeyConfig {
                    name: "ops".into(),
                    key: None,
                    key_sha256: Some(hex::encode(digest("the-hashed-key-0123456789"))),
                    role: Role::Admin,
                    kbs: Some(vec!["faq".into(), "hr".into()]),
                },
            ],
            ..Config::default()
        }
    }

    #[test]
    fn keys_are_recognised_by_digest_with_their_roles() {
        let keys = Keys::from_config(&config());
        assert!(!keys.is_open());
        assert_eq!(
            keys.identify("the-admin-key-0123456789").unwrap().name,
            "admin"
        );
        let bot = keys.identify("the-read-key-0123456789").unwrap();
        assert!(bot.has_role(Role::Read) && !bot.has_role(Role::Admin));
        assert!(bot.may_use("faq") && !bot.may_use("hr"));
        let ops = keys.identify("the-hashed-key-0123456789").unwrap();
        assert!(ops.has_role(Role::Admin) && ops.may_use("hr") && !ops.may_manage_all());
        assert!(keys.identify("the-read-key-012345678").is_none());
        assert!(keys.identify("").is_none());
        assert!(Keys::from_config(&Config::default()).is_open());
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_says_when_to_retry() {
        let limiter = RateLimiter::new(60, 3);
        for _ in 0..3 {
            assert!(limiter.check("bot").is_ok());
        }
        let wait = limiter.check("bot").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(limiter.check("other").is_ok(), "buckets are per key");
        assert!(
            RateLimiter::new(0, 1).check("x").is_ok(),
            "0 disables the limit"
        );
    }
}
