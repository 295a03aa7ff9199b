//! The data of one store.

use super::events::Event;
use super::table::{ChildTable, Table};

pub(crate) struct StoreInfo {
    pub(crate) store_id: u64,
    pub(crate) name: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) admin_email: String,
    pub(crate) phone: String,
    pub(crate) address: String,
    pub(crate) account_uuid: String,
}

pub(crate) struct StoreData {
    pub(crate) info: StoreInfo,
    pub(crate) orders: Table,
    pub(crate) order_products: ChildTable,
    pub(crate) order_addresses: ChildTable,
    pub(crate) order_coupons: ChildTable,
    pub(crate) order_messages: ChildTable,
    pub(crate) order_taxes: ChildTable,
    pub(crate) shipments: ChildTable,
    pub(crate) customers: Table,
    pub(crate) addresses: ChildTable,
    pub(crate) groups: Table,
    pub(crate) products: Table,
    pub(crate) custom_fields: ChildTable,
    pub(crate) images: ChildTable,
    pub(crate) skus: ChildTable,
    pub(crate) brands: Table,
    pub(crate) categories: Table,
    pub(crate) options: Table,
    /// Changes made by the request holding the write lock, for the webhooks.
    pub(crate) events: Vec<Event>,
}

impl StoreData {
    pub(crate) fn empty(info: StoreInfo) -> Self {
        StoreData {
            info,
            orders: Table::new(100),
            order_products: ChildTable::new(1),
            order_addresses: ChildTable::new(1),
            order_coupons: ChildTable::new(1),
            order_messages: ChildTable::new(1),
            order_taxes: ChildTable::new(1),
            shipments: ChildTable::new(1),
            customers: Table::new(1),
            addresses: ChildTable::new(1),
            groups: Table::new(1),
            products: Table::new(77),
            custom_fields: ChildTable::new(1),
            images: ChildTable::new(1),
            skus: ChildTable::new(1),
            brands: Table::new(1),
            categories: Table::new(18),
            options: Table::new(1),
            events: Vec::new(),
        }
    }

    /// Records a change for the store's webhooks.
    pub(crate) fn emit(&mut self, scope: &'static str, id: u64) {
        self.events.push(Event::new(scope, id));
    }
}
