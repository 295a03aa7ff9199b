//! Common resource definitions (`/organizations/objects/...` and
//! `/instances/{id}/objects/...`): an organization's own objects, by name, at
//! organization level or for one of its instances. Every query is scoped by
//! organization here; the fields are kept as the engine validated them.

use serde::{Deserialize, Serialize};
use crate::{now, on_pool, on_tx, Result, Store};

/// Where a definition lives: the organization's own, or one instance's (which
/// must be the organization's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinitionScope {
    Organization,
    Instance(i64),
}

impl DefinitionScope {
    fn instance_id(self) -> Option<i64> {
        match self {
            DefinitionScope::Organization => None,
            DefinitionScope::Instance(id) => Some(id),
        }
    }
}

/// One field of a definition: `{"path": "address.city", "type": "string"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionField {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A common resource: its name and fields, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDefinition {
    pub name: String,
    pub fields: Vec<DefinitionField>,
}

/// How a write of definitions went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefinitionWrite {
    Done,
    /// A definition of this name exists at that level (nothing was written).
    Exists(String),
    /// No definition of that name to replace.
    Missing,
    /// The scope's instance is not the organization's (nothing was written).
    NoInstance,
}

/// Rows of one level: `$1` the organization, `$2` the instance or NULL.
const SCOPED: &str = "organization_id = $1 AND (instance_id = $2 OR (instance_id IS NULL AND $2 IS NULL))";

fn definition(row: (String, String)) -> ObjectDefinition {
    // The column is written only from validated fields; an unreadable one reads as none.
    ObjectDefinition { name: row.0, fields: serde_json::from_str(&row.1).unwrap_or_default() }
}

impl Store {
    /// The definitions of one level, by name.
    pub async fn object_definitions(&self, org_id: i64, scope: DefinitionScope) -> Result<Vec<ObjectDefinition>> {
        let rows: Vec<(String, String)> = on_pool!(self, |p, pg| {
            sqlx::query_as(&format!("SELECT name, fields FROM object_definitions WHERE {SCOPED} ORDER BY name"))
                .bind(org_id)
                .bind(scope.instance_id())
                .fetch_all(p)
                .await?
        });
        Ok(rows.into_iter().map(definition).collect())
    }

    /// One definition of one level.
    pub async fn object_definition(&self, org_id: i64, scope: DefinitionScope, name: &str) -> Result<Option<ObjectDefinition>> {
        let row: Option<(String, String)> = on_pool!(self, |p, pg| {
            sqlx::query_as(&format!("SELECT name, fields FROM object_definitions WHERE {SCOPED} AND name = $3"))
                .bind(org_id)
                .bind(scope.instance_id())
                .bind(name)
                .fetch_optional(p)
                .await?
        });
        Ok(row.map(definition))
    }

    /// Creates every definition or none: the first name that exists at that level
    /// (stored before, or twice in `definitions`) stops it.
    pub async fn create_object_definitions(
        &self,
        org_id: i64,
        scope: DefinitionScope,
        definitions: &[ObjectDefinition],
    ) -> Result<DefinitionWrite> {
        let mut tx = self.begin().await?;
        let created = now();
        for d in definitions {
            let fields = serde_json::to_string(&d.fields).unwrap_or_else(|_| "[]".into());
            // The instance is checked in the same statement, so it cannot be another
            // organization's, nor deleted between a check and the write.
            let written = on_tx!(&mut tx, |c, pg| {
                sqlx::query(
                    "INSERT INTO object_definitions (organization_id, instance_id, name, fields, created_at, updated_at)
                     SELECT $1, $2, $3, $4, $5, $5
                     WHERE $2 IS NULL OR EXISTS (SELECT 1 FROM instances WHERE id = $2 AND organization_id = $1)",
                )
                .bind(org_id)
                .bind(scope.instance_id())
                .bind(&d.name)
                .bind(&fields)
                .bind(&created)
                .execute(&mut *c)
                .await
                .map(|done| done.rows_affected())
            });
            match written {
                Ok(0) => return Ok(DefinitionWrite::NoInstance),
                Ok(_) => {}
                // The transaction is dropped unfinished: nothing of this call stays.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(DefinitionWrite::Exists(d.name.clone())),
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit().await?;
        Ok(DefinitionWrite::Done)
    }

    /// Replaces the fields of an existing definition.
    pub async fn replace_object_definition(&self, org_id: i64, scope: DefinitionScope, definition: &ObjectDefinition) -> Result<DefinitionWrite> {
        let fields = serde_json::to_string(&definition.fields).unwrap_or_else(|_| "[]".into());
        let done = on_pool!(self, |p, pg| {
            sqlx::query(&format!("UPDATE object_definitions SET fields = $4, updated_at = $5 WHERE {SCOPED} AND name = $3"))
                .bind(org_id)
                .bind(scope.instance_id())
                .bind(&definition.name)
                .bind(&fields)
                .bind(now())
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(if done == 1 { DefinitionWrite::Done } else { DefinitionWrite::Missing })
    }

    /// Deletes one definition; false when there was none.
    pub async fn delete_object_definition(&self, org_id: i64, scope: DefinitionScope, name: &str) -> Result<bool> {
        let done = on_pool!(self, |p, pg| {
            sqlx::query(&format!("DELETE FROM object_definitions WHERE {SCOPED} AND name = $3"))
                .bind(org_id)
                .bind(scope.instance_id())
                .bind(name)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Deletes every definition of one level; how many went.
    pub async fn delete_object_definitions(&self, org_id: i64, scope: DefinitionScope) -> Result<u64> {
        Ok(on_pool!(self, |p, pg| {
            sqlx::query(&format!("DELETE FROM object_definitions WHERE {SCOPED}"))
                .bind(org_id)
                .bind(scope.instance_id())
                .execute(p)
                .await?
                .rows_affected()
        }))
    }
}
