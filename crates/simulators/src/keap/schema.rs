//! The tables the simulator serves, with Keap's field names (PascalCase) and types, as
//! listed in Keap's "XML-RPC Table Schema" (a subset of the fields of each table).

/// How a field is typed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `Id`: an `i4`, assigned by the vendor, read-only.
    Id,
    /// An `i4` (foreign keys, flags).
    Int,
    /// A `double` (money).
    Double,
    /// A `string`.
    Text,
    /// A `dateTime.iso8601` (no zone; the simulator's clock is UTC).
    Date,
}

#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// Set by the vendor (creation and update stamps); ignored in writes.
    pub(crate) system: bool,
}

const fn f(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, system: false }
}

const fn sys(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, system: true }
}

use Kind::{Date, Double, Id, Int, Text};

#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) fields: &'static [Field],
    /// Whether add/update/delete are allowed (Keap's `User` table is read-only).
    pub(crate) writable: bool,
    /// The field stamped at creation (`DateCreated`, or `CreationDate` for `ContactAction`).
    pub(crate) created: Option<&'static str>,
    /// The field stamped on every write.
    pub(crate) updated: Option<&'static str>,
    /// Ids grow by this much (Keap's contact ids are even: they grow by 2).
    pub(crate) id_step: i32,
}

impl Table {
    pub(crate) fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

pub(crate) static CONTACT: Table = Table {
    name: "Contact",
    fields: &[
        sys("Id", Id),
        f("FirstName", Text),
        f("MiddleName", Text),
        f("LastName", Text),
        f("Nickname", Text),
        f("Title", Text),
        f("Suffix", Text),
        f("Email", Text),
        f("EmailAddress2", Text),
        f("EmailAddress3", Text),
        f("Phone1", Text),
        f("Phone1Type", Text),
        f("Phone1Ext", Text),
        f("Phone2", Text),
        f("Phone2Type", Text),
        f("Fax1", Text),
        f("Company", Text),
        f("CompanyID", Int),
        f("AccountId", Int),
        f("JobTitle", Text),
        f("StreetAddress1", Text),
        f("StreetAddress2", Text),
        f("City", Text),
        f("State", Text),
        f("PostalCode", Text),
        f("ZipFour1", Text),
        f("Country", Text),
        f("Website", Text),
        f("ContactType", Text),
        f("ContactNotes", Text),
        f("Leadsource", Text),
        f("LeadSourceId", Int),
        f("Birthday", Date),
        f("Groups", Text),
        f("OwnerID", Int),
        f("CreatedBy", Int),
        f("LastUpdatedBy", Int),
        sys("DateCreated", Date),
        sys("LastUpdated", Date),
    ],
    writable: true,
    created: Some("DateCreated"),
    updated: Some("LastUpdated"),
    id_step: 2,
};

pub(crate) static COMPANY: Table = Table {
    name: "Company",
    fields: &[
        sys("Id", Id),
        f("Company", Text),
        f("CompanyID", Int),
        f("AccountId", Int),
        f("FirstName", Text),
        f("LastName", Text),
        f("Email", Text),
        f("Phone1", Text),
        f("Phone1Type", Text),
        f("Fax1", Text),
        f("StreetAddress1", Text),
        f("StreetAddress2", Text),
        f("City", Text),
        f("State", Text),
        f("PostalCode", Text),
        f("Country", Text),
        f("Website", Text),
        f("ContactNotes", Text),
        f("OwnerID", Int),
        f("CreatedBy", Int),
        f("LastUpdatedBy", Int),
        sys("DateCreated", Date),
        sys("LastUpdated", Date),
    ],
    writable: true,
    created: Some("DateCreated"),
    updated: Some("LastUpdated"),
    id_step: 2,
};

pub(crate) static LEAD: Table = Table {
    name: "Lead",
    fields: &[
        sys("Id", Id),
        f("OpportunityTitle", Text),
        f("ContactID", Int),
        f("StageID", Int),
        f("StatusID", Int),
        f("UserID", Int),
        f("AffiliateId", Int),
        f("Leadsource", Text),
        f("OpportunityNotes", Text),
        f("Objection", Text),
        f("ProjectedRevenueLow", Double),
        f("ProjectedRevenueHigh", Double),
        f("MonthlyRevenue", Double),
        f("OrderRevenue", Double),
        f("IncludeInForecast", Int),
        f("EstimatedCloseDate", Date),
        f("NextActionDate", Date),
        f("NextActionNotes", Text),
        f("DateInStage", Date),
        f("CreatedBy", Int),
        f("LastUpdatedBy", Int),
        sys("DateCreated", Date),
        sys("LastUpdated", Date),
    ],
    writable: true,
    created: Some("DateCreated"),
    updated: Some("LastUpdated"),
    id_step: 1,
};

pub(crate) static CONTACT_ACTION: Table = Table {
    name: "ContactAction",
    fields: &[
        sys("Id", Id),
        f("ContactId", Int),
        f("OpportunityId", Int),
        f("ObjectType", Text),
        f("ActionType", Text),
        f("ActionDescription", Text),
        f("CreationNotes", Text),
        f("ActionDate", Date),
        f("EndDate", Date),
        f("PopupDate", Date),
        f("CompletionDate", Date),
        f("IsAppointment", Int),
        f("Priority", Int),
        f("Accepted", Int),
        f("UserID", Int),
        f("CreatedBy", Int),
        f("LastUpdatedBy", Int),
        sys("CreationDate", Date),
        sys("LastUpdated", Date),
    ],
    writable: true,
    created: Some("CreationDate"),
    updated: Some("LastUpdated"),
    id_step: 1,
};

pub(crate) static USER: Table = Table {
    name: "User",
    fields: &[
        sys("Id", Id),
        f("FirstName", Text),
        f("MiddleName", Text),
        f("LastName", Text),
        f("Nickname", Text),
        f("Title", Text),
        f("Email", Text),
        f("EmailAddress2", Text),
        f("Phone1", Text),
        f("Phone1Type", Text),
        f("Phone1Ext", Text),
        f("Phone2", Text),
        f("Fax1", Text),
        f("StreetAddress1", Text),
        f("City", Text),
        f("State", Text),
        f("PostalCode", Text),
        f("Country", Text),
        f("GlobalUserId", Int),
        f("Partner", Int),
    ],
    writable: false,
    created: None,
    updated: None,
    id_step: 1,
};

pub(crate) static TABLES: [&Table; 5] = [&CONTACT, &COMPANY, &LEAD, &CONTACT_ACTION, &USER];

pub(crate) fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().copied().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_an_id_and_unique_fields() {
        for t in TABLES {
            assert_eq!(t.fields[0].name, "Id");
            let mut names: Vec<_> = t.fields.iter().map(|f| f.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), t.fields.len(), "{}", t.name);
            for name in t.created.iter().chain(t.updated.iter()) {
                assert!(t.field(name).is_some(), "{}.{name}", t.name);
            }
        }
    }
}
