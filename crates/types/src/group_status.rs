//! The statuses of generic volume groups and group snapshots, and their
//! transition tables (Cinder's `GroupStatus` and `GroupSnapshotStatus` in
//! `cinder/objects/fields.py`).
//!
//! As for volumes, every persisted change is a compare-and-swap against one
//! of these rows, so the API and the volume manager never compare status
//! strings. Cinder's generic implementation reaches `updating` only while
//! the volume manager adds or removes volumes; Clinker changes membership in
//! one database transaction, so a group passes through `updating` only when
//! an administrator resets it there.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::status::{Transition, UnknownStatus, status_enum};

status_enum!(
    /// `GroupStatus` (`groups.status`).
    GroupStatus {
        /// Creation failed, or a delete failed on the backend.
        Error => "error",
        /// Ready to use.
        Available => "available",
        /// Being placed on a backend, or its volumes are being created from
        /// a source.
        Creating => "creating",
        /// Being deleted (with its volumes).
        Deleting => "deleting",
        /// Deleted (never shown by the API: rows are removed).
        Deleted => "deleted",
        /// Volumes are being added or removed.
        Updating => "updating",
        /// In use (Cinder never sets it for generic groups).
        InUse => "in-use",
        /// Deleting failed.
        ErrorDeleting => "error_deleting",
    }
);

status_enum!(
    /// `GroupSnapshotStatus` (`group_snapshots.status`).
    GroupSnapshotStatus {
        /// Creation or deletion failed.
        Error => "error",
        /// Ready: every member snapshot is available.
        Available => "available",
        /// Member snapshots are being taken.
        Creating => "creating",
        /// Member snapshots are being deleted.
        Deleting => "deleting",
        /// Deleted (never shown by the API: rows are removed).
        Deleted => "deleted",
        /// Being updated.
        Updating => "updating",
        /// Deleting failed.
        ErrorDeleting => "error_deleting",
    }
);

/// Every operation that changes a group's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupTransition {
    /// The backend accepted the group, or every volume created from a
    /// source finished.
    CreateSucceeded,
    /// No backend could take the group, or a volume created from a source
    /// failed, or the service restarted while the group was being created.
    CreateFailed,
    /// `PUT /groups/{id}` adding or removing volumes: the group must be
    /// available, and stays so (membership changes in one transaction).
    UpdateMembers,
    /// `delete` without `delete-volumes`.
    Delete,
    /// `delete` with `delete-volumes`: Cinder accepts any status; Clinker
    /// refuses only a group still being created (its volumes are in
    /// flight) and treats a repeat on a deleting group as idempotent.
    DeleteWithVolumes,
    /// The backend failed to delete a volume of the group.
    DeleteFailed,
}

use GroupStatus as G;

impl GroupTransition {
    /// The transition's row in the table.
    pub fn transition(self) -> Transition<GroupStatus> {
        use GroupTransition as T;
        let (from, to): (&'static [GroupStatus], GroupStatus) = match self {
            T::CreateSucceeded => (&[G::Creating], G::Available),
            T::CreateFailed => (&[G::Creating], G::Error),
            T::UpdateMembers => (&[G::Available], G::Available),
            T::Delete => (&[G::Available, G::Error], G::Deleting),
            T::DeleteWithVolumes => (
                &[
                    G::Available,
                    G::Error,
                    G::Updating,
                    G::InUse,
                    G::ErrorDeleting,
                ],
                G::Deleting,
            ),
            T::DeleteFailed => (&[G::Deleting], G::Error),
        };
        Transition { from, to }
    }

    /// Whether the group may take this transition from `current`.
    pub fn allows(self, current: GroupStatus) -> bool {
        self.transition().from.contains(&current)
    }

    /// Every transition, for tests that walk the table.
    pub const ALL: &'static [GroupTransition] = &[
        GroupTransition::CreateSucceeded,
        GroupTransition::CreateFailed,
        GroupTransition::UpdateMembers,
        GroupTransition::Delete,
        GroupTransition::DeleteWithVolumes,
        GroupTransition::DeleteFailed,
    ];
}

/// Every operation that changes a group snapshot's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupSnapshotTransition {
    /// Every member snapshot was taken.
    CreateSucceeded,
    /// A member snapshot failed, or the service restarted mid-way.
    CreateFailed,
    /// `DELETE /group_snapshots/{id}`.
    Delete,
    /// A member snapshot could not be deleted.
    DeleteFailed,
}

use GroupSnapshotStatus as GS;

impl GroupSnapshotTransition {
    /// The transition's row in the table.
    pub fn transition(self) -> Transition<GroupSnapshotStatus> {
        use GroupSnapshotTransition as T;
        let (from, to): (&'static [GroupSnapshotStatus], GroupSnapshotStatus) = match self {
            T::CreateSucceeded => (&[GS::Creating], GS::Available),
            T::CreateFailed => (&[GS::Creating], GS::Error),
            T::Delete => (&[GS::Available, GS::Error], GS::Deleting),
            T::DeleteFailed => (&[GS::Deleting], GS::Error),
        };
        Transition { from, to }
    }

    /// Whether the group snapshot may take this transition from `current`.
    pub fn allows(self, current: GroupSnapshotStatus) -> bool {
        self.transition().from.contains(&current)
    }

    /// Every transition, for tests that walk the table.
    pub const ALL: &'static [GroupSnapshotTransition] = &[
        GroupSnapshotTransition::CreateSucceeded,
        GroupSnapshotTransition::CreateFailed,
        GroupSnapshotTransition::Delete,
        GroupSnapshotTransition::DeleteFailed,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_are_cinders() {
        let group: Vec<&str> = GroupStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            group,
            [
                "error",
                "available",
                "creating",
                "deleting",
                "deleted",
                "updating",
                "in-use",
                "error_deleting"
            ]
        );
        for s in GroupStatus::ALL {
            assert_eq!(s.as_str().parse::<GroupStatus>().unwrap(), *s);
        }
        for s in GroupSnapshotStatus::ALL {
            assert_eq!(s.as_str().parse::<GroupSnapshotStatus>().unwrap(), *s);
        }
        assert!("in-use".parse::<GroupSnapshotStatus>().is_err());
        assert!("Available".parse::<GroupStatus>().is_err());
    }

    /// Walks both tables: `allows` agrees with every row, and no transition
    /// starts from `deleted`.
    #[test]
    fn walks_the_tables() {
        for t in GroupTransition::ALL {
            let row = t.transition();
            assert!(!row.from.is_empty(), "{t:?}");
            assert!(!row.from.contains(&GroupStatus::Deleted), "{t:?}");
            for s in GroupStatus::ALL {
                assert_eq!(t.allows(*s), row.from.contains(s), "{t:?} from {s}");
            }
        }
        for t in GroupSnapshotTransition::ALL {
            let row = t.transition();
            assert!(!row.from.is_empty(), "{t:?}");
            assert!(!row.from.contains(&GroupSnapshotStatus::Deleted), "{t:?}");
            for s in GroupSnapshotStatus::ALL {
                assert_eq!(t.allows(*s), row.from.contains(s), "{t:?} from {s}");
            }
        }
    }

    /// Cinder's rules: a plain delete needs available or error; with its
    /// volumes any settled status will do; nothing but the manager's
    /// outcomes leaves `creating` or `deleting`.
    #[test]
    fn cinder_rules_hold() {
        assert!(GroupTransition::Delete.allows(GroupStatus::Error));
        assert!(!GroupTransition::Delete.allows(GroupStatus::InUse));
        assert!(GroupTransition::DeleteWithVolumes.allows(GroupStatus::InUse));
        assert!(!GroupTransition::DeleteWithVolumes.allows(GroupStatus::Creating));
        let leave_creating: Vec<_> = GroupTransition::ALL
            .iter()
            .filter(|t| t.allows(GroupStatus::Creating))
            .collect();
        assert_eq!(
            leave_creating,
            [
                &GroupTransition::CreateSucceeded,
                &GroupTransition::CreateFailed
            ]
        );
        let leave_deleting: Vec<_> = GroupTransition::ALL
            .iter()
            .filter(|t| t.allows(GroupStatus::Deleting))
            .collect();
        assert_eq!(leave_deleting, [&GroupTransition::DeleteFailed]);
        assert!(GroupSnapshotTransition::Delete.allows(GroupSnapshotStatus::Error));
        assert!(!GroupSnapshotTransition::Delete.allows(GroupSnapshotStatus::Creating));
    }
}
