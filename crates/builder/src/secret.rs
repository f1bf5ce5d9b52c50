//! A secret's bytes, as steps receive them (`RUN --mount=type=secret`).

use std::sync::Arc;

/// A secret's bytes. `Debug` never shows them.
#[derive(Clone)]
pub struct Secret(pub Arc<Vec<u8>>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_shows_no_bytes() {
        let s = super::Secret(std::sync::Arc::new(b"hunter2".to_vec()));
        assert_eq!(format!("{s:?}"), "Secret(..)");
    }
}
