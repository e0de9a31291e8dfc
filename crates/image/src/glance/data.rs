//! Image data in flight: the download stream that checks what it carries,
//! and the upload body.

use std::path::PathBuf;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use md5::Md5;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::ImageMeta;
use crate::error::ImageError;

/// Read size of upload bodies.
const UPLOAD_CHUNK: usize = 1 << 20;

/// A running hash of one of the algorithms Glance uses.
#[derive(Debug)]
enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    fn for_algo(algo: &str) -> Option<Self> {
        Some(match algo {
            "md5" => Hasher::Md5(Md5::new()),
            "sha256" => Hasher::Sha256(Sha256::new()),
            "sha384" => Hasher::Sha384(Sha384::new()),
            "sha512" => Hasher::Sha512(Sha512::new()),
            _ => return None,
        })
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha384(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    fn hex(self) -> String {
        let digest: Vec<u8> = match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What the data is checked against, as glanceclient does: the multihash
/// (`os_hash_algo` / `os_hash_value`) when its algorithm is known, else the
/// legacy MD5 `checksum`.
#[derive(Debug)]
struct Verifier {
    hasher: Hasher,
    expected: String,
    /// glanceclient's wording differs between the two.
    what: &'static str,
}

impl Verifier {
    fn for_image(image: &ImageMeta) -> Option<Self> {
        if let (Some(algo), Some(value)) = (&image.os_hash_algo, &image.os_hash_value)
            && let Some(hasher) = Hasher::for_algo(algo)
        {
            return Some(Self {
                hasher,
                expected: value.to_ascii_lowercase(),
                what: "Hash",
            });
        }
        let checksum = image.checksum.as_ref()?;
        Some(Self {
            hasher: Hasher::Md5(Md5::new()),
            expected: checksum.to_ascii_lowercase(),
            what: "Checksum",
        })
    }
}

/// An image's data as it arrives from Glance, checked as it flows: read it
/// with [`ImageData::chunk`] until `None`. The last call fails when the
/// hash or the length does not match.
#[derive(Debug)]
pub struct ImageData {
    response: reqwest::Response,
    image_id: String,
    verifier: Option<Verifier>,
    expected_size: Option<u64>,
    received: u64,
    done: bool,
}

impl ImageData {
    pub(super) fn new(response: reqwest::Response, image: &ImageMeta) -> Self {
        let verifier = Verifier::for_image(image);
        if verifier.is_none() {
            tracing::warn!(
                image_id = %image.id,
                "image has neither a known os_hash_algo nor a checksum; its data is not verified"
            );
        }
        Self {
            response,
            image_id: image.id.clone(),
            verifier,
            expected_size: image.size,
            received: 0,
            done: false,
        }
    }

    fn failed(&self, reason: String, transient: bool) -> ImageError {
        ImageError::DownloadFailed {
            image_id: self.image_id.clone(),
            reason,
            transient,
        }
    }

    /// The next chunk, or `None` after the last byte once it was verified.
    ///
    /// # Errors
    /// [`ImageError::DownloadFailed`]: the transfer broke (transient), or
    /// the data's hash or length differs from the image's (not transient).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ImageError> {
        if self.done {
            return Ok(None);
        }
        match self.response.chunk().await {
            Ok(Some(bytes)) => {
                self.received += bytes.len() as u64;
                if let Some(v) = self.verifier.as_mut() {
                    v.hasher.update(&bytes);
                }
                Ok(Some(bytes))
            }
            Ok(None) => {
                self.done = true;
                self.finish().map(|()| None)
            }
            Err(e) => {
                self.done = true;
                Err(self.failed(format!("IOError: {e}"), true))
            }
        }
    }

    fn finish(&mut self) -> Result<(), ImageError> {
        if let Some(expected) = self.expected_size
            && expected != self.received
        {
            return Err(self.failed(
                format!(
                    "Corrupt image download. Size was {} expected {expected}",
                    self.received
                ),
                false,
            ));
        }
        if let Some(verifier) = self.verifier.take() {
            let got = verifier.hasher.hex();
            if got != verifier.expected {
                return Err(self.failed(
                    format!(
                        "Corrupt image download. {} was {got} expected {}",
                        verifier.what, verifier.expected
                    ),
                    false,
                ));
            }
        }
        Ok(())
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The image being downloaded.
    pub fn image_id(&self) -> &str {
        &self.image_id
    }
}

/// Data to upload as an image's content.
pub enum UploadData {
    /// A file (or block device) read from the start; sent again on a
    /// retry. Its length is read from the file (a block device's size from
    /// seeking to its end).
    File(PathBuf),
    /// A reader of exactly `length` bytes, sent once.
    Reader {
        /// The data.
        reader: Box<dyn AsyncRead + Send + Unpin>,
        /// Its length in bytes.
        length: u64,
    },
}

impl std::fmt::Debug for UploadData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadData::File(path) => f.debug_tuple("File").field(path).finish(),
            UploadData::Reader { length, .. } => {
                f.debug_struct("Reader").field("length", length).finish()
            }
        }
    }
}

fn body_of(reader: Box<dyn AsyncRead + Send + Unpin>, length: u64) -> reqwest::Body {
    // Exactly `length` bytes: a reader that yields more would break the
    // announced Content-Length.
    let limited = reader.take(length);
    let stream = futures_util::stream::unfold(limited, |mut reader| async move {
        let mut buf = BytesMut::with_capacity(UPLOAD_CHUNK);
        match reader.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok::<Bytes, std::io::Error>(buf.freeze()), reader)),
            Err(e) => Some((Err(e), reader)),
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// The body of one upload attempt from `slot`: a file is opened afresh
/// and stays for the next attempt, a reader is taken.
pub(super) fn attempt_body(
    slot: &Mutex<Option<UploadData>>,
) -> Result<(u64, reqwest::Body), ImageError> {
    let mut slot = slot
        .lock()
        .map_err(|_| ImageError::ConnectionFailed("upload state poisoned".into()))?;
    match slot.take() {
        Some(UploadData::File(path)) => {
            use std::io::{Seek, SeekFrom};
            let mut file = std::fs::File::open(&path)
                .map_err(|e| ImageError::io(format!("cannot open {}", path.display()), e))?;
            let length = file
                .seek(SeekFrom::End(0))
                .and_then(|len| file.seek(SeekFrom::Start(0)).map(|_| len))
                .map_err(|e| ImageError::io(format!("cannot size {}", path.display()), e))?;
            let body = body_of(Box::new(tokio::fs::File::from_std(file)), length);
            *slot = Some(UploadData::File(path));
            Ok((length, body))
        }
        Some(UploadData::Reader { reader, length }) => Ok((length, body_of(reader, length))),
        None => Err(ImageError::ConnectionFailed(
            "the upload stream was consumed by a failed attempt".into(),
        )),
    }
}
