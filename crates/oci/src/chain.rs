//! An error and its causes on one line, as every crate of manifold reports them.

use std::error::Error;

/// Every message in an error chain, joined by `: ` (`cannot push: connection refused`).
pub fn error_chain(error: &dyn Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);

    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for E {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[test]
    fn joins_every_cause_in_order() {
        let e = E(
            "cannot push",
            Some(Box::new(E(
                "upload failed",
                Some(Box::new(E("reset", None))),
            ))),
        );
        assert_eq!(error_chain(&e), "cannot push: upload failed: reset");
        assert_eq!(error_chain(&E("alone", None)), "alone");
    }
}
