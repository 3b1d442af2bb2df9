//! Why a configuration was refused: the one error every part of the configuration reports, kept
//! apart so those parts (mail, TLS, limits, ACME) need not import the whole configuration.

use std::path::PathBuf;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is not valid TOML of the expected shape.
    #[error("{path}: {message}")]
    File {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// Which setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}
