//! Transformations (`/organizations/elements/{key}/transformations/...` and
//! `/instances/{id}/transformations/...`): how an element's vendor object maps onto
//! an organization's common resource. Kept as the engine validated them (a JSON
//! body); every query is scoped by organization.

use crate::{now, on_pool, on_tx, Result, Store};

/// Where a transformation lives: for every instance of an element in the
/// organization, or for one instance (which must be the organization's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformationScope {
    Organization { element_key: String },
    Instance { id: i64, element_key: String },
}

impl TransformationScope {
    pub fn element_key(&self) -> &str {
        match self {
            TransformationScope::Organization { element_key } | TransformationScope::Instance { element_key, .. } => element_key,
        }
    }

    pub fn instance_id(&self) -> Option<i64> {
        match self {
            TransformationScope::Organization { .. } => None,
            TransformationScope::Instance { id, .. } => Some(*id),
        }
    }
}

/// One stored transformation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformationRow {
    pub element_key: String,
    /// `None` at organization level.
    pub instance_id: Option<i64>,
    /// The common resource's name (or a vendor object's, for a renamed copy).
    pub object_name: String,
    /// The element's object it maps (`contacts`, `orders-shipments`).
    pub vendor_name: String,
    /// The transformation's JSON, as the engine wrote it.
    pub body: String,
}

/// How a write of a transformation went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformationWrite {
    Done,
    /// One exists for that object at that level (nothing was written).
    Exists,
    /// None to replace.
    Missing,
    /// The scope's instance is not the organization's (nothing was written).
    NoInstance,
}

/// Rows of one level: `$1` organization, `$2` element key, `$3` instance or NULL.
/// An instance's rows are found by the instance alone (its element is fixed).
const SCOPED: &str = "organization_id = $1 AND ((instance_id IS NULL AND $3 IS NULL AND element_key = $2) OR instance_id = $3)";

type Row = (String, Option<i64>, String, String, String);

fn row(r: Row) -> TransformationRow {
    TransformationRow { element_key: r.0, instance_id: r.1, object_name: r.2, vendor_name: r.3, body: r.4 }
}

impl Store {
    /// Every transformation of the organization, at both levels, ordered by
    /// element, instance (organization level first) and object name. What the
    /// engine keeps in memory for hub calls.
    pub async fn organization_transformations(&self, org_id: i64) -> Result<Vec<TransformationRow>> {
        let rows: Vec<Row> = on_pool!(self, |p, pg| {
            sqlx::query_as(
                "SELECT element_key, instance_id, object_name, vendor_name, body FROM transformations
                 WHERE organization_id = $1 ORDER BY element_key, instance_id NULLS FIRST, object_name",
            )
            .bind(org_id)
            .fetch_all(p)
            .await?
        });
        Ok(rows.into_iter().map(row).collect())
    }

    /// Creates a transformation; `Exists` when that level has one for the object.
    pub async fn create_transformation(&self, org_id: i64, scope: &TransformationScope, object: &str, vendor_name: &str, body: &str) -> Result<TransformationWrite> {
        let written = on_pool!(self, |p, pg| {
            // The instance is checked in the same statement, so it cannot be another
            // organization's, nor deleted between a check and the write.
            sqlx::query(
                "INSERT INTO transformations (organization_id, element_key, instance_id, object_name, vendor_name, body, created_at, updated_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $7
                 WHERE $3 IS NULL OR EXISTS (SELECT 1 FROM instances WHERE id = $3 AND organization_id = $1)",
            )
            .bind(org_id)
            .bind(scope.element_key())
            .bind(scope.instance_id())
            .bind(object)
            .bind(vendor_name)
            .bind(body)
            .bind(now())
            .execute(p)
            .await
            .map(|done| done.rows_affected())
        });
        match written {
            Ok(0) => Ok(TransformationWrite::NoInstance),
            Ok(_) => Ok(TransformationWrite::Done),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(TransformationWrite::Exists),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces an existing transformation.
    pub async fn replace_transformation(&self, org_id: i64, scope: &TransformationScope, object: &str, vendor_name: &str, body: &str) -> Result<TransformationWrite> {
        let done = on_pool!(self, |p, pg| {
            sqlx::query(&format!("UPDATE transformations SET vendor_name = $5, body = $6, updated_at = $7 WHERE {SCOPED} AND object_name = $4"))
                .bind(org_id)
                .bind(scope.element_key())
                .bind(scope.instance_id())
                .bind(object)
                .bind(vendor_name)
                .bind(body)
                .bind(now())
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(if done == 1 { TransformationWrite::Done } else { TransformationWrite::Missing })
    }

    /// Deletes one transformation; false when there was none.
    pub async fn delete_transformation(&self, org_id: i64, scope: &TransformationScope, object: &str) -> Result<bool> {
        let done = on_pool!(self, |p, pg| {
            sqlx::query(&format!("DELETE FROM transformations WHERE {SCOPED} AND object_name = $4"))
                .bind(org_id)
                .bind(scope.element_key())
                .bind(scope.instance_id())
                .bind(object)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Deletes every transformation of one level; how many went.
    pub async fn delete_transformations(&self, org_id: i64, scope: &TransformationScope) -> Result<u64> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query(&format!("DELETE FROM transformations WHERE {SCOPED}"))
                .bind(org_id)
                .bind(scope.element_key())
                .bind(scope.instance_id())
                .execute(p)
                .await?
                .rows_affected()
        }))
    }

    /// Deletes a common resource definition unless transformations map it, in one
    /// transaction (a transformation created meanwhile cannot be left pointing at
    /// nothing). An organization-level definition is used by any transformation of
    /// that object name in the organization; an instance's by that instance's
    /// transformations. `Ok(Err(users))` names the users ("element sfdc" /
    /// "instance 12"); `Ok(Ok(false))` when there was no such definition.
    pub async fn delete_definition_unused(&self, org_id: i64, instance_id: Option<i64>, name: &str) -> Result<std::result::Result<bool, Vec<String>>> {
        let mut tx = self.begin().await?;
        let users: Vec<(String, Option<i64>)> = on_tx!(&mut tx, |c, pg| {
            sqlx::query_as(
                "SELECT element_key, instance_id FROM transformations
                 WHERE organization_id = $1 AND object_name = $2 AND ($3 IS NULL OR instance_id = $3)
                 ORDER BY element_key, instance_id NULLS FIRST",
            )
            .bind(org_id)
            .bind(name)
            .bind(instance_id)
            .fetch_all(&mut *c)
            .await?
        });
        if !users.is_empty() {
            let named = users
                .into_iter()
                .map(|(key, instance)| match instance {
                    Some(id) => format!("instance {id}"),
                    None => format!("element {key}"),
                })
                .collect();
            return Ok(Err(named));
        }
        let done = on_tx!(&mut tx, |c, pg| {
            sqlx::query("DELETE FROM object_definitions WHERE organization_id = $1 AND name = $2 AND (instance_id = $3 OR (instance_id IS NULL AND $3 IS NULL))")
                .bind(org_id)
                .bind(name)
                .bind(instance_id)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        Ok(Ok(done == 1))
    }
}
