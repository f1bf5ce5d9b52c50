//! Image signatures in cosign's key-based layout, offline (no transparency log, no
//! certificates): an ECDSA P-256 signature over a "simple signing" payload that
//! names the image's digest and repository, stored as a layer of the manifest tagged
//! `sha256-<hex>.sig` in the image's repository, the signature in the layer's
//! `dev.cosignproject.cosign/signature` annotation. Keys are PEM: PKCS#8 (or SEC1)
//! private keys, SubjectPublicKeyInfo public keys — what `openssl` reads and writes.
//! cosign's own encrypted key files are not read.

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use content::{Lease, Store};
use oci::document::{ContainerConfig, ImageConfig, ImageManifest, ManifestOrIndex, RootFs};
use oci::{Descriptor, Digest, RawDocument, Reference, media};

use crate::client::Client;
use crate::error::RegistryError;

/// The media type of a signed payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The artifact type of a signature attached as an OCI 1.1 referrer (cosign's).
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The payload's `critical.type`.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// Why signing or verifying failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("{path}: {message}")]
    Key { path: String, message: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] content::StoreError),
    #[error("{image} ({digest}) has no signature: there is no tag {tag} and no signature referrer")]
    Unsigned {
        image: String,
        digest: Digest,
        tag: String,
    },
    #[error("no signature of {image} ({digest}) verifies with {key}: {reasons}")]
    NotVerified {
        image: String,
        digest: Digest,
        key: String,
        reasons: String,
    },
}

type Result<T, E = SignatureError> = std::result::Result<T, E>;

/// The tag holding the signatures of `digest`: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm().as_str(), digest.hex())
}

/// The simple-signing payload for `digest` in `repository` (`registry/repo`), as
/// cosign writes it.
pub fn payload(repository: &str, digest: &Digest) -> Vec<u8> {
    let v = serde_json::json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": SIGNATURE_TYPE,
        },
        "optional": null,
    });
    serde_json::to_vec(&v).expect("invariant: JSON values serialise")
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The label and DER bytes of the first PEM block of `text`.
fn unpem(text: &str, path: &str) -> Result<(String, Vec<u8>)> {
    let bad = |message: &str| SignatureError::Key {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    let start = text
        .find("-----BEGIN ")
        .ok_or_else(|| bad("not a PEM file (no -----BEGIN line)"))?;
    let rest = &text[start + 11..];
    let label_end = rest
        .find("-----")
        .ok_or_else(|| bad("a broken BEGIN line"))?;
    let label = rest[..label_end].to_owned();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest
        .find(&end_marker)
        .ok_or_else(|| bad(&format!("no {end_marker} line")))?;
    let b64: String = rest[body_start..body_end]
        .lines()
        .map(str::trim)
        .filter(|l| !l.contains(':'))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| bad(&format!("the PEM body is not base64: {e}")))?;
    Ok((label, der))
}

/// A new P-256 key pair: (private key PEM, PKCS#8; public key PEM, SPKI).
pub fn generate_key_pair() -> Result<(String, String)> {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).map_err(|_| {
        SignatureError::Key {
            path: "(new key)".into(),
            message: "the key generator failed".into(),
        }
    })?;
    let private = key.to_pkcs8v1().map_err(|_| SignatureError::Key {
        path: "(new key)".into(),
        message: "the key could not be encoded".into(),
    })?;
    let public = key.public_key().as_der().map_err(|_| SignatureError::Key {
        path: "(new key)".into(),
        message: "the public key could not be encoded".into(),
    })?;
    Ok((
        pem("PRIVATE KEY", private.as_ref()),
        pem("PUBLIC KEY", public.as_ref()),
    ))
}

/// A signing key from PEM `text` read from `path`.
pub fn private_key(text: &str, path: &str) -> Result<EcdsaKeyPair> {
    let (label, der) = unpem(text, path)?;
    let bad = |message: String| SignatureError::Key {
        path: path.to_owned(),
        message,
    };
    let key = match label.as_str() {
        "PRIVATE KEY" => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der),
        "EC PRIVATE KEY" => {
            EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, &der)
        }
        l if l.starts_with("ENCRYPTED") => {
            return Err(bad(format!(
                "an encrypted key ({l}) is not read; give an unencrypted PKCS#8 P-256 key \
                 (`manifold imagetools keygen`, or `openssl genpkey -algorithm EC -pkeyopt \
                 ec_paramgen_curve:P-256`)"
            )));
        }
        l => return Err(bad(format!("a {l} block is not a private key"))),
    };
    key.map_err(|e| bad(format!("not an ECDSA P-256 private key ({e})")))
}

/// A verification key (SubjectPublicKeyInfo PEM) from `text` read from `path`.
pub fn public_key(text: &str, path: &str) -> Result<Vec<u8>> {
    let (label, der) = unpem(text, path)?;
    if label != "PUBLIC KEY" {
        return Err(SignatureError::Key {
            path: path.to_owned(),
            message: format!("a {label} block is not a public key"),
        });
    }
    Ok(der)
}

/// Sign `payload`: the DER ECDSA signature.
pub fn sign_payload(key: &EcdsaKeyPair, payload: &[u8]) -> Result<Vec<u8>> {
    let sig = key
        .sign(&SystemRandom::new(), payload)
        .map_err(|_| SignatureError::Key {
            path: "(signing)".into(),
            message: "the signature could not be made".into(),
        })?;
    Ok(sig.as_ref().to_vec())
}

/// Whether `signature` (DER) over `payload` verifies with the SPKI key `public`.
pub fn verify_payload(public: &[u8], payload: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public)
        .verify(payload, signature)
        .is_ok()
}

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub digest: Digest,
    /// The payload's `docker-reference`.
    pub repository: String,
    /// The payload layer's digest.
    pub payload: Digest,
}

impl Client {
    /// Sign `image` (its digest, as the registry resolves it) with `key`: a new
    /// payload layer added to its signature manifest (tag `sha256-<hex>.sig`, whose
    /// earlier signatures are kept), or with `as_referrer` a manifest of its own
    /// whose `subject` is the image (artifact type [`SIGNATURE_ARTIFACT`]). Returns
    /// the digest signed.
    pub async fn sign(
        &self,
        store: &Store,
        lease: &Lease,
        image: &Reference,
        key: &EcdsaKeyPair,
        as_referrer: bool,
    ) -> Result<Digest> {
        let subject = match image.digest() {
            Some(d) => self.get_manifest(image).await.map_or_else(
                |_| Descriptor::new(media::OCI_MANIFEST, d.clone(), 0),
                |f| f.descriptor,
            ),
            None => self.get_manifest(image).await?.descriptor,
        };
        let digest = subject.digest.clone();
        let repository = image.name();
        let payload = payload(&repository, &digest);
        let signature = sign_payload(key, &payload)?;
        let mut layer = store.put_bytes(lease, SIMPLE_SIGNING, &payload)?;
        layer.annotations.insert(
            SIGNATURE_ANNOTATION.to_owned(),
            base64::engine::general_purpose::STANDARD.encode(&signature),
        );
        if as_referrer {
            let mut config = store.put_bytes(lease, media::OCI_EMPTY, b"{}")?;
            config.data = Some("e30=".to_owned());
            let manifest = RawDocument::from_value(ImageManifest {
                schema_version: 2,
                media_type: Some(media::OCI_MANIFEST.to_owned()),
                artifact_type: Some(SIGNATURE_ARTIFACT.to_owned()),
                config,
                layers: vec![layer],
                subject: Some(Descriptor::new(
                    &subject.media_type,
                    digest.clone(),
                    subject.size,
                )),
                annotations: BTreeMap::new(),
            });
            let mut desc = store.put_bytes(lease, media::OCI_MANIFEST, manifest.bytes())?;
            desc.artifact_type = Some(SIGNATURE_ARTIFACT.to_owned());
            self.push_referrer(store, &desc, &digest, image).await?;
            return Ok(digest);
        }
        let tag = image
            .with_tag(&signature_tag(&digest))
            .map_err(|e| RegistryError::Protocol {
                url: image.to_string(),
                reason: format!("signature tag: {e}"),
            })?;
        // The signatures already there stay, after which this one is added.
        let mut layers = match self.get_manifest(&tag).await {
            Ok(f) => match f.document {
                ManifestOrIndex::Manifest(m) => m.value().layers.clone(),
                ManifestOrIndex::Index(_) => Vec::new(),
            },
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let present: BTreeSet<Digest> = layers.iter().map(|l| l.digest.clone()).collect();
        layers.push(layer);
        let config = RawDocument::from_value(ImageConfig {
            config: Some(ContainerConfig::default()),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: layers.iter().map(|l| l.digest.clone()).collect(),
            },
            ..ImageConfig::default()
        });
        let config = store.put_bytes(lease, media::OCI_CONFIG, config.bytes())?;
        let manifest = RawDocument::from_value(ImageManifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.to_owned()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        });
        let desc = store.put_bytes(lease, media::OCI_MANIFEST, manifest.bytes())?;
        self.push_known(store, &desc, &tag, None, &present).await?;
        Ok(digest)
    }

    /// Verify `image` with the public key `public` (SPKI DER; `key_name` names it in
    /// errors): at least one signature in its signature manifest must verify and name
    /// the image's digest. Returns those that do.
    pub async fn verify(
        &self,
        image: &Reference,
        public: &[u8],
        key_name: &str,
    ) -> Result<Vec<Verified>> {
        let digest = match image.digest() {
            Some(d) => d.clone(),
            None => self.get_manifest(image).await?.descriptor.digest,
        };
        let tag_name = signature_tag(&digest);
        let tag = image
            .with_tag(&tag_name)
            .map_err(|e| RegistryError::Protocol {
                url: image.to_string(),
                reason: format!("signature tag: {e}"),
            })?;
        // The signature tag's layers, and those of signatures attached as referrers.
        let mut layers = match self.get_manifest(&tag).await {
            Ok(f) => match f.document {
                ManifestOrIndex::Manifest(m) => m.value().layers.clone(),
                ManifestOrIndex::Index(_) => Vec::new(),
            },
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut found = !layers.is_empty();
        for r in self.referrers(image, &digest).await? {
            if r.artifact_type.as_deref() != Some(SIGNATURE_ARTIFACT) {
                continue;
            }
            found = true;
            if let ManifestOrIndex::Manifest(m) = self
                .get_manifest(&image.with_digest(r.digest.clone()))
                .await?
                .document
            {
                layers.extend(m.value().layers.iter().cloned());
            }
        }
        if !found {
            return Err(SignatureError::Unsigned {
                image: image.to_string(),
                digest,
                tag: tag_name,
            });
        }
        let repo = self.repo(image);
        let mut reasons = Vec::new();
        let mut good = Vec::new();
        for l in layers.iter().filter(|l| l.media_type == SIMPLE_SIGNING) {
            match self.check_layer(&repo, l, public, &digest).await {
                Ok(v) => good.push(v),
                Err(why) => reasons.push(format!("{}: {why}", l.digest)),
            }
        }
        if good.is_empty() {
            if reasons.is_empty() {
                reasons.push(format!("{tag_name} holds no signature"));
            }
            return Err(SignatureError::NotVerified {
                image: image.to_string(),
                digest,
                key: key_name.to_owned(),
                reasons: reasons.join("; "),
            });
        }
        Ok(good)
    }

    /// One signature layer checked: its payload fetched (verified by digest), its
    /// signature verified, and the payload about `digest`.
    async fn check_layer(
        &self,
        repo: &crate::client::Repo,
        layer: &Descriptor,
        public: &[u8],
        digest: &Digest,
    ) -> std::result::Result<Verified, String> {
        let sig = layer
            .annotations
            .get(SIGNATURE_ANNOTATION)
            .ok_or("no signature annotation")?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .map_err(|e| format!("the signature is not base64: {e}"))?;
        let payload = self
            .get_blob_bytes(repo, layer)
            .await
            .map_err(|e| e.to_string())?;
        if !verify_payload(public, &payload, &sig) {
            return Err("the signature does not verify with this key".into());
        }
        let v: serde_json::Value = serde_json::from_slice(&payload)
            .map_err(|e| format!("the payload is not JSON: {e}"))?;
        let critical = &v["critical"];
        if critical["type"] != SIGNATURE_TYPE {
            return Err(format!("the payload's type is {}", critical["type"]));
        }
        let signed = critical["image"]["docker-manifest-digest"]
            .as_str()
            .unwrap_or_default();
        if signed != digest.to_string() {
            return Err(format!(
                "it signs {signed}, not the image's {digest} (the image was changed after it was signed)"
            ));
        }
        Ok(Verified {
            digest: digest.clone(),
            repository: critical["identity"]["docker-reference"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            payload: layer.digest.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_signatures_verify() {
        let (private, public) = generate_key_pair().unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let key = private_key(&private, "k.key").unwrap();
        let pubkey = public_key(&public, "k.pub").unwrap();
        let d = Digest::sha256(b"image");
        let p = payload("r.example/app", &d);
        let sig = sign_payload(&key, &p).unwrap();
        assert!(verify_payload(&pubkey, &p, &sig));
        let mut other = p.clone();
        other[10] ^= 1;
        assert!(!verify_payload(&pubkey, &other, &sig));
        let (_, stranger) = generate_key_pair().unwrap();
        assert!(!verify_payload(
            &public_key(&stranger, "s.pub").unwrap(),
            &p,
            &sig
        ));
    }

    #[test]
    fn encrypted_and_wrong_keys_are_named() {
        let e = private_key(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "cosign.key",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("cosign.key: an encrypted key"),
            "{e}"
        );
        let (_, public) = generate_key_pair().unwrap();
        let e = private_key(&public, "x.pub").unwrap_err();
        assert!(e.to_string().contains("not a private key"), "{e}");
        assert!(public_key("hello", "h").is_err());
    }
}
