//! Volume transfers (Cinder's `transfers` table): an offer of a volume to
//! whichever project presents the offer's auth key.

use serde::{Deserialize, Serialize};

use crate::ids::{TransferId, VolumeId};
use crate::time::Timestamp;

/// A row of `transfers`, with the owner project of its volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Id.
    pub id: TransferId,
    /// The volume offered (its status is `awaiting-transfer`).
    pub volume_id: VolumeId,
    /// Name.
    pub display_name: Option<String>,
    /// The salt of [`Transfer::crypt_hash`].
    pub salt: String,
    /// HMAC-SHA1 of the auth key keyed by the salt, hex (Cinder's
    /// `_get_crypt_hash`). The key itself is never stored.
    pub crypt_hash: String,
    /// Whether the volume's snapshots stay with the giving project (3.55).
    pub no_snapshots: bool,
    /// The giving project (3.57).
    pub source_project_id: Option<String>,
    /// The accepting project, once accepted (3.57).
    pub destination_project_id: Option<String>,
    /// Whether it was accepted (3.57).
    pub accepted: bool,
    /// The project that owns the volume now: the transfer is visible to
    /// it (and to admins) only.
    pub volume_project_id: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last update time.
    pub updated_at: Option<Timestamp>,
}
