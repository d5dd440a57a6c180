//! WeChat's message security: the SHA-1 signature of every call, and safe mode's AES-256-CBC
//! envelope (key from the account's EncodingAESKey, IV = the key's first 16 bytes, PKCS#7 padding
//! to 32-byte blocks, plaintext = 16 random bytes + big-endian length + message + AppID).

use aes::Aes256;
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut as _, BlockEncryptMut as _, KeyIvInit as _};
use sha1::{Digest as _, Sha1};
use subtle::ConstantTimeEq as _;

/// WeChat pads to this block size, not AES's 16.
const PAD_BLOCK: usize = 32;

/// Standard base64 that accepts WeChat's key (43 characters, no padding, loose trailing bits).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a safe-mode message could not be opened.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CryptoError {
    #[error("the EncodingAESKey must be 43 characters of base64")]
    BadKey,
    #[error("the encrypted message is not valid base64 or AES blocks")]
    BadCiphertext,
    #[error("the decrypted message is malformed")]
    BadPlaintext,
    #[error("the message was encrypted for another AppID")]
    WrongAppId,
}

/// WeChat's signature: SHA-1 (hex) of the parts sorted and concatenated.
/// Plain mode signs token, timestamp and nonce; safe mode adds the encrypted message.
pub fn signature(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    hex::encode(Sha1::digest(sorted.concat().as_bytes()))
}

/// Whether `given` is the signature of `parts`, compared in constant time.
pub fn verify(given: &str, parts: &[&str]) -> bool {
    bool::from(signature(parts).as_bytes().ct_eq(given.as_bytes()))
}

/// The safe-mode cipher of one official account.
pub struct Envelope {
    key: [u8; 32],
    app_id: String,
}

impl Envelope {
    pub fn new(encoding_aes_key: &str, app_id: &str) -> Result<Self, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::BadKey);
        }
        let key = BASE64
            .decode(encoding_aes_key)
            .map_err(|_| CryptoError::BadKey)?
            .try_into()
            .map_err(|_| CryptoError::BadKey)?;
        Ok(Self {
            key,
            app_id: app_id.to_owned(),
        })
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }

    /// Opens an `<Encrypt>` value and returns the message XML inside.
    pub fn open(&self, encrypted: &str) -> Result<String, CryptoError> {
        let ciphertext = BASE64
            .decode(encrypted.trim())
            .map_err(|_| CryptoError::BadCiphertext)?;
        let plain = cbc::Decryptor::<Aes256>::new(&self.key.into(), &self.iv().into())
            .decrypt_padded_vec_mut::<NoPadding>(&ciphertext)
            .map_err(|_| CryptoError::BadCiphertext)?;
        let pad = usize::from(*plain.last().ok_or(CryptoError::BadPlaintext)?);
        if !(1..=PAD_BLOCK).contains(&pad) || pad > plain.len() {
            return Err(CryptoError::BadPlaintext);
        }
        let body = &plain[..plain.len() - pad];
        let length_bytes: [u8; 4] = body
            .get(16..20)
            .and_then(|b| b.try_into().ok())
            .ok_or(CryptoError::BadPlaintext)?;
        let length = u32::from_be_bytes(length_bytes) as usize;
        let message = body.get(20..20 + length).ok_or(CryptoError::BadPlaintext)?;
        let app_id = body.get(20 + length..).ok_or(CryptoError::BadPlaintext)?;
        if app_id != self.app_id.as_bytes() {
            return Err(CryptoError::WrongAppId);
        }
        String::from_utf8(message.to_vec()).map_err(|_| CryptoError::BadPlaintext)
    }

    /// Seals a reply XML into an `<Encrypt>` value; `random` is the 16-byte prefix WeChat wants.
    pub fn seal(&self, message: &str, random: [u8; 16]) -> String {
        let mut plain = Vec::with_capacity(message.len() + self.app_id.len() + 52);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(self.app_id.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let ciphertext = cbc::Encryptor::<Aes256>::new(&self.key.into(), &self.iv().into())
            .encrypt_padded_vec_mut::<NoPadding>(&plain);
        BASE64.encode(ciphertext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn signature_sorts_before_hashing() {
        // sha1("1409659813" + "263014780" + "token") computed by `printf ... | sha1sum`.
        assert_eq!(
            signature(&["token", "1409659813", "263014780"]),
            "95466e66818a4e5ab2ec9e571d000a9489c97169"
        );
        assert!(verify(&signature(&["a", "b"]), &["b", "a"]));
        assert!(!verify("0000", &["b", "a"]));
    }

    #[test]
    fn sealed_messages_open_again_and_only_for_their_app() {
        let envelope = Envelope::new(KEY, "wx123").unwrap();
        for message in ["", "<xml>短</xml>", &"x".repeat(31), &"长".repeat(500)] {
            let sealed = envelope.seal(message, [7; 16]);
            assert_eq!(envelope.open(&sealed).unwrap(), message);
        }
        let other = Envelope::new(KEY, "wx999").unwrap();
        assert_eq!(
            other.open(&envelope.seal("<xml/>", [0; 16])),
            Err(CryptoError::WrongAppId)
        );
    }

    #[test]
    fn bad_keys_and_ciphertexts_are_errors_not_panics() {
        assert!(Envelope::new("short", "wx").is_err());
        assert!(Envelope::new(&"!".repeat(43), "wx").is_err());
        let envelope = Envelope::new(KEY, "wx").unwrap();
        for bad in ["", "not base64!", "AAAA", &BASE64.encode([0u8; 32])] {
            assert!(envelope.open(bad).is_err(), "{bad}");
        }
    }
}
