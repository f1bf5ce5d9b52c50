//! The build-check rules: stable names, descriptions and documentation URLs,
//! as BuildKit publishes them.

use std::fmt;

macro_rules! rules {
    ($($variant:ident, $kebab:literal, $experimental:literal, $description:literal;)*) => {
        /// One of BuildKit's build-check rules.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule {
            $($variant,)*
        }

        impl Rule {
            /// Every rule, in BuildKit's documentation order.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            /// The stable name (`StageNameCasing`), as used by `# check=skip=`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Rule::$variant => stringify!($variant),)*
                }
            }

            /// The kebab-case name used in the documentation URL.
            pub fn kebab_name(self) -> &'static str {
                match self {
                    $(Rule::$variant => $kebab,)*
                }
            }

            /// The one-line description of what the rule wants.
            pub fn description(self) -> &'static str {
                match self {
                    $(Rule::$variant => $description,)*
                }
            }

            /// Experimental rules run only when named by `experimental=`.
            pub fn is_experimental(self) -> bool {
                match self {
                    $(Rule::$variant => $experimental,)*
                }
            }
        }
    };
}

rules! {
    StageNameCasing, "stage-name-casing", false,
        "Stage names should be lowercase";
    FromAsCasing, "from-as-casing", false,
        "The 'as' keyword should match the case of the 'from' keyword";
    NoEmptyContinuation, "no-empty-continuation", false,
        "Empty continuation lines will become errors in a future release";
    ConsistentInstructionCasing, "consistent-instruction-casing", false,
        "All commands within the Dockerfile should use the same casing (either upper or lower)";
    DuplicateStageName, "duplicate-stage-name", false,
        "Stage names should be unique";
    ReservedStageName, "reserved-stage-name", false,
        "Reserved words should not be used as stage names";
    JSONArgsRecommended, "json-args-recommended", false,
        "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals";
    MaintainerDeprecated, "maintainer-deprecated", false,
        "The MAINTAINER instruction is deprecated, use a label instead to define an image author";
    UndefinedArgInFrom, "undefined-arg-in-from", false,
        "FROM command must use declared ARGs";
    WorkdirRelativePath, "workdir-relative-path", false,
        "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes";
    UndefinedVar, "undefined-var", false,
        "Variables should be defined before their use";
    MultipleInstructionsDisallowed, "multiple-instructions-disallowed", false,
        "Multiple instructions of the same type should not be used in the same stage";
    LegacyKeyValueFormat, "legacy-key-value-format", false,
        "Legacy key/value format with whitespace separator should not be used";
    InvalidBaseImagePlatform, "invalid-base-image-platform", false,
        "Base image platform does not match expected target platform";
    RedundantTargetPlatform, "redundant-target-platform", false,
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior";
    SecretsUsedInArgOrEnv, "secrets-used-in-arg-or-env", false,
        "Sensitive data should not be used in the ARG or ENV commands";
    InvalidDefaultArgInFrom, "invalid-default-arg-in-from", false,
        "Default value for global ARG results in an empty or invalid base image name";
    FromPlatformFlagConstDisallowed, "from-platform-flag-const-disallowed", false,
        "FROM --platform flag should not use a constant value";
    CopyIgnoredFile, "copy-ignored-file", false,
        "Attempting to Copy file that is excluded by .dockerignore";
    InvalidDefinitionDescription, "invalid-definition-description", true,
        "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.";
    ExposeProtoCasing, "expose-proto-casing", false,
        "Protocol in EXPOSE instruction should be lowercase";
    ExposeInvalidFormat, "expose-invalid-format", false,
        "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release";
}

impl Rule {
    /// The rule named `name` (exact, case-sensitive, like BuildKit).
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.name() == name)
    }

    /// `https://docs.docker.com/go/dockerfile/rule/<kebab-name>/`.
    pub fn url(self) -> String {
        format!(
            "https://docs.docker.com/go/dockerfile/rule/{}/",
            self.kebab_name()
        )
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for r in Rule::ALL {
            assert_eq!(Rule::from_name(r.name()), Some(*r));
            assert!(r.url().ends_with(&format!("/{}/", r.kebab_name())));
        }
        assert_eq!(Rule::ALL.len(), 22);
        assert_eq!(Rule::from_name("stagenamecasing"), None);
    }
}
