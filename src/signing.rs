//! The service's Ed25519 signing key, which signs checkpoints and exports (§5).
//!
//! Read from `LEDGER_SIGNING_KEY_FILE` (PKCS#8 PEM). In dev mode (the embedded database) a key is
//! generated into the data folder on first start. Rotation (`ledger keys rotate`) writes a new
//! key file and registers it; retired public keys stay listed in `GET /v1/keys`.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::audit::export::key_id;

/// Where the signing key comes from.
#[derive(Clone, Debug)]
pub enum SigningKeySource {
    /// A PKCS#8 PEM file that must exist.
    File(PathBuf),
    /// A PKCS#8 PEM file, created with a new key when missing (dev mode).
    GenerateIfMissing(PathBuf),
    /// A key held in memory (tests).
    InMemory(Box<SigningKey>),
}

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("signing key file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{0} exists already; refusing to overwrite a signing key")]
    Exists(PathBuf),
}

/// The key that signs, with what identifies it.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    key_id: String,
    origin_prefix: String,
}

impl Signer {
    pub fn new(key: SigningKey, origin_prefix: &str) -> Signer {
        Signer {
            key_id: key_id(&key.verifying_key()),
            key,
            origin_prefix: origin_prefix.to_owned(),
        }
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// A ledger's checkpoint origin and signed-note key name: `<prefix>/<ledger>`.
    pub fn origin(&self, ledger: &str) -> String {
        format!("{}/{ledger}", self.origin_prefix)
    }
}

pub fn load(source: &SigningKeySource) -> Result<SigningKey, SigningKeyError> {
    match source {
        SigningKeySource::InMemory(key) => Ok(key.as_ref().clone()),
        SigningKeySource::File(path) => read_pem(path),
        SigningKeySource::GenerateIfMissing(path) if path.exists() => read_pem(path),
        SigningKeySource::GenerateIfMissing(path) => {
            let key = generate();
            write_pem(path, &key)?;
            tracing::info!(
                key_id = %key_id(&key.verifying_key()),
                path = %path.display(),
                "generated a dev signing key"
            );
            Ok(key)
        }
    }
}

pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

fn read_pem(path: &Path) -> Result<SigningKey, SigningKeyError> {
    let error = |reason: String| SigningKeyError::File {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    SigningKey::from_pkcs8_pem(&text)
        .map_err(|e| error(format!("not an Ed25519 PKCS#8 PEM key: {e}")))
}

/// Writes a key as PKCS#8 PEM, readable by its owner only; never over an existing file.
pub fn write_pem(path: &Path, key: &SigningKey) -> Result<(), SigningKeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let error = |reason: String| SigningKeyError::File {
        path: path.to_owned(),
        reason,
    };
    if path.exists() {
        return Err(SigningKeyError::Exists(path.to_owned()));
    }
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|e| error(e.to_string()))?;
    }
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| error(e.to_string()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| error(e.to_string()))?;
    file.write_all(pem.as_bytes())
        .map_err(|e| error(e.to_string()))
}

pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("an Ed25519 public key encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_written_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("ledger-signing-{}", uuid::Uuid::new_v4()));
        let path = dir.join("key.pem");
        let key = load(&SigningKeySource::GenerateIfMissing(path.clone())).unwrap();
        assert_eq!(
            load(&SigningKeySource::File(path.clone()))
                .unwrap()
                .to_bytes(),
            key.to_bytes()
        );
        assert!(matches!(
            write_pem(&path, &generate()),
            Err(SigningKeyError::Exists(_))
        ));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_or_foreign_key_file_is_a_clear_error() {
        assert!(matches!(
            load(&SigningKeySource::File("/nonexistent/key.pem".into())),
            Err(SigningKeyError::File { .. })
        ));
    }
}
