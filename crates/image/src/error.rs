//! The crate's one error type, classified where each error arises into
//! Clinker's [`ErrorKind`], with Cinder's exception texts (they reach users
//! through fault bodies and user messages).

use clinker_types::ErrorKind;

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Glance answered 404 (Cinder's `ImageNotFound`).
    #[error("Image {image_id} could not be found.")]
    NotFound {
        /// The image.
        image_id: String,
    },
    /// Glance answered 401 or 403 (Cinder's `ImageNotAuthorized`).
    #[error("Not authorized for image {image_id}.")]
    NotAuthorized {
        /// The image.
        image_id: String,
    },
    /// Glance refused the request as invalid (400; Cinder's `Invalid`).
    #[error("{0}")]
    Invalid(String),
    /// Glance refused for lack of room (413; Cinder's `ImageLimitExceeded`).
    #[error("Image quota exceeded")]
    LimitExceeded,
    /// Glance answered 409: the image is not in a state for this request.
    #[error("{0}")]
    Conflict(String),
    /// No Glance server answered after the retries (connection errors,
    /// 5xx; Cinder's `GlanceConnectionFailed`).
    #[error("Connection to glance failed: {0}")]
    ConnectionFailed(String),
    /// The image data could not be read completely or did not match its
    /// checksum (Cinder's `ImageDownloadFailed`).
    #[error("Failed to download image {image_id}, reason: {reason}")]
    DownloadFailed {
        /// The image.
        image_id: String,
        /// Why.
        reason: String,
        /// Whether trying again (elsewhere) could help: a transport
        /// failure, not corrupt data.
        transient: bool,
    },
    /// The image data may not be written to a volume (Cinder's
    /// `ImageUnacceptable`).
    #[error("Image {image_id} is unacceptable: {reason}")]
    Unacceptable {
        /// The image.
        image_id: String,
        /// Cinder's reason.
        reason: String,
    },
    /// `qemu-img` failed (Cinder's `ImageCopyFailure` for the volume path).
    #[error("Failed to copy image to volume: {0}")]
    Conversion(String),
    /// No space left where the image is staged (Cinder's `ImageTooBig`).
    #[error("Image {image_id} size exceeded available disk space: {reason}")]
    TooBig {
        /// The image.
        image_id: String,
        /// Where space ran out.
        reason: String,
    },
    /// A local file operation failed (staging, the destination).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The Glance endpoint cannot be determined or used (configuration).
    #[error("{0}")]
    Config(String),
}

impl ImageError {
    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NotFound { .. } => ErrorKind::NotFound,
            ImageError::NotAuthorized { .. } => ErrorKind::Forbidden,
            ImageError::Invalid(_) | ImageError::Unacceptable { .. } => ErrorKind::InvalidInput,
            ImageError::LimitExceeded => ErrorKind::OverQuota,
            ImageError::Conflict(_) => ErrorKind::Conflict,
            ImageError::ConnectionFailed(_) | ImageError::TooBig { .. } => ErrorKind::Unavailable,
            ImageError::DownloadFailed { transient, .. } => {
                if *transient {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::Internal
                }
            }
            ImageError::Conversion(_) | ImageError::Io { .. } | ImageError::Config(_) => {
                ErrorKind::Internal
            }
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }
}
