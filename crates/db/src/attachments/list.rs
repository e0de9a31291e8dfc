//! Attachment lists: filters, sorting and keyset pagination over
//! `volume_attachment` joined with `volumes` (for the project scope).

use clinker_types::AttachmentId;
use clinker_types::model::Attachment;

use crate::error::DbError;
use crate::pool::Db;
use crate::query::{self, Arg};
use crate::rows;
use crate::{FilterValue, Page, SortDir};

/// The attachment columns, qualified for queries that join `volumes`.
const ATTACHMENT_COLUMNS_A: &str = "a.id AS id, a.volume_id AS volume_id, a.instance_uuid AS instance_uuid, \
     a.attached_host AS attached_host, a.mountpoint AS mountpoint, a.attach_time AS attach_time, \
     a.detach_time AS detach_time, a.attach_status AS attach_status, a.attach_mode AS attach_mode, \
     a.connection_info AS connection_info, a.connector AS connector";

const ATTACHMENT_FROM: &str = "volume_attachment a JOIN volumes v ON v.id = a.volume_id";

/// A filterable and sortable attachment column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachmentColumn {
    /// `id`.
    Id,
    /// `volume_id`.
    VolumeId,
    /// `instance_uuid` (API filter `instance_id`).
    InstanceUuid,
    /// `attach_status`.
    AttachStatus,
    /// `attached_host`.
    AttachedHost,
    /// `attach_mode`.
    AttachMode,
    /// `mountpoint`.
    Mountpoint,
    /// `attach_time` (micros).
    AttachTime,
    /// `detach_time` (micros).
    DetachTime,
    /// `created_at` (micros).
    CreatedAt,
    /// `updated_at` (micros).
    UpdatedAt,
}

impl AttachmentColumn {
    fn sql(self) -> &'static str {
        match self {
            AttachmentColumn::Id => "a.id",
            AttachmentColumn::VolumeId => "a.volume_id",
            AttachmentColumn::InstanceUuid => "a.instance_uuid",
            AttachmentColumn::AttachStatus => "a.attach_status",
            AttachmentColumn::AttachedHost => "a.attached_host",
            AttachmentColumn::AttachMode => "a.attach_mode",
            AttachmentColumn::Mountpoint => "a.mountpoint",
            AttachmentColumn::AttachTime => "a.attach_time",
            AttachmentColumn::DetachTime => "a.detach_time",
            AttachmentColumn::CreatedAt => "a.created_at",
            AttachmentColumn::UpdatedAt => "a.updated_at",
        }
    }

    fn is_integer(self) -> bool {
        matches!(
            self,
            AttachmentColumn::AttachTime
                | AttachmentColumn::DetachTime
                | AttachmentColumn::CreatedAt
                | AttachmentColumn::UpdatedAt
        )
    }
}

/// An attachment list request.
#[derive(Clone, Debug, Default)]
pub struct AttachmentQuery {
    /// Only attachments of this project's volumes (`None`: every project).
    pub project_id: Option<String>,
    /// Column filters (all must hold).
    pub filters: Vec<(AttachmentColumn, FilterValue)>,
    /// Sort keys (`created_at` and the id complete them).
    pub sort: Vec<(AttachmentColumn, SortDir)>,
    /// Paging.
    pub page: Page<AttachmentId>,
}

crate::query::sort_column!(AttachmentColumn);

impl Db {
    fn attachment_where(&self, query: &AttachmentQuery, args: &mut Vec<Arg>) -> String {
        let mut sql = String::from(" WHERE 1 = 1");
        if let Some(project) = &query.project_id {
            sql.push_str(" AND v.project_id = ?");
            args.push(Arg::Text(project.clone()));
        }
        for (column, value) in &query.filters {
            query::push_filter(&mut sql, args, column.sql(), column.is_integer(), value);
        }
        sql
    }

    /// The page of attachments `query` asks for (keyset pagination on the
    /// completed sort keys, as the volume lists do).
    pub(crate) async fn query_attachments(
        &self,
        query: &AttachmentQuery,
    ) -> Result<Vec<Attachment>, DbError> {
        let mut args = Vec::new();
        let where_sql = self.attachment_where(query, &mut args);
        let found = self
            .fetch_page(
                &query::ListTable {
                    columns: ATTACHMENT_COLUMNS_A,
                    from: ATTACHMENT_FROM,
                    id: "a.id",
                    project: "v.project_id",
                },
                &where_sql,
                args,
                &query.sort,
                query.project_id.as_deref(),
                &query.page,
            )
            .await?;
        found.iter().map(rows::attachment).collect()
    }
}
