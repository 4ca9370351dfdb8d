//! Typed errors of the library; `main` maps them to exit codes (contract 4.1).

use thiserror::Error;

#[derive(Error, Debug)]
pub enum Error {
    /// Usage or configuration error: exit 2, nothing written.
    #[error("{0}")]
    Usage(String),
    /// A role that may see nothing, or a policy that cannot be applied: exit 2, nothing written.
    #[error("permission denied: {0}")]
    Permission(String),
    /// More bad input than `--max-bad-ratio` allows: exit 3, nothing published.
    #[error("too much bad input: {0}")]
    TooMuchBadInput(String),
    #[error("object store error on {location}: {source}")]
    Store {
        location: String,
        #[source]
        source: object_store::Error,
    },
    #[error("data processing error: {0}")]
    Polars(#[from] polars::error::PolarsError),
    /// Another run holds the output lease.
    #[error("output is locked: {0}")]
    Locked(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    pub fn store(location: impl Into<String>, source: object_store::Error) -> Self {
        Error::Store {
            location: location.into(),
            source,
        }
    }

    /// Exit status of contract 4.1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Permission(_) => 2,
            Error::TooMuchBadInput(_) => 3,
            // Missing prefixes and refused credentials are configuration errors.
            Error::Store {
                source:
                    object_store::Error::NotFound { .. }
                    | object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. },
                ..
            } => 2,
            _ => 1,
        }
    }
}
