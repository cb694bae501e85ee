//! Ed25519 signatures over a bundle's manifest.
//!
//! The manifest holds the sha256 of every model file, so one signature over
//! its bytes covers the whole bundle. `manifest.sig` is one line: the 64-byte
//! signature in hex. The signed message is [`DOMAIN`] followed by the exact
//! bytes of `manifest.toml`, so a signature made for something else cannot be
//! replayed as a bundle signature.
//!
//! Keys are files of one hex line: a secret key is the 32-byte seed (written
//! with mode 0600 by [`SecretKey::generate_to`]), a public key the 32-byte
//! point. A board profile lists the public keys it trusts
//! (`[inference] trusted_keys`).

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// Prefix of every signed message.
pub const DOMAIN: &[u8] = b"bedside bundle manifest v1\n";

/// Name of the signature file inside a bundle.
pub const SIGNATURE_FILE: &str = "manifest.sig";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The reason is kept as text, so the one-line message carries it once.
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error("{what}: not a key: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{}: already exists; refusing to overwrite a key", path.display())]
    Exists { path: PathBuf },
}

/// A trusted signer.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// A signer's secret seed.
pub struct SecretKey(SigningKey);

/// Lower-case hex of `bytes` (keys, signatures, sha256 digests).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes from a hex string (surrounding whitespace ignored).
fn unhex<const N: usize>(what: &str, text: &str) -> Result<[u8; N], KeyError> {
    let malformed = |reason: String| KeyError::Malformed {
        what: what.to_string(),
        reason,
    };
    let t = text.trim();
    if t.len() != 2 * N || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed(format!("expected {} hex digits", 2 * N)));
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|e| malformed(e.to_string()))?;
    }
    Ok(out)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|e| KeyError::Io {
        path: path.to_path_buf(),
        reason: io_reason(&e),
    })
}

impl PublicKey {
    /// From 64 hex digits.
    pub fn from_hex(text: &str) -> Result<PublicKey, KeyError> {
        let bytes = unhex::<32>("public key", text)?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|e| KeyError::Malformed {
                what: "public key".into(),
                reason: e.to_string(),
            })
    }

    /// Either 64 hex digits or the path of a file holding them.
    pub fn from_hex_or_file(spec: &str) -> Result<PublicKey, KeyError> {
        if spec.len() == 64 && spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            PublicKey::from_hex(spec)
        } else {
            let path = Path::new(spec);
            PublicKey::from_hex(&read_text(path)?).map_err(|e| match e {
                KeyError::Malformed { reason, .. } => KeyError::Malformed {
                    what: path.display().to_string(),
                    reason,
                },
                other => other,
            })
        }
    }

    pub fn to_hex(&self) -> String {
        hex(self.0.as_bytes())
    }

    /// True when `signature` is this key's signature of `manifest`.
    pub fn verifies(&self, manifest: &[u8], signature: &[u8; 64]) -> bool {
        let sig = Signature::from_bytes(signature);
        self.0.verify(&signed_message(manifest), &sig).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn signed_message(manifest: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + manifest.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(manifest);
    m
}

impl SecretKey {
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    pub fn load(path: &Path) -> Result<SecretKey, KeyError> {
        let seed = unhex::<32>(&path.display().to_string(), &read_text(path)?)?;
        Ok(SecretKey::from_seed(seed))
    }

    /// Makes a new key from the OS's random source and writes its seed to
    /// `path` (mode 0600, never over an existing file).
    pub fn generate_to(path: &Path) -> Result<SecretKey, KeyError> {
        use std::io::{Read, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let io = |e: std::io::Error| KeyError::Io {
            path: path.to_path_buf(),
            reason: io_reason(&e),
        };
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(|e| KeyError::Io {
                path: PathBuf::from("/dev/urandom"),
                reason: io_reason(&e),
            })?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => KeyError::Exists {
                    path: path.to_path_buf(),
                },
                _ => io(e),
            })?;
        writeln!(file, "{}", hex(&seed)).map_err(io)?;
        Ok(SecretKey::from_seed(seed))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature of `manifest`, as `manifest.sig` holds it (hex, newline).
    pub fn sign(&self, manifest: &[u8]) -> String {
        let sig = self.0.sign(&signed_message(manifest));
        format!("{}\n", hex(&sig.to_bytes()))
    }
}

/// Parses the contents of `manifest.sig`.
pub fn parse_signature(what: &str, text: &str) -> Result<[u8; 64], KeyError> {
    unhex::<64>(what, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_its_manifest_and_its_key() {
        let key = SecretKey::from_seed([7; 32]);
        let other = SecretKey::from_seed([8; 32]).public();
        let manifest = b"[model]\nname = \"x\"\n";
        let sig = parse_signature("sig", &key.sign(manifest)).unwrap();
        assert!(key.public().verifies(manifest, &sig));
        assert!(!other.verifies(manifest, &sig));
        assert!(!key.public().verifies(b"[model]\nname = \"y\"\n", &sig));
        let mut flipped = sig;
        flipped[10] ^= 1;
        assert!(!key.public().verifies(manifest, &flipped));
    }

    #[test]
    fn keys_round_trip_through_hex_and_reject_junk() {
        let key = SecretKey::from_seed([1; 32]).public();
        assert_eq!(PublicKey::from_hex(&key.to_hex()).unwrap(), key);
        assert!(PublicKey::from_hex("abcd").is_err());
        assert!(PublicKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(parse_signature("sig", "00").is_err());
    }

    #[test]
    fn generated_keys_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signer.key");
        let key = SecretKey::generate_to(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(SecretKey::load(&path).unwrap().public(), key.public());
        assert!(matches!(
            SecretKey::generate_to(&path),
            Err(KeyError::Exists { .. })
        ));
    }
}
