//! Cinder's POSIX driver layout (`cinder/backup/drivers/posix.py`): the
//! container is a directory under `backup_posix_path` (mode 0770 on the
//! last component), each object a file in it (mode 0660).
//!
//! An object is written to `<name>.partial` in the same directory, synced
//! and renamed, so a crash never leaves a truncated object under its real
//! name; the `.partial` file shares the backup's prefix, so deleting the
//! backup (here or in Cinder) removes it too.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::ObjectStore;
use crate::error::StoreError;

/// Directory mode Cinder sets on a new container (`S_IRWXU | S_IRWXG`).
const CONTAINER_MODE: u32 = 0o770;
/// File mode Cinder sets on a new object (`S_IRUSR | S_IWUSR | S_IRGRP |
/// S_IWGRP`).
const OBJECT_MODE: u32 = 0o660;

/// Objects as files under a directory (`backup_posix_path`).
#[derive(Clone, Debug)]
pub struct PosixStore {
    root: PathBuf,
}

impl PosixStore {
    /// A store rooted at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory of a container. Container and object names come from
    /// the backup row and the API; nothing may climb out of the root.
    fn dir(&self, container: &str) -> Result<PathBuf, StoreError> {
        let relative = Path::new(container);
        if container.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(StoreError::Config(format!(
                "container {container:?} is not a relative path below backup_posix_path"
            )));
        }
        Ok(self.root.join(relative))
    }

    fn object(&self, container: &str, name: &str) -> Result<PathBuf, StoreError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(StoreError::Config(format!(
                "object name {name:?} is not a file name"
            )));
        }
        Ok(self.dir(container)?.join(name))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("file task failed: {e}")))?
}

#[async_trait]
impl ObjectStore for PosixStore {
    async fn ensure_container(&self, container: &str, create: bool) -> Result<(), StoreError> {
        let dir = self.dir(container)?;
        blocking(move || {
            if dir.is_dir() {
                return Ok(());
            }
            if !create {
                return Err(StoreError::NotFound {
                    what: dir.display().to_string(),
                });
            }
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(CONTAINER_MODE))
                .map_err(|e| StoreError::io(&dir, e))
        })
        .await
    }

    async fn put_object_with_md5(
        &self,
        container: &str,
        name: &str,
        data: Bytes,
        md5: &str,
    ) -> Result<(), StoreError> {
        self.put_object_parts(container, name, vec![data], md5)
            .await
    }

    async fn put_object_parts(
        &self,
        container: &str,
        name: &str,
        parts: Vec<Bytes>,
        // The bytes never leave this process: there is no transport to
        // check the MD5 against (the engine computed it from these buffers).
        _md5: &str,
    ) -> Result<(), StoreError> {
        let path = self.object(container, name)?;
        blocking(move || {
            use std::io::Write;
            let partial = path.with_file_name(format!(
                "{}.partial",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            let io = |e| StoreError::io(&partial, e);
            let mut file = std::fs::File::create(&partial).map_err(io)?;
            file.set_permissions(std::fs::Permissions::from_mode(OBJECT_MODE))
                .map_err(io)?;
            for part in &parts {
                file.write_all(part).map_err(io)?;
            }
            file.sync_data().map_err(io)?;
            drop(file);
            std::fs::rename(&partial, &path).map_err(|e| StoreError::io(&path, e))
        })
        .await
    }

    async fn get_object(&self, container: &str, name: &str) -> Result<Bytes, StoreError> {
        let path = self.object(container, name)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound {
                what: format!("{container}/{name}"),
            }),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    async fn delete_object(&self, container: &str, name: &str) -> Result<(), StoreError> {
        let path = self.object(container, name)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io(&path, e)),
            _ => Ok(()),
        }
    }

    async fn list_objects(&self, container: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let dir = self.dir(container)?;
        let prefix = prefix.to_owned();
        blocking(move || {
            let entries = std::fs::read_dir(&dir).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StoreError::NotFound {
                    what: dir.display().to_string(),
                },
                _ => StoreError::io(&dir, e),
            })?;
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
                if let Some(name) = entry.file_name().to_str()
                    && name.starts_with(&prefix)
                {
                    names.push(name.to_owned());
                }
            }
            names.sort();
            Ok(names)
        })
        .await
    }

    /// Removes the container's directory and its parents up to the root
    /// when they are empty (Cinder leaves them; a backup's own
    /// `xx/yy/<id>` directory has no other use).
    async fn tidy_container(&self, container: &str) -> Result<(), StoreError> {
        let mut dir = self.dir(container)?;
        while dir != self.root && dir.starts_with(&self.root) {
            // Not empty (or already gone): stop climbing.
            if tokio::fs::remove_dir(&dir).await.is_err() || !dir.pop() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn layout_and_modes_are_cinders() {
        let root = tempfile::tempdir().unwrap();
        let store = PosixStore::new(root.path());
        store.ensure_container("ab/cd/abcd", true).await.unwrap();
        let dir = root.path().join("ab/cd/abcd");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o770);
        store
            .put_object("ab/cd/abcd", "p-00001", Bytes::from_static(b"data"))
            .await
            .unwrap();
        assert_eq!(mode(&dir.join("p-00001")), 0o660);
        assert_eq!(std::fs::read(dir.join("p-00001")).unwrap(), b"data");
        store
            .put_object("ab/cd/abcd", "q_metadata", Bytes::new())
            .await
            .unwrap();
        assert_eq!(
            store.list_objects("ab/cd/abcd", "p").await.unwrap(),
            ["p-00001"]
        );
        assert_eq!(
            store.get_object("ab/cd/abcd", "p-00001").await.unwrap(),
            &b"data"[..]
        );
        store.delete_object("ab/cd/abcd", "p-00001").await.unwrap();
        store.delete_object("ab/cd/abcd", "p-00001").await.unwrap();
        assert!(matches!(
            store.get_object("ab/cd/abcd", "p-00001").await,
            Err(StoreError::NotFound { .. })
        ));
        store
            .delete_object("ab/cd/abcd", "q_metadata")
            .await
            .unwrap();
        store.tidy_container("ab/cd/abcd").await.unwrap();
        assert!(!root.path().join("ab").exists());
        assert!(root.path().exists());
    }

    #[tokio::test]
    async fn names_cannot_escape_the_root() {
        let store = PosixStore::new("/nonexistent-root");
        for container in ["../x", "/etc", "a/../../b", ""] {
            assert!(matches!(
                store.ensure_container(container, true).await,
                Err(StoreError::Config(_))
            ));
        }
        assert!(store.get_object("c", "../passwd").await.is_err());
        assert!(matches!(
            store.ensure_container("missing", false).await,
            Err(StoreError::NotFound { .. })
        ));
    }
}
