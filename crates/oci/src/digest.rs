//! Content digests (`<algorithm>:<hex>`), validated when parsed.
//!
//! Only the algorithms of the OCI image spec that registries use are known:
//! sha256 and sha512. Hex must be lowercase and of the algorithm's exact length,
//! so a digest can be turned into a path (`blobs/<alg>/<hex>`) without any further
//! check: `sha256:../x` never parses.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// A digest algorithm known to manifold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as written in a digest string.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the encoded (hex) part.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    #[error("invalid digest: empty string")]
    Empty,
    #[error("invalid digest {0:?}: missing ':' between algorithm and hex")]
    MissingSeparator(String),
    #[error(
        "invalid digest {input:?}: unsupported algorithm {algorithm:?} (known: sha256, sha512)"
    )]
    UnknownAlgorithm { input: String, algorithm: String },
    #[error("invalid digest {input:?}: {algorithm} needs {expected} hex characters, found {found}")]
    BadLength {
        input: String,
        algorithm: Algorithm,
        expected: usize,
        found: usize,
    },
    #[error("invalid digest {input:?}: only lowercase hex [0-9a-f] is allowed after ':'")]
    BadHex { input: String },
}

/// A validated content digest such as `sha256:e3b0…`.
///
/// **Invariant**: the hex part is lowercase and exactly `algorithm.hex_len()` long,
/// so `Digest` is safe to use as a file name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parse and validate `<algorithm>:<hex>`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        if s.is_empty() {
            return Err(DigestError::Empty);
        }
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::MissingSeparator(s.to_owned()))?;
        let algorithm = Algorithm::from_name(alg).ok_or_else(|| DigestError::UnknownAlgorithm {
            input: s.to_owned(),
            algorithm: alg.to_owned(),
        })?;
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::BadHex {
                input: s.to_owned(),
            });
        }
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::BadLength {
                input: s.to_owned(),
                algorithm,
                expected: algorithm.hex_len(),
                found: hex.len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Self {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(bytes);
        h.finish()
    }

    /// The digest of `bytes` with `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut h = Hasher::new(algorithm);
        h.update(bytes);
        h.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part (safe as a file name).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A short form for humans: the first 12 hex characters.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Incremental hashing for any known algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hasher({})", self.algorithm())
    }
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const E3: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256_of_empty_is_well_known() {
        assert_eq!(Digest::sha256(b"").to_string(), format!("sha256:{E3}"));
    }

    #[test]
    fn sha512_of_empty_is_well_known() {
        let d = Digest::of(Algorithm::Sha512, b"");
        assert!(d.hex().starts_with("cf83e1357eefb8bdf1542850d66d8007"));
        assert_eq!(d.hex().len(), 128);
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
    }

    #[rstest]
    #[case::sha256(&format!("sha256:{E3}"))]
    #[case::sha512(&format!("sha512:{}", "ab".repeat(64)))]
    #[case::sha256_digits(&format!("sha256:{}", "0".repeat(64)))]
    fn valid(#[case] s: &str) {
        let d = Digest::parse(s).unwrap();
        assert_eq!(d.to_string(), s);
    }

    #[rstest]
    #[case::empty("", DigestError::Empty)]
    #[case::no_colon(E3, DigestError::MissingSeparator(E3.into()))]
    #[case::dotdot("sha256:../x", DigestError::BadHex { input: "sha256:../x".into() })]
    #[case::unknown_alg(&format!("md5:{E3}"), DigestError::UnknownAlgorithm { input: format!("md5:{E3}"), algorithm: "md5".into() })]
    #[case::upper_alg(&format!("SHA256:{E3}"), DigestError::UnknownAlgorithm { input: format!("SHA256:{E3}"), algorithm: "SHA256".into() })]
    #[case::upper_hex(&format!("sha256:{}", E3.to_uppercase()), DigestError::BadHex { input: format!("sha256:{}", E3.to_uppercase()) })]
    #[case::short(&format!("sha256:{}", &E3[..63]), DigestError::BadLength { input: format!("sha256:{}", &E3[..63]), algorithm: Algorithm::Sha256, expected: 64, found: 63 })]
    #[case::long(&format!("sha256:{E3}0"), DigestError::BadLength { input: format!("sha256:{E3}0"), algorithm: Algorithm::Sha256, expected: 64, found: 65 })]
    #[case::sha512_with_sha256_len(&format!("sha512:{E3}"), DigestError::BadLength { input: format!("sha512:{E3}"), algorithm: Algorithm::Sha512, expected: 128, found: 64 })]
    #[case::empty_hex("sha256:", DigestError::BadLength { input: "sha256:".into(), algorithm: Algorithm::Sha256, expected: 64, found: 0 })]
    #[case::empty_alg(&format!(":{E3}"), DigestError::UnknownAlgorithm { input: format!(":{E3}"), algorithm: "".into() })]
    #[case::slash(&format!("sha256:{}/", &E3[..63]), DigestError::BadHex { input: format!("sha256:{}/", &E3[..63]) })]
    #[case::space(&format!("sha256: {}", &E3[..63]), DigestError::BadHex { input: format!("sha256: {}", &E3[..63]) })]
    #[case::nul(&format!("sha256:{}\0", &E3[..63]), DigestError::BadHex { input: format!("sha256:{}\0", &E3[..63]) })]
    #[case::non_hex_letter(&format!("sha256:{}g", &E3[..63]), DigestError::BadHex { input: format!("sha256:{}g", &E3[..63]) })]
    #[case::double_colon(&format!("sha256::{}", &E3[..63]), DigestError::BadHex { input: format!("sha256::{}", &E3[..63]) })]
    fn invalid(#[case] s: &str, #[case] want: DigestError) {
        assert_eq!(Digest::parse(s).unwrap_err(), want);
    }

    #[test]
    fn serde_round_trip_and_rejects_invalid() {
        let d = Digest::sha256(b"x");
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&j).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:../x\"").is_err());
    }

    #[test]
    fn incremental_equals_one_shot() {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), Digest::sha256(b"hello world"));
    }
}
