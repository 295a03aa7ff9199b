//! Common resource definitions on both backends (see support/mod.rs): levels,
//! organization scoping, all-or-nothing creates, replace and delete.

use switchyard_store::*;

#[macro_use]
mod support;
use support::{Backend, TestDb};

struct PlainSealer;
impl Sealer for PlainSealer {
    fn seal(&self, _instance_id: i64, _key: &str, plaintext: &str) -> (Vec<u8>, u32) {
        (plaintext.as_bytes().to_vec(), 1)
    }
}

fn def(name: &str, paths: &[(&str, &str)]) -> ObjectDefinition {
    ObjectDefinition {
        name: name.into(),
        fields: paths.iter().map(|(p, t)| DefinitionField { path: (*p).into(), kind: (*t).into() }).collect(),
    }
}

/// Two organizations, each with one instance: (db, store, org a, instance of a, org b, instance of b).
async fn two_orgs(backend: Backend) -> (TestDb, Store, i64, i64, i64, i64) {
    let db = TestDb::new(backend).await;
    let s = db.store.clone();
    let mut ids = Vec::new();
    for who in ["a", "b"] {
        let (org, user) = s.create_organization(who, format!("o{who}").as_bytes(), "x@x", format!("u{who}").as_bytes()).await.unwrap();
        let new = NewInstance {
            organization_id: org.id,
            user_id: user.id,
            element_key: "bigcommerce".into(),
            name: who.into(),
            token_hash: format!("t{who}").into_bytes(),
            tags: vec![],
            events_enabled: false,
            webhook: None,
        };
        let instance = s.create_instance(&new, &[], &PlainSealer).await.unwrap();
        ids.push((org.id, instance));
    }
    (db, s, ids[0].0, ids[0].1, ids[1].0, ids[1].1)
}

on_both! {
    async fn levels_and_organizations_keep_their_own_names(backend: Backend) {
        let (_db, s, a, ia, b, ib) = two_orgs(backend).await;
        let org = DefinitionScope::Organization;
        let contact = def("myContact", &[("id", "string"), ("address.city", "string")]);
        assert_eq!(s.create_object_definitions(a, org, std::slice::from_ref(&contact)).await.unwrap(), DefinitionWrite::Done);
        // The same name at another level, and in another organization, is another definition.
        let narrow = def("myContact", &[("id", "string")]);
        assert_eq!(s.create_object_definitions(a, DefinitionScope::Instance(ia), std::slice::from_ref(&narrow)).await.unwrap(), DefinitionWrite::Done);
        assert_eq!(s.create_object_definitions(b, org, std::slice::from_ref(&narrow)).await.unwrap(), DefinitionWrite::Done);

        assert_eq!(s.object_definition(a, org, "myContact").await.unwrap(), Some(contact.clone()));
        assert_eq!(s.object_definition(a, DefinitionScope::Instance(ia), "myContact").await.unwrap(), Some(narrow.clone()));
        assert_eq!(s.object_definitions(b, org).await.unwrap(), vec![narrow.clone()]);
        // b reaches neither a's instance nor its definitions.
        assert_eq!(s.object_definition(b, DefinitionScope::Instance(ia), "myContact").await.unwrap(), None);
        assert!(s.object_definitions(b, DefinitionScope::Instance(ia)).await.unwrap().is_empty());
        assert_eq!(s.create_object_definitions(b, DefinitionScope::Instance(ia), std::slice::from_ref(&narrow)).await.unwrap(), DefinitionWrite::NoInstance);
        assert!(!s.delete_object_definition(b, DefinitionScope::Instance(ia), "myContact").await.unwrap());
        assert_eq!(s.replace_object_definition(b, DefinitionScope::Instance(ia), &contact).await.unwrap(), DefinitionWrite::Missing);
        assert_eq!(s.object_definition(a, DefinitionScope::Instance(ia), "myContact").await.unwrap(), Some(narrow.clone()));
        assert!(s.object_definitions(b, DefinitionScope::Instance(ib)).await.unwrap().is_empty());
    }
}

on_both! {
    async fn a_create_of_several_is_all_or_nothing(backend: Backend) {
        let (_db, s, a, _, _, _) = two_orgs(backend).await;
        let org = DefinitionScope::Organization;
        s.create_object_definitions(a, org, &[def("taken", &[("id", "string")])]).await.unwrap();
        let batch = [def("aFirst", &[("id", "string")]), def("taken", &[("x", "number")]), def("zLast", &[("id", "string")])];
        assert_eq!(s.create_object_definitions(a, org, &batch).await.unwrap(), DefinitionWrite::Exists("taken".into()));
        let names: Vec<String> = s.object_definitions(a, org).await.unwrap().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["taken"], "nothing of the failed batch stays");
        assert_eq!(s.object_definition(a, org, "taken").await.unwrap().unwrap().fields[0].path, "id");
        // A name twice in one batch stops it too.
        let twice = [def("b", &[("id", "string")]), def("b", &[("id", "string")])];
        assert_eq!(s.create_object_definitions(a, org, &twice).await.unwrap(), DefinitionWrite::Exists("b".into()));
        assert_eq!(s.object_definitions(a, org).await.unwrap().len(), 1);
        let two = [def("b", &[("id", "string")]), def("a", &[("id", "string")])];
        assert_eq!(s.create_object_definitions(a, org, &two).await.unwrap(), DefinitionWrite::Done);
        let names: Vec<String> = s.object_definitions(a, org).await.unwrap().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["a", "b", "taken"], "listed by name");
    }
}

on_both! {
    async fn replace_and_delete_touch_one_level(backend: Backend) {
        let (_db, s, a, ia, _, _) = two_orgs(backend).await;
        let (org, inst) = (DefinitionScope::Organization, DefinitionScope::Instance(ia));
        s.create_object_definitions(a, org, &[def("c", &[("id", "string")]), def("d", &[("id", "string")])]).await.unwrap();
        s.create_object_definitions(a, inst, &[def("c", &[("id", "string")])]).await.unwrap();
        let wider = def("c", &[("id", "string"), ("when", "date")]);
        assert_eq!(s.replace_object_definition(a, org, &wider).await.unwrap(), DefinitionWrite::Done);
        assert_eq!(s.object_definition(a, org, "c").await.unwrap(), Some(wider));
        assert_eq!(s.object_definition(a, inst, "c").await.unwrap().unwrap().fields.len(), 1, "the instance's kept");
        assert_eq!(s.replace_object_definition(a, org, &def("nope", &[("id", "string")])).await.unwrap(), DefinitionWrite::Missing);

        assert!(s.delete_object_definition(a, org, "c").await.unwrap());
        assert!(!s.delete_object_definition(a, org, "c").await.unwrap());
        assert!(s.object_definition(a, inst, "c").await.unwrap().is_some());
        assert_eq!(s.delete_object_definitions(a, org).await.unwrap(), 1);
        assert!(s.object_definitions(a, org).await.unwrap().is_empty());
        assert_eq!(s.object_definitions(a, inst).await.unwrap().len(), 1);
        // An instance's definitions go with it.
        assert!(s.delete_instance(a, ia).await.unwrap());
        assert!(s.object_definitions(a, inst).await.unwrap().is_empty());
    }
}

on_both! {
    async fn transformations_keep_to_their_level_and_guard_the_definitions_they_map(backend: Backend) {
        let (_db, s, a, ia, b, ib) = two_orgs(backend).await;
        let org = TransformationScope::Organization { element_key: "bigcommerce".into() };
        let inst = TransformationScope::Instance { id: ia, element_key: "bigcommerce".into() };
        let body = r#"{"vendorName":"customers","fields":[]}"#;
        assert_eq!(s.create_transformation(a, &org, "myContact", "customers", body).await.unwrap(), TransformationWrite::Done);
        assert_eq!(s.create_transformation(a, &org, "myContact", "customers", body).await.unwrap(), TransformationWrite::Exists);
        assert_eq!(s.create_transformation(a, &inst, "myContact", "customers", body).await.unwrap(), TransformationWrite::Done);
        // Another organization's instance is not a scope of this one.
        let theirs = TransformationScope::Instance { id: ib, element_key: "bigcommerce".into() };
        assert_eq!(s.create_transformation(a, &theirs, "myContact", "customers", body).await.unwrap(), TransformationWrite::NoInstance);
        assert_eq!(s.create_transformation(b, &org, "myContact", "orders", body).await.unwrap(), TransformationWrite::Done);
        let other_element = TransformationScope::Organization { element_key: "infusionsoftcrm".into() };
        assert_eq!(s.create_transformation(a, &other_element, "myContact", "contacts", body).await.unwrap(), TransformationWrite::Done);

        let all = s.organization_transformations(a).await.unwrap();
        let seen: Vec<(&str, Option<i64>)> = all.iter().map(|r| (r.element_key.as_str(), r.instance_id)).collect();
        assert_eq!(seen, [("bigcommerce", None), ("bigcommerce", Some(ia)), ("infusionsoftcrm", None)]);
        assert_eq!(s.organization_transformations(b).await.unwrap()[0].vendor_name, "orders");

        let wider = r#"{"vendorName":"customers","fields":[{"path":"a","vendorPath":"b"}]}"#;
        assert_eq!(s.replace_transformation(a, &inst, "myContact", "customers", wider).await.unwrap(), TransformationWrite::Done);
        assert_eq!(s.replace_transformation(a, &inst, "nope", "customers", wider).await.unwrap(), TransformationWrite::Missing);
        let rows = s.organization_transformations(a).await.unwrap();
        assert_eq!(rows.iter().filter(|r| r.body == wider).count(), 1, "only the instance's was replaced");

        // A definition is guarded by the transformations of its name: the
        // organization's by any of them, an instance's by that instance's.
        let contact = def("myContact", &[("id", "string")]);
        s.create_object_definitions(a, DefinitionScope::Organization, std::slice::from_ref(&contact)).await.unwrap();
        s.create_object_definitions(a, DefinitionScope::Instance(ia), std::slice::from_ref(&contact)).await.unwrap();
        let users = s.delete_definition_unused(a, None, "myContact").await.unwrap().unwrap_err();
        assert_eq!(users, ["element bigcommerce", &format!("instance {ia}"), "element infusionsoftcrm"]);
        assert_eq!(s.delete_definition_unused(a, Some(ia), "myContact").await.unwrap().unwrap_err(), [format!("instance {ia}")]);
        assert!(s.delete_transformation(a, &inst, "myContact").await.unwrap());
        assert!(!s.delete_transformation(a, &inst, "myContact").await.unwrap());
        assert_eq!(s.delete_definition_unused(a, Some(ia), "myContact").await.unwrap(), Ok(true));
        assert_eq!(s.delete_definition_unused(a, Some(ia), "myContact").await.unwrap(), Ok(false));
        assert_eq!(s.delete_transformations(a, &org).await.unwrap(), 1);
        assert_eq!(s.delete_transformations(a, &other_element).await.unwrap(), 1);
        assert_eq!(s.delete_definition_unused(a, None, "myContact").await.unwrap(), Ok(true));
        assert_eq!(s.organization_transformations(b).await.unwrap().len(), 1, "b's untouched");

        // An instance's transformations go with it.
        s.create_transformation(a, &inst, "x", "customers", body).await.unwrap();
        assert!(s.delete_instance(a, ia).await.unwrap());
        assert!(s.organization_transformations(a).await.unwrap().is_empty());
    }
}

on_both! {
    async fn a_written_transformation_is_announced_to_other_processes(backend: Backend) {
        let (_db, s, a, _, _, _) = two_orgs(backend).await;
        let mut changes = s.listen_changes().await.unwrap();
        let org = TransformationScope::Organization { element_key: "bigcommerce".into() };
        s.create_transformation(a, &org, "myContact", "customers", "{}").await.unwrap();
        let heard = tokio::time::timeout(std::time::Duration::from_secs(5), changes.next()).await.expect("announced within 5 s");
        assert_eq!(heard, changes::Change::Transformations(a));
    }
}

on_both! {
    /// Transactions that read before they write do not fail when another
    /// connection commits in between: with SQLite's deferred BEGIN such a
    /// transaction got SQLITE_BUSY at once (WAL, the busy timeout never consulted),
    /// seen as a rare 500 on `DELETE .../objects/{name}/definitions` in CI.
    async fn deletes_that_read_first_survive_concurrent_writes(backend: Backend) {
        let (_db, s, a, _, b, _) = two_orgs(backend).await;
        let org = DefinitionScope::Organization;
        let writer = {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    let d = def(&format!("d{i}"), &[("id", "string")]);
                    s.create_object_definitions(a, org, &[d]).await.unwrap();
                }
            })
        };
        let mut deletes = 0;
        while !writer.is_finished() {
            // A name b never defined: reads the transformations, deletes nothing.
            let deleted = s.delete_definition_unused(b, None, "nothing").await.expect("a read-then-write transaction beside a writer");
            assert_eq!(deleted, Ok(false));
            deletes += 1;
        }
        writer.await.unwrap();
        assert!(deletes > 0);
    }
}
