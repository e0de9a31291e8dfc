//! Volume type encryption specs ([`EncryptionRepository`], Cinder's
//! `volume_type_encryption_*` db API) and the key id an encrypted volume
//! gets at create time.
//!
//! Cinder refuses to create, change or remove a type's encryption while
//! volumes use the type; here that check runs in the same transaction as
//! the change, so a concurrent create cannot slip between them.

use clinker_types::volume_type_extras::{
    ControlLocation, VolumeTypeEncryption, new_encryption_key_id,
};
use clinker_types::{Timestamp, VolumeTypeId};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::DbError;
use crate::pool::{Db, in_transaction};
use crate::query::{Arg, bind_all};

/// Encryption specs to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEncryption {
    /// The encryptor.
    pub provider: String,
    /// The cipher.
    pub cipher: Option<String>,
    /// Key size in bits.
    pub key_size: Option<i64>,
    /// Who decrypts.
    pub control_location: ControlLocation,
}

/// Fields an update changes (`None`: unchanged; for the nullable ones
/// `Some(None)` clears).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncryptionUpdate {
    /// New encryptor.
    pub provider: Option<String>,
    /// New cipher.
    pub cipher: Option<Option<String>>,
    /// New key size.
    pub key_size: Option<Option<i64>>,
    /// New control location.
    pub control_location: Option<ControlLocation>,
}

/// Encryption repository.
#[async_trait::async_trait]
pub trait EncryptionRepository {
    /// The encryption specs of a type, if it has any.
    ///
    /// # Errors
    /// Database failures.
    async fn get_type_encryption(
        &self,
        volume_type_id: VolumeTypeId,
    ) -> Result<Option<VolumeTypeEncryption>, DbError>;

    /// Makes a type encrypted.
    ///
    /// # Errors
    /// [`DbError::NotFound`] (type), [`DbError::InvalidState`] while volumes
    /// use the type, [`DbError::Conflict`] when it is encrypted already.
    async fn create_type_encryption(
        &self,
        volume_type_id: VolumeTypeId,
        new: NewEncryption,
    ) -> Result<VolumeTypeEncryption, DbError>;

    /// Changes a type's encryption specs.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] while volumes use the type,
    /// [`DbError::NotFound`] when the type has no encryption.
    async fn update_type_encryption(
        &self,
        volume_type_id: VolumeTypeId,
        update: EncryptionUpdate,
    ) -> Result<VolumeTypeEncryption, DbError>;

    /// Makes a type unencrypted.
    ///
    /// # Errors
    /// [`DbError::InvalidState`] while volumes use the type,
    /// [`DbError::NotFound`] when the type has no encryption.
    async fn delete_type_encryption(&self, volume_type_id: VolumeTypeId) -> Result<(), DbError>;
}

const ENCRYPTION_COLUMNS: &str = "volume_type_id, encryption_id, provider, cipher, key_size, control_location, created_at, updated_at";

fn decode(row: &AnyRow) -> Result<VolumeTypeEncryption, DbError> {
    let get = |e: sqlx::Error| DbError::Internal(format!("encryption row: {e}"));
    let type_id: String = row.try_get("volume_type_id").map_err(get)?;
    let location: String = row.try_get("control_location").map_err(get)?;
    Ok(VolumeTypeEncryption {
        volume_type_id: type_id
            .parse()
            .map_err(|_| DbError::Internal(format!("corrupt volume type id {type_id:?}")))?,
        encryption_id: row.try_get("encryption_id").map_err(get)?,
        provider: row.try_get("provider").map_err(get)?,
        cipher: row.try_get("cipher").map_err(get)?,
        key_size: row.try_get("key_size").map_err(get)?,
        control_location: location
            .parse()
            .map_err(|_| DbError::Internal(format!("corrupt control location {location:?}")))?,
        created_at: Timestamp(row.try_get("created_at").map_err(get)?),
        updated_at: row
            .try_get::<Option<i64>, _>("updated_at")
            .map_err(get)?
            .map(Timestamp),
    })
}

impl Db {
    /// Refuses a change of a type's encryption while volumes use the type
    /// (Cinder's `_encrypted_type_in_use`). Locks the type row so a create
    /// of a volume of that type waits or is seen.
    async fn ensure_type_unused_for_encryption(
        &self,
        conn: &mut AnyConnection,
        volume_type_id: VolumeTypeId,
    ) -> Result<(), DbError> {
        let lock = format!(
            "SELECT id FROM volume_types WHERE id = ?{}",
            self.dialect.for_update()
        );
        let sql = self.dynamic(lock);
        let found: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(volume_type_id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_none() {
            return Err(DbError::not_found("volume type", volume_type_id));
        }
        let users: i64 =
            sqlx::query_scalar(self.q("SELECT COUNT(*) FROM volumes WHERE volume_type_id = ?"))
                .bind(volume_type_id.to_string())
                .fetch_one(&mut *conn)
                .await?;
        if users > 0 {
            return Err(DbError::InvalidState(format!(
                "volume type {volume_type_id} is used by {users} volumes"
            )));
        }
        Ok(())
    }

    async fn read_type_encryption(
        &self,
        conn: &mut AnyConnection,
        volume_type_id: VolumeTypeId,
    ) -> Result<Option<VolumeTypeEncryption>, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {ENCRYPTION_COLUMNS} FROM encryption WHERE volume_type_id = ?"
        ));
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(volume_type_id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    /// Share-locks the type row of a volume being created, inside the
    /// create's transaction, before the volume row is inserted with its key
    /// id (see [`Db::new_volume_key_args`]): an encryption change
    /// (which locks the type exclusively and counts the type's volumes)
    /// then either sees this volume or happens entirely before it. SQLite
    /// needs no statement for that: its one writer already serializes the
    /// two transactions.
    pub(crate) fn push_type_lock_for_new_volume(
        &self,
        batch: &mut crate::batch::Batch,
        volume_type_id: VolumeTypeId,
    ) {
        let share = match self.dialect {
            crate::Dialect::Postgres => " FOR SHARE",
            crate::Dialect::Mysql => " LOCK IN SHARE MODE",
            crate::Dialect::Sqlite => return,
        };
        batch.push(
            self,
            format!("SELECT id FROM volume_types WHERE id = ?{share}"),
            vec![crate::query::Arg::Text(volume_type_id.to_string())],
        );
    }

    /// A volume being created gets a key id when its type is encrypted and
    /// none otherwise (see
    /// [`clinker_types::volume_type_extras::new_encryption_key_id`]): the
    /// volume's `INSERT` sets `encryption_key_id` to `CASE WHEN EXISTS
    /// (encryption of the type) THEN <key> ELSE NULL END`, so it costs no
    /// statement of its own. These are that expression's two arguments, in
    /// order: the type id, then a fresh key id.
    pub(crate) fn new_volume_key_args(volume_type_id: VolumeTypeId) -> (String, String) {
        (volume_type_id.to_string(), new_encryption_key_id())
    }
}

#[async_trait::async_trait]
impl EncryptionRepository for Db {
    async fn get_type_encryption(
        &self,
        volume_type_id: VolumeTypeId,
    ) -> Result<Option<VolumeTypeEncryption>, DbError> {
        let sql = self.dynamic(format!(
            "SELECT {ENCRYPTION_COLUMNS} FROM encryption WHERE volume_type_id = ?"
        ));
        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(volume_type_id.to_string())
            .fetch_optional(&mut *self.reader().await?)
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    async fn create_type_encryption(
        &self,
        volume_type_id: VolumeTypeId,
        new: NewEncryption,
    ) -> Result<VolumeTypeEncryption, DbError> {
        in_transaction!(self, |tx| {
            self.ensure_type_unused_for_encryption(&mut tx, volume_type_id)
                .await?;
            if self
                .read_type_encryption(&mut tx, volume_type_id)
                .await?
                .is_some()
            {
                return Err(DbError::Conflict(format!(
                    "volume type {volume_type_id} is encrypted already"
                )));
            }
            sqlx::query(self.q(
                "INSERT INTO encryption (volume_type_id, encryption_id, provider, cipher, key_size, \
                 control_location, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            ))
            .bind(volume_type_id.to_string())
            .bind(uuid::Uuid::new_v4().hyphenated().to_string())
            .bind(new.provider.as_str())
            .bind(new.cipher.as_deref())
            .bind(new.key_size)
            .bind(new.control_location.as_str())
            .bind(self.now().as_micros())
            .execute(&mut *tx)
            .await?;
            self.read_type_encryption(&mut tx, volume_type_id)
                .await?
                .ok_or_else(|| DbError::Internal("encryption row vanished".into()))
        })
    }

    async fn update_type_encryption(
        &self,
        volume_type_id: VolumeTypeId,
        update: EncryptionUpdate,
    ) -> Result<VolumeTypeEncryption, DbError> {
        in_transaction!(self, |tx| {
            self.ensure_type_unused_for_encryption(&mut tx, volume_type_id)
                .await?;
            if self
                .read_type_encryption(&mut tx, volume_type_id)
                .await?
                .is_none()
            {
                return Err(DbError::not_found("volume type encryption", volume_type_id));
            }
            let mut sets = String::from("updated_at = ?");
            let mut args = vec![Arg::Int(self.now().as_micros())];
            if let Some(provider) = &update.provider {
                sets.push_str(", provider = ?");
                args.push(Arg::Text(provider.clone()));
            }
            if let Some(cipher) = &update.cipher {
                sets.push_str(", cipher = ?");
                args.push(cipher.clone().map(Arg::Text).unwrap_or(Arg::Null));
            }
            if let Some(key_size) = update.key_size {
                sets.push_str(", key_size = ?");
                args.push(key_size.map(Arg::Int).unwrap_or(Arg::Null));
            }
            if let Some(location) = update.control_location {
                sets.push_str(", control_location = ?");
                args.push(Arg::Text(location.as_str().to_owned()));
            }
            args.push(Arg::Text(volume_type_id.to_string()));
            let sql = self.dynamic(format!(
                "UPDATE encryption SET {sets} WHERE volume_type_id = ?"
            ));
            bind_all(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .execute(&mut *tx)
                .await?;
            self.read_type_encryption(&mut tx, volume_type_id)
                .await?
                .ok_or_else(|| DbError::Internal("encryption row vanished".into()))
        })
    }

    async fn delete_type_encryption(&self, volume_type_id: VolumeTypeId) -> Result<(), DbError> {
        in_transaction!(self, |tx| {
            self.ensure_type_unused_for_encryption(&mut tx, volume_type_id)
                .await?;
            let deleted = sqlx::query(self.q("DELETE FROM encryption WHERE volume_type_id = ?"))
                .bind(volume_type_id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Err(DbError::not_found("volume type encryption", volume_type_id));
            }
            Ok::<_, DbError>(())
        })
    }
}
