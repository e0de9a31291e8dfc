//! Status enums and their transition tables ("status as a lock").
//!
//! Every persisted status change in Clinker is a compare-and-swap: the
//! database updates a row only if its current status is one of the
//! transition's `from` set. The tables below are the single place that says
//! which statuses an operation may start from and where it leads, so API
//! handlers and the volume manager never compare status strings. The
//! statuses and their spellings are Cinder's (`cinder/objects/fields.py`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Declares a status enum with Cinder's exact spellings.
macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Cinder's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownStatus(other.to_owned())),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

// Other status modules (the group statuses) declare their enums with it.
pub(crate) use status_enum;

/// A status string that is not one of the enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

status_enum!(
    /// `VolumeStatus` (`volumes.status`).
    VolumeStatus {
        /// Being created on a backend.
        Creating => "creating",
        /// Ready to use.
        Available => "available",
        /// Reserved for an attachment (attachments API).
        Reserved => "reserved",
        /// An attach is in progress.
        Attaching => "attaching",
        /// Attached to at least one instance.
        InUse => "in-use",
        /// A detach is in progress.
        Detaching => "detaching",
        /// Under maintenance (migration, manage).
        Maintenance => "maintenance",
        /// Being deleted.
        Deleting => "deleting",
        /// Creation failed, or another terminal failure.
        Error => "error",
        /// Deletion failed on the backend.
        ErrorDeleting => "error_deleting",
        /// Managing an existing backend object failed.
        ErrorManaging => "error_managing",
        /// Being managed from an existing backend object.
        Managing => "managing",
        /// A backup is being restored into it.
        RestoringBackup => "restoring-backup",
        /// Restoring a backup failed.
        ErrorRestoring => "error_restoring",
        /// Offered for transfer to another project.
        AwaitingTransfer => "awaiting-transfer",
        /// A backup is being taken.
        BackingUp => "backing-up",
        /// Taking a backup failed.
        ErrorBackingUp => "error_backing-up",
        /// Extending failed on the backend.
        ErrorExtending => "error_extending",
        /// An image is being written into it.
        Downloading => "downloading",
        /// It is being uploaded to an image.
        Uploading => "uploading",
        /// Changing volume type.
        Retyping => "retyping",
        /// Being extended.
        Extending => "extending",
        /// Being reverted to its latest snapshot (3.40). Cinder sets it
        /// with a raw conditional update; it is not in its `VolumeStatus`
        /// enum, so `os-reset_status` cannot set it.
        Reverting => "reverting",
        /// Being removed from Clinker's management; its backend object
        /// stays (`os-unmanage`). Cinder sets it with a raw conditional
        /// update, like `reverting`.
        Unmanaging => "unmanaging",
        /// The backend refused to let go of the volume on unmanage.
        ErrorUnmanaging => "error_unmanaging",
    }
);

status_enum!(
    /// `VolumeAttachStatus` (`volumes.attach_status`, `volume_attachment.attach_status`).
    AttachStatus {
        /// Attached.
        Attached => "attached",
        /// Being attached.
        Attaching => "attaching",
        /// Not attached.
        Detached => "detached",
        /// Reserved by the attachments API, no connector yet.
        Reserved => "reserved",
        /// Attaching failed.
        ErrorAttaching => "error_attaching",
        /// Detaching failed.
        ErrorDetaching => "error_detaching",
        /// The attachment record was removed.
        Deleted => "deleted",
    }
);

status_enum!(
    /// `SnapshotStatus` (`snapshots.status`).
    SnapshotStatus {
        /// Being created.
        Creating => "creating",
        /// Ready.
        Available => "available",
        /// Being deleted.
        Deleting => "deleting",
        /// Deleted (kept for history; never shown by the API).
        Deleted => "deleted",
        /// Creation failed.
        Error => "error",
        /// Deletion failed.
        ErrorDeleting => "error_deleting",
        /// Being updated.
        Updating => "updating",
        /// Being unmanaged.
        Unmanaging => "unmanaging",
        /// A backup of it is being taken.
        BackingUp => "backing-up",
        /// Being restored.
        Restoring => "restoring",
    }
);

impl VolumeStatus {
    /// The status the API shows for this one (Cinder's
    /// `views/volumes.py::_get_volume_status` hides the managing states).
    pub fn api_status(self) -> VolumeStatus {
        match self {
            VolumeStatus::Managing => VolumeStatus::Creating,
            VolumeStatus::ErrorManaging => VolumeStatus::Error,
            other => other,
        }
    }

    /// Statuses an administrator may set with `os-reset_status`.
    pub fn is_resettable_target(self) -> bool {
        !matches!(
            self,
            VolumeStatus::Managing
                | VolumeStatus::Reverting
                | VolumeStatus::Unmanaging
                | VolumeStatus::ErrorUnmanaging
        )
    }
}

impl SnapshotStatus {
    /// Statuses an administrator may set with `os-reset_status` on a
    /// snapshot (Cinder allows any known status except `deleted`).
    pub fn is_resettable_target(self) -> bool {
        !matches!(self, SnapshotStatus::Deleted)
    }
}

/// One entry of a transition table: where an operation may start, where it
/// leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition<S: 'static> {
    /// The statuses the row must have for the compare-and-swap to apply.
    pub from: &'static [S],
    /// The status written.
    pub to: S,
}

/// Every operation that changes a volume's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VolumeTransition {
    /// API `DELETE /volumes/{id}` without force.
    Delete,
    /// API delete with `force` (3.23) or `os-force_delete`: any status but
    /// those where the volume is already being deleted by the same path.
    ForceDelete,
    /// `os-extend` of a detached volume.
    ExtendAvailable,
    /// `os-extend` of an attached volume (3.42+).
    ExtendInUse,
    /// Manager: the backend created the volume (from `downloading` when
    /// it was filled from an image).
    CreateSucceeded,
    /// Manager: the volume exists and is being filled from an image.
    BeginDownload,
    /// Manager: the create failed and will not be rescheduled, or the
    /// service restarted while it was in flight (`init_host`).
    CreateFailed,
    /// Manager: the backend refused the delete because the volume is busy.
    DeleteBusy,
    /// Manager: the backend failed the delete.
    DeleteFailed,
    /// Manager: the extend finished; the volume was detached.
    ExtendSucceededAvailable,
    /// Manager: the extend finished; the volume was attached.
    ExtendSucceededInUse,
    /// Manager: the backend failed the extend, or the service restarted
    /// while it was in flight.
    ExtendFailed,
    /// Manager: re-exporting an attached volume at start-up failed.
    ExportFailed,
    /// Attachments API create: a volume that is not multiattach is
    /// reserved for one attachment (Cinder's `_attachment_reserve`).
    ReserveAvailable,
    /// Attachments API create on a multiattach volume, which may already be
    /// in use by other attachments.
    ReserveMultiattach,
    /// Attachments API update with a connector: the volume is being
    /// connected (Cinder's `volume_attached(mark_attached=False)`).
    AttachmentUpdate,
    /// Legacy `os-attach` / attachment completion (`os-complete`): now
    /// attached.
    Attach,
    /// Legacy `os-reserve` of a volume that is not multiattach.
    LegacyReserve,
    /// Legacy `os-reserve` of a multiattach volume.
    LegacyReserveMultiattach,
    /// `os-unreserve` (or `os-terminate_connection`) with no attachment.
    UnreserveToAvailable,
    /// `os-unreserve` (or `os-terminate_connection`) with attachments.
    UnreserveToInUse,
    /// `os-begin_detaching`.
    BeginDetaching,
    /// `os-roll_detaching`.
    RollDetaching,
    /// An attachment removed and none left (Cinder's `volume_detached`).
    DetachToAvailable,
    /// An attachment removed; an attached one remains.
    DetachToInUse,
    /// An attachment removed; the strongest remaining one is attaching.
    DetachToAttaching,
    /// An attachment removed; only reservations remain.
    DetachToReserved,
    /// `os-retype` starts.
    BeginRetype,
    /// Retype finished or failed; the previous status is restored.
    FinishRetypeAvailable,
    /// Retype of an attached volume finished or failed.
    FinishRetypeInUse,
    /// A transfer request is created.
    BeginTransfer,
    /// The transfer was accepted or its request deleted.
    FinishTransfer,
    /// `revert` (3.40) starts: only an available volume.
    BeginRevert,
    /// The revert finished, or was refused before any data changed.
    FinishRevert,
    /// The revert failed after it may have changed data.
    FailRevert,
    /// `os-unmanage` starts: the statuses a delete starts from (Cinder's
    /// `delete(unmanage_only=True)` shares the delete's conditions).
    BeginUnmanage,
    /// Manager: the driver refused to unmanage.
    UnmanageFailed,
    /// Manager: the backend object was taken into management.
    ManageSucceeded,
    /// `os-reimage` (3.68) of an available or failed volume.
    BeginReimage,
    /// `os-reimage` with `reimage_reserved`: also a reserved volume.
    BeginReimageReserved,
    /// Manager: the reimage finished; back to `available`.
    FinishReimageAvailable,
    /// Manager: the reimage finished; back to `reserved`.
    FinishReimageReserved,
    /// Manager: the reimage failed, or finished on a volume that was
    /// `error` (Cinder restores the previous status).
    FinishReimageError,
    /// `os-volume_upload_image` of a detached volume.
    BeginUploadAvailable,
    /// `os-volume_upload_image` with `force` of an attached volume.
    BeginUploadInUse,
    /// Manager: the upload finished or failed; the volume is detached.
    FinishUploadAvailable,
    /// Manager: the upload finished or failed; the volume is attached.
    FinishUploadInUse,
    /// Manager: managing the backend object failed (bad reference, size,
    /// quota), or the service restarted while it was in flight.
    ManageFailed,
}

use VolumeStatus as V;

const DELETABLE: &[VolumeStatus] = &[
    V::Available,
    V::Error,
    V::ErrorRestoring,
    V::ErrorExtending,
    V::ErrorManaging,
];

/// Where removing an attachment may settle a volume from. `error` is in it
/// because an administrator resets a stuck volume to `error` before forcing
/// its detach (Tempest's `test_force_detach_volume`); the long-running
/// operations (`extending`, `retyping`, `uploading`, …) are not: they own
/// the status and restore it themselves.
const DETACHABLE: &[VolumeStatus] = &[
    V::Available,
    V::Reserved,
    V::Attaching,
    V::InUse,
    V::Detaching,
    V::Error,
];

impl VolumeTransition {
    /// How a volume settles once an attachment is gone, from the statuses of
    /// the attachments that remain (Cinder's `_get_statuses_from_attachments`):
    /// the strongest of them wins (attached, then attaching, then reserved);
    /// none left means detached. Returns the transition and the volume's
    /// new `attach_status`.
    ///
    /// Cinder ignores failed attachments (`error_*`) here and so shows an
    /// `available` volume that still has attachment rows; Clinker counts a
    /// failed attachment as a reservation until it is deleted, so a volume
    /// with attachment rows is never shown detached (the same state Cinder
    /// leaves the volume in right after the failure: `reserved`).
    pub fn after_detach(remaining: &[AttachStatus]) -> (VolumeTransition, AttachStatus) {
        let has = |s: AttachStatus| remaining.contains(&s);
        if has(AttachStatus::Attached) {
            (VolumeTransition::DetachToInUse, AttachStatus::Attached)
        } else if has(AttachStatus::Attaching) {
            (VolumeTransition::DetachToAttaching, AttachStatus::Attaching)
        } else if remaining.iter().any(|s| {
            matches!(
                s,
                AttachStatus::Reserved
                    | AttachStatus::ErrorAttaching
                    | AttachStatus::ErrorDetaching
            )
        }) {
            (VolumeTransition::DetachToReserved, AttachStatus::Reserved)
        } else {
            (VolumeTransition::DetachToAvailable, AttachStatus::Detached)
        }
    }

    /// The transition's row in the table.
    pub fn transition(self) -> Transition<VolumeStatus> {
        use VolumeTransition as T;
        let (from, to): (&'static [VolumeStatus], VolumeStatus) = match self {
            T::Delete => (DELETABLE, V::Deleting),
            // Force delete is idempotent on a volume that is already being
            // deleted, so `Deleting` is in its source set on purpose.
            T::ForceDelete => (V::ALL, V::Deleting),
            T::ExtendAvailable => (&[V::Available], V::Extending),
            T::ExtendInUse => (&[V::InUse], V::Extending),
            T::CreateSucceeded => (&[V::Creating, V::Downloading], V::Available),
            T::CreateFailed => (&[V::Creating, V::Downloading], V::Error),
            T::BeginDownload => (&[V::Creating], V::Downloading),
            T::BeginReimage => (&[V::Available, V::Error], V::Downloading),
            T::BeginReimageReserved => (&[V::Available, V::Error, V::Reserved], V::Downloading),
            T::FinishReimageAvailable => (&[V::Downloading], V::Available),
            T::FinishReimageReserved => (&[V::Downloading], V::Reserved),
            T::FinishReimageError => (&[V::Downloading], V::Error),
            T::BeginUploadAvailable => (&[V::Available], V::Uploading),
            T::BeginUploadInUse => (&[V::InUse], V::Uploading),
            T::FinishUploadAvailable => (&[V::Uploading], V::Available),
            T::FinishUploadInUse => (&[V::Uploading], V::InUse),
            T::DeleteBusy => (&[V::Deleting], V::Available),
            T::DeleteFailed => (&[V::Deleting], V::ErrorDeleting),
            T::ExtendSucceededAvailable => (&[V::Extending], V::Available),
            T::ExtendSucceededInUse => (&[V::Extending], V::InUse),
            T::ExtendFailed => (&[V::Extending], V::ErrorExtending),
            T::ExportFailed => (&[V::InUse], V::Error),
            // Cinder lets a volume being filled from an image be reserved
            // (boot from volume while downloading).
            T::ReserveAvailable => (&[V::Available, V::Downloading], V::Reserved),
            T::ReserveMultiattach => (&[V::Available, V::InUse, V::Downloading], V::Reserved),
            T::AttachmentUpdate => (&[V::Reserved, V::Attaching, V::InUse], V::Attaching),
            T::Attach => (
                &[V::Reserved, V::Attaching, V::InUse, V::Available],
                V::InUse,
            ),
            T::LegacyReserve => (&[V::Available], V::Attaching),
            T::LegacyReserveMultiattach => (&[V::Available, V::InUse], V::Attaching),
            T::UnreserveToAvailable => (&[V::Attaching], V::Available),
            T::UnreserveToInUse => (&[V::Attaching], V::InUse),
            T::BeginDetaching => (&[V::InUse], V::Detaching),
            T::RollDetaching => (&[V::Detaching], V::InUse),
            T::DetachToAvailable => (DETACHABLE, V::Available),
            T::DetachToInUse => (DETACHABLE, V::InUse),
            T::DetachToAttaching => (DETACHABLE, V::Attaching),
            T::DetachToReserved => (DETACHABLE, V::Reserved),
            T::BeginRetype => (&[V::Available, V::InUse], V::Retyping),
            T::FinishRetypeAvailable => (&[V::Retyping], V::Available),
            T::FinishRetypeInUse => (&[V::Retyping], V::InUse),
            T::BeginTransfer => (&[V::Available], V::AwaitingTransfer),
            T::FinishTransfer => (&[V::AwaitingTransfer], V::Available),
            T::BeginRevert => (&[V::Available], V::Reverting),
            T::FinishRevert => (&[V::Reverting], V::Available),
            T::FailRevert => (&[V::Reverting], V::Error),
            T::BeginUnmanage => (DELETABLE, V::Unmanaging),
            T::UnmanageFailed => (&[V::Unmanaging], V::ErrorUnmanaging),
            T::ManageSucceeded => (&[V::Managing], V::Available),
            T::ManageFailed => (&[V::Managing], V::ErrorManaging),
        };
        Transition { from, to }
    }

    /// Whether the volume may take this transition from `current`.
    pub fn allows(self, current: VolumeStatus) -> bool {
        self.transition().from.contains(&current)
    }
}

/// Every operation that changes a snapshot's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SnapshotTransition {
    /// API delete without force.
    Delete,
    /// `os-force_delete`: any status.
    ForceDelete,
    /// Manager: created.
    CreateSucceeded,
    /// Manager: create failed, or interrupted by a restart.
    CreateFailed,
    /// Manager: the backend says the snapshot is busy (has dependants).
    DeleteBusy,
    /// Manager: the backend failed the delete.
    DeleteFailed,
    /// A revert to this snapshot starts (the snapshot is the source).
    BeginRestore,
    /// The revert that used this snapshot ended (either way).
    FinishRestore,
    /// `os-unmanage` of a snapshot starts.
    BeginUnmanage,
    /// Manager: the driver refused to unmanage the snapshot (Cinder
    /// leaves it `error_deleting`).
    UnmanageFailed,
}

use SnapshotStatus as S;

impl SnapshotTransition {
    /// The transition's row in the table.
    pub fn transition(self) -> Transition<SnapshotStatus> {
        use SnapshotTransition as T;
        let (from, to): (&'static [SnapshotStatus], SnapshotStatus) = match self {
            T::Delete => (&[S::Available, S::Error], S::Deleting),
            T::ForceDelete => (
                &[
                    S::Creating,
                    S::Available,
                    S::Deleting,
                    S::Error,
                    S::ErrorDeleting,
                    S::Updating,
                    S::Unmanaging,
                    S::BackingUp,
                    S::Restoring,
                ],
                S::Deleting,
            ),
            T::CreateSucceeded => (&[S::Creating], S::Available),
            T::CreateFailed => (&[S::Creating], S::Error),
            T::DeleteBusy => (&[S::Deleting], S::Available),
            T::DeleteFailed => (&[S::Deleting], S::ErrorDeleting),
            T::BeginRestore => (&[S::Available], S::Restoring),
            T::FinishRestore => (&[S::Restoring], S::Available),
            T::BeginUnmanage => (&[S::Available, S::Error], S::Unmanaging),
            T::UnmanageFailed => (&[S::Unmanaging], S::ErrorDeleting),
        };
        Transition { from, to }
    }

    /// Whether the snapshot may take this transition from `current`.
    pub fn allows(self, current: SnapshotStatus) -> bool {
        self.transition().from.contains(&current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_VOLUME_TRANSITIONS: &[VolumeTransition] = &[
        VolumeTransition::Delete,
        VolumeTransition::ForceDelete,
        VolumeTransition::ExtendAvailable,
        VolumeTransition::ExtendInUse,
        VolumeTransition::CreateSucceeded,
        VolumeTransition::CreateFailed,
        VolumeTransition::DeleteBusy,
        VolumeTransition::DeleteFailed,
        VolumeTransition::ExtendSucceededAvailable,
        VolumeTransition::ExtendSucceededInUse,
        VolumeTransition::ExtendFailed,
        VolumeTransition::ExportFailed,
        VolumeTransition::ReserveAvailable,
        VolumeTransition::ReserveMultiattach,
        VolumeTransition::AttachmentUpdate,
        VolumeTransition::Attach,
        VolumeTransition::LegacyReserve,
        VolumeTransition::LegacyReserveMultiattach,
        VolumeTransition::UnreserveToAvailable,
        VolumeTransition::UnreserveToInUse,
        VolumeTransition::BeginDetaching,
        VolumeTransition::RollDetaching,
        VolumeTransition::DetachToAvailable,
        VolumeTransition::DetachToInUse,
        VolumeTransition::DetachToAttaching,
        VolumeTransition::DetachToReserved,
        VolumeTransition::BeginRetype,
        VolumeTransition::FinishRetypeAvailable,
        VolumeTransition::FinishRetypeInUse,
        VolumeTransition::BeginTransfer,
        VolumeTransition::FinishTransfer,
        VolumeTransition::BeginRevert,
        VolumeTransition::FinishRevert,
        VolumeTransition::FailRevert,
        VolumeTransition::BeginUnmanage,
        VolumeTransition::UnmanageFailed,
        VolumeTransition::ManageSucceeded,
        VolumeTransition::ManageFailed,
        VolumeTransition::BeginDownload,
        VolumeTransition::BeginUploadAvailable,
        VolumeTransition::BeginUploadInUse,
        VolumeTransition::FinishUploadAvailable,
        VolumeTransition::FinishUploadInUse,
        VolumeTransition::BeginReimage,
        VolumeTransition::BeginReimageReserved,
        VolumeTransition::FinishReimageAvailable,
        VolumeTransition::FinishReimageReserved,
        VolumeTransition::FinishReimageError,
    ];

    #[test]
    fn status_strings_round_trip() {
        for s in VolumeStatus::ALL {
            assert_eq!(s.as_str().parse::<VolumeStatus>().unwrap(), *s);
        }
        for s in SnapshotStatus::ALL {
            assert_eq!(s.as_str().parse::<SnapshotStatus>().unwrap(), *s);
        }
        for s in AttachStatus::ALL {
            assert_eq!(s.as_str().parse::<AttachStatus>().unwrap(), *s);
        }
        assert_eq!(VolumeStatus::InUse.as_str(), "in-use");
        assert_eq!(VolumeStatus::ErrorBackingUp.as_str(), "error_backing-up");
        assert!("In-Use".parse::<VolumeStatus>().is_err());
    }

    /// Walks the whole table: for every transition and every status, `allows`
    /// agrees with the table, and the Cinder rules hold.
    #[test]
    fn walks_the_volume_table() {
        for t in ALL_VOLUME_TRANSITIONS {
            let row = t.transition();
            assert!(!row.from.is_empty(), "{t:?} has no source status");
            for s in VolumeStatus::ALL {
                assert_eq!(t.allows(*s), row.from.contains(s), "{t:?} from {s}");
            }
        }
        // Cinder's delete rule: only these, and never an attached or busy volume.
        let deletable: Vec<_> = VolumeStatus::ALL
            .iter()
            .filter(|s| VolumeTransition::Delete.allows(**s))
            .collect();
        assert_eq!(
            deletable,
            [
                &VolumeStatus::Available,
                &VolumeStatus::Error,
                &VolumeStatus::ErrorManaging,
                &VolumeStatus::ErrorRestoring,
                &VolumeStatus::ErrorExtending
            ]
        );
        assert!(!VolumeTransition::Delete.allows(VolumeStatus::InUse));
        assert!(!VolumeTransition::Delete.allows(VolumeStatus::Creating));
        // Force delete is idempotent on a volume already deleting.
        assert!(VolumeTransition::ForceDelete.allows(VolumeStatus::Deleting));
    }

    /// Nothing leaves `deleting` except the manager's outcomes (the row is
    /// destroyed on success, which is not a status change).
    #[test]
    fn deleting_only_exits_through_the_manager() {
        let exits: Vec<_> = ALL_VOLUME_TRANSITIONS
            .iter()
            .filter(|t| {
                t.allows(VolumeStatus::Deleting) && t.transition().to != VolumeStatus::Deleting
            })
            .collect();
        assert_eq!(
            exits,
            [
                &VolumeTransition::DeleteBusy,
                &VolumeTransition::DeleteFailed
            ]
        );
    }

    /// Nothing leaves `creating` except the manager's outcomes or a delete
    /// forced by an administrator.
    #[test]
    fn creating_only_exits_through_the_manager_or_force() {
        let exits: Vec<_> = ALL_VOLUME_TRANSITIONS
            .iter()
            .filter(|t| {
                t.allows(VolumeStatus::Creating) && t.transition().to != VolumeStatus::Creating
            })
            .collect();
        assert_eq!(
            exits,
            [
                &VolumeTransition::ForceDelete,
                &VolumeTransition::CreateSucceeded,
                &VolumeTransition::CreateFailed,
                &VolumeTransition::BeginDownload
            ]
        );
    }

    #[test]
    fn extend_restores_the_attach_state() {
        assert!(VolumeTransition::ExtendAvailable.allows(VolumeStatus::Available));
        assert!(!VolumeTransition::ExtendAvailable.allows(VolumeStatus::InUse));
        assert_eq!(
            VolumeTransition::ExtendSucceededInUse.transition().to,
            VolumeStatus::InUse
        );
        assert_eq!(
            VolumeTransition::ExtendFailed.transition().to,
            VolumeStatus::ErrorExtending
        );
    }

    /// Cinder's attach rules: a volume that is not multiattach is reserved
    /// only when free; a multiattach one also while in use; the legacy
    /// reserve moves to `attaching`; nothing reserves a volume in error or
    /// being deleted.
    #[test]
    fn reserve_rules_follow_multiattach() {
        use VolumeStatus as S;
        use VolumeTransition as T;
        assert!(T::ReserveAvailable.allows(S::Available));
        assert!(T::ReserveAvailable.allows(S::Downloading));
        assert!(!T::ReserveAvailable.allows(S::InUse));
        assert!(!T::ReserveAvailable.allows(S::Reserved));
        assert!(T::ReserveMultiattach.allows(S::InUse));
        assert!(!T::ReserveMultiattach.allows(S::Reserved));
        assert!(!T::LegacyReserve.allows(S::InUse));
        assert!(T::LegacyReserveMultiattach.allows(S::InUse));
        for t in [
            T::ReserveAvailable,
            T::ReserveMultiattach,
            T::LegacyReserve,
            T::LegacyReserveMultiattach,
            T::AttachmentUpdate,
            T::Attach,
        ] {
            for s in [S::Error, S::ErrorDeleting, S::Deleting, S::Creating] {
                assert!(!t.allows(s), "{t:?} from {s}");
            }
        }
        assert_eq!(T::ReserveAvailable.transition().to, S::Reserved);
        assert_eq!(T::LegacyReserve.transition().to, S::Attaching);
        assert_eq!(T::AttachmentUpdate.transition().to, S::Attaching);
        assert_eq!(T::Attach.transition().to, S::InUse);
        // os-unreserve only undoes os-reserve.
        assert!(!T::UnreserveToAvailable.allows(S::InUse));
        assert!(T::UnreserveToInUse.allows(S::Attaching));
    }

    /// After a detach the strongest remaining attachment decides, failed
    /// attachments keep the volume reserved, and a volume being extended or
    /// deleted is never moved by a detach.
    #[test]
    fn detach_settles_from_the_remaining_attachments() {
        use AttachStatus as A;
        use VolumeTransition as T;
        assert_eq!(T::after_detach(&[]), (T::DetachToAvailable, A::Detached));
        assert_eq!(
            T::after_detach(&[A::ErrorAttaching]),
            (T::DetachToReserved, A::Reserved)
        );
        assert_eq!(
            T::after_detach(&[A::ErrorAttaching, A::Attached]),
            (T::DetachToInUse, A::Attached)
        );
        assert_eq!(
            T::after_detach(&[A::Reserved, A::Attached]),
            (T::DetachToInUse, A::Attached)
        );
        assert_eq!(
            T::after_detach(&[A::Reserved, A::Attaching]),
            (T::DetachToAttaching, A::Attaching)
        );
        assert_eq!(
            T::after_detach(&[A::Reserved]),
            (T::DetachToReserved, A::Reserved)
        );
        for t in [
            T::DetachToAvailable,
            T::DetachToInUse,
            T::DetachToAttaching,
            T::DetachToReserved,
        ] {
            assert!(t.allows(VolumeStatus::Error), "force detach after a reset");
            for s in [
                VolumeStatus::Extending,
                VolumeStatus::Deleting,
                VolumeStatus::Creating,
                VolumeStatus::Maintenance,
                VolumeStatus::Uploading,
            ] {
                assert!(!t.allows(s), "{t:?} from {s}");
            }
        }
    }

    #[test]
    fn walks_the_snapshot_table() {
        use SnapshotTransition as T;
        for t in [
            T::Delete,
            T::ForceDelete,
            T::CreateSucceeded,
            T::CreateFailed,
            T::DeleteBusy,
            T::DeleteFailed,
            T::BeginRestore,
            T::FinishRestore,
            T::BeginUnmanage,
            T::UnmanageFailed,
        ] {
            for s in SnapshotStatus::ALL {
                assert_eq!(t.allows(*s), t.transition().from.contains(s));
            }
        }
        assert!(T::Delete.allows(SnapshotStatus::Available));
        assert!(T::Delete.allows(SnapshotStatus::Error));
        assert!(!T::Delete.allows(SnapshotStatus::Creating));
        assert!(T::ForceDelete.allows(SnapshotStatus::Creating));
        assert!(!T::ForceDelete.allows(SnapshotStatus::Deleted));
    }

    /// A revert only starts from `available`, and its outcomes leave
    /// `reverting` for `available` or `error`; its snapshot goes
    /// `available → restoring → available`.
    #[test]
    fn revert_round_trips() {
        use SnapshotTransition as S;
        assert!(VolumeTransition::BeginRevert.allows(VolumeStatus::Available));
        assert!(!VolumeTransition::BeginRevert.allows(VolumeStatus::InUse));
        let exits: Vec<_> = ALL_VOLUME_TRANSITIONS
            .iter()
            .filter(|t| {
                t.allows(VolumeStatus::Reverting) && t.transition().to != VolumeStatus::Reverting
            })
            .collect();
        assert_eq!(
            exits,
            [
                &VolumeTransition::ForceDelete,
                &VolumeTransition::FinishRevert,
                &VolumeTransition::FailRevert
            ]
        );
        assert!(S::BeginRestore.allows(SnapshotStatus::Available));
        assert_eq!(S::FinishRestore.transition().to, SnapshotStatus::Available);
        assert!(!SnapshotTransition::Delete.allows(SnapshotStatus::Restoring));
    }

    /// Unmanage starts where a delete may start and only the manager ends
    /// it; a managed volume leaves `managing` only through the manager's
    /// outcomes or a forced delete.
    #[test]
    fn manage_and_unmanage_follow_cinder() {
        use VolumeStatus as S;
        use VolumeTransition as T;
        for s in S::ALL {
            assert_eq!(T::BeginUnmanage.allows(*s), T::Delete.allows(*s), "{s}");
        }
        assert!(!T::BeginUnmanage.allows(S::InUse));
        let exits: Vec<_> = ALL_VOLUME_TRANSITIONS
            .iter()
            .filter(|t| t.allows(S::Managing) && t.transition().to != S::Managing)
            .collect();
        assert_eq!(
            exits,
            [&T::ForceDelete, &T::ManageSucceeded, &T::ManageFailed]
        );
        let exits: Vec<_> = ALL_VOLUME_TRANSITIONS
            .iter()
            .filter(|t| t.allows(S::Unmanaging) && t.transition().to != S::Unmanaging)
            .collect();
        assert_eq!(exits, [&T::ForceDelete, &T::UnmanageFailed]);
        assert!(!S::Unmanaging.is_resettable_target());
        assert!(SnapshotTransition::BeginUnmanage.allows(SnapshotStatus::Error));
        assert!(!SnapshotTransition::BeginUnmanage.allows(SnapshotStatus::Creating));
    }

    #[test]
    fn api_hides_managing_states() {
        assert_eq!(VolumeStatus::Managing.api_status(), VolumeStatus::Creating);
        assert_eq!(
            VolumeStatus::ErrorManaging.api_status(),
            VolumeStatus::Error
        );
        assert_eq!(VolumeStatus::InUse.api_status(), VolumeStatus::InUse);
    }
}
