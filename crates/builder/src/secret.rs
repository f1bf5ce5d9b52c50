//! A secret's bytes, as steps receive them (`RUN --mount=type=secret`).

use std::sync::Arc;

use export::output::SpecError;

/// A secret's bytes. `Debug` never shows them.
#[derive(Clone)]
pub struct Secret(pub Arc<Vec<u8>>);

/// On the wire, the bytes as they are (a sequence of bytes, as a `Vec<u8>` is).
impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.as_slice().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(d).map(|v| Secret(Arc::new(v)))
    }
}

impl Secret {
    /// `--secret id=ID[,src=FILE|,env=VAR]`: the id and the value, read from the
    /// file, the variable, or the variable named by the id.
    pub fn from_flag(spec: &str) -> Result<(String, Secret), SpecError> {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        for field in spec.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_owned()),
                Some(("src" | "source", v)) => src = Some(v.to_owned()),
                Some(("env", v)) => env = Some(v.to_owned()),
                Some(("type", "file" | "env")) => {}
                _ => {
                    return Err(SpecError::new(
                        format!("invalid --secret {spec:?}: unknown field {field:?}"),
                        "write --secret id=ID,src=FILE or --secret id=ID,env=VAR",
                    ));
                }
            }
        }
        let id = id.or_else(|| src.clone()).ok_or_else(|| {
            SpecError::new(
                format!("invalid --secret {spec:?}: no id"),
                "write --secret id=ID,src=FILE",
            )
        })?;
        let value = match (src, env) {
            (Some(path), _) => std::fs::read(&path).map_err(|e| {
                SpecError::new(format!("cannot read secret {id:?} from {path}: {e}"), "")
            })?,
            (None, Some(var)) => std::env::var_os(&var)
                .ok_or_else(|| {
                    SpecError::new(
                        format!("secret {id:?}: environment variable {var} is not set"),
                        "",
                    )
                })?
                .into_encoded_bytes(),
            (None, None) => std::env::var_os(&id)
                .ok_or_else(|| {
                    SpecError::new(
                        format!(
                            "secret {id:?}: no src= or env= given and no environment variable {id}"
                        ),
                        "",
                    )
                })?
                .into_encoded_bytes(),
        };
        Ok((id, Secret(Arc::new(value))))
    }
}

/// Equal bytes (requests are compared in tests of the wire).
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.0 == other.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_shows_no_bytes_and_the_wire_carries_them() {
        let s = super::Secret(std::sync::Arc::new(b"hunter2".to_vec()));
        assert_eq!(format!("{s:?}"), "Secret(..)");
        let wire = serde_json::to_string(&s).unwrap();
        assert_eq!(wire, serde_json::to_string(&b"hunter2".to_vec()).unwrap());
        let back: super::Secret = serde_json::from_str(&wire).unwrap();
        assert_eq!(*back.0, b"hunter2");
    }
}
