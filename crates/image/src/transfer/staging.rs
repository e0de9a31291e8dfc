//! Temporary files in `image_conversion_dir`: named after the backend so
//! that a volume service starting up removes what an earlier run of the
//! same backend left (Cinder's `cleanup_temporary_file`), and removed when
//! dropped so that no path out of a fetch or upload leaves one behind.

use std::path::{Path, PathBuf};

use crate::error::ImageError;

/// A temporary file removed when dropped (or by [`StagedFile::remove`]).
#[derive(Debug)]
pub(crate) struct StagedFile {
    path: PathBuf,
    removed: bool,
}

impl StagedFile {
    /// A new, empty file `clinker.<backend>.<purpose>-<uuid>` in `dir` (created
    /// with its parents, mode 0700, when missing).
    pub(crate) async fn create(
        dir: &Path,
        backend: &str,
        purpose: &str,
    ) -> Result<Self, ImageError> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = dir.to_path_buf();
        let created = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&created)
        })
        .await
        .map_err(|e| ImageError::io("staging", std::io::Error::other(e)))?
        .map_err(|e| ImageError::io(format!("cannot create {}", dir.display()), e))?;
        let path = dir.join(format!(
            "{}{purpose}-{}",
            prefix(backend),
            uuid::Uuid::new_v4()
        ));
        tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| ImageError::io(format!("cannot create {}", path.display()), e))?;
        Ok(Self {
            path,
            removed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file now (without blocking the runtime).
    pub(crate) async fn remove(mut self) {
        self.removed = true;
        if let Err(e) = tokio::fs::remove_file(&self.path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove staged image file");
        }
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        // An error or a cancelled task: one unlink, whatever the state.
        if !self.removed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn prefix(backend: &str) -> String {
    // Backend names never contain a dot, so one prefix never matches
    // another backend's files.
    format!("clinker.{backend}.")
}

/// Removes the staged files an earlier run of `backend` left in `dir`
/// (call at start-up, before any transfer runs). Returns how many.
///
/// # Errors
/// `dir` exists but cannot be listed.
pub async fn cleanup_conversion_dir(dir: &Path, backend: &str) -> Result<usize, ImageError> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(ImageError::io(format!("cannot list {}", dir.display()), e)),
    };
    let prefix = prefix(backend);
    let mut removed = 0;
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| ImageError::io(format!("cannot list {}", dir.display()), e))?
    {
        if entry.file_name().to_string_lossy().starts_with(&prefix)
            && tokio::fs::remove_file(entry.path()).await.is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}
