//! Deterministic seed data: the same [`StoreConfig`] always gives the same store.
//!
//! Seeded records are dated in the year before [`ANCHOR`], so they are all in the past
//! and stable; records written through the API carry the real clock.

use serde_json::{json, Map, Value};

use super::catalog;
use super::customers;
use super::data::{StoreData, StoreInfo};
use super::fmt::rfc2822;
use super::orders::{self, Line, NewOrder};
use super::rng::Rng;
use super::table::{obj, Record};
use super::StoreConfig;

/// 2025-01-06T00:00:00Z: seeded dates lie in the 365 days before it.
pub(crate) const ANCHOR: i64 = 1_736_121_600;
const YEAR: i64 = 365 * 86_400;

const FIRST: &[&str] = &[
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Mateo", "Isabella", "Lucas", "Mia", "Amara",
    "Hiroshi", "Priya", "Chen", "Fatima", "Diego", "Ingrid", "Kwame", "Leila", "Tomasz", "Aoife", "Rafael", "Nadia",
    "Samuel", "Grace", "Owen", "Zoe", "Arjun", "Maya", "Felix", "Hannah",
];
const LAST: &[&str] = &[
    "Garcia", "Smith", "Johnson", "Nguyen", "Okafor", "Müller", "Rossi", "Kowalski", "Tanaka", "Patel", "O'Brien",
    "Haddad", "Silva", "Andersson", "Kim", "Novak", "Dubois", "Martinez", "Walker", "Chen", "Murphy", "Lopez",
    "Ibrahim", "Schmidt", "Brown", "Wilson", "Moreau", "Costa",
];
const COMPANIES: &[&str] = &[
    "", "", "", "Bluebird Interiors", "Cedar & Pine Co.", "Northwind Traders", "Harbor Lane Cafe", "Atlas Studio",
    "Greenleaf Florists", "Summit Outfitters", "Lumen Design", "Riverbend Bakery",
];
const STREETS: &[&str] = &[
    "Main Street", "Oak Avenue", "Maple Drive", "Cedar Lane", "Sunset Boulevard", "Lake Shore Drive", "Elm Street",
    "Congress Avenue", "Mission Street", "Pine Street", "Harbor Road", "Canal Street",
];
/// City, state, zip, country, iso2, phone prefix.
const CITIES: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("Austin", "Texas", "78751", "United States", "US", "512"),
    ("Seattle", "Washington", "98101", "United States", "US", "206"),
    ("Denver", "Colorado", "80202", "United States", "US", "303"),
    ("Chicago", "Illinois", "60601", "United States", "US", "312"),
    ("Portland", "Oregon", "97205", "United States", "US", "503"),
    ("Brooklyn", "New York", "11201", "United States", "US", "718"),
    ("San Francisco", "California", "94103", "United States", "US", "415"),
    ("Boston", "Massachusetts", "02108", "United States", "US", "617"),
    ("Atlanta", "Georgia", "30303", "United States", "US", "404"),
    ("Miami", "Florida", "33130", "United States", "US", "305"),
    ("Sydney", "New South Wales", "2000", "Australia", "AU", "02"),
    ("Toronto", "Ontario", "M5H 2N2", "Canada", "CA", "416"),
    ("London", "England", "EC1A 1BB", "United Kingdom", "GB", "020"),
];
const BRANDS: &[&str] = &["Common Good", "Sagaform", "OFS", "Barrel & Oak", "Fog Linen Work", "Able Brewing", "Kinfolk Goods", "Hearth & Loom"];

/// Name, parent index (into this list, or none), description.
const CATEGORIES: &[(&str, Option<usize>)] = &[
    ("Shop All", None),
    ("Kitchen", None),
    ("Bath", None),
    ("Garden", None),
    ("Publications", None),
    ("Utility", None),
    ("Cookware", Some(1)),
    ("Tableware", Some(1)),
    ("Towels", Some(2)),
    ("Planters", Some(3)),
];

/// Product name, category index, base price, weight.
const PRODUCTS: &[(&str, usize, f64, f64)] = &[
    ("Orbit Terrarium", 3, 109.0, 2.0),
    ("Chambray Tea Towel", 8, 49.0, 0.5),
    ("Stoneware Pour-Over Set", 6, 82.5, 3.0),
    ("Canvas Laundry Cart", 5, 200.0, 12.0),
    ("Linen Apron", 1, 34.95, 0.6),
    ("Copper Watering Can", 3, 58.0, 1.8),
    ("Oak Serving Board", 7, 42.0, 2.2),
    ("Cast Iron Skillet 10\"", 6, 64.0, 6.0),
    ("Hand-thrown Mug", 7, 26.0, 0.9),
    ("Waffle Bath Towel", 8, 39.5, 1.1),
    ("Field Notes Journal", 4, 14.0, 0.3),
    ("Brass Dust Pan", 5, 36.0, 1.4),
    ("Glass Storage Jar", 1, 18.5, 1.0),
    ("Hanging Planter", 9, 29.0, 1.2),
    ("Enamel Colander", 6, 45.0, 1.5),
    ("Seasonal Cookbook", 4, 32.0, 1.7),
    ("Cotton Bath Mat", 2, 55.0, 1.6),
    ("Ceramic Salad Bowl", 7, 68.0, 2.4),
    ("Garden Tool Roll", 3, 74.0, 2.0),
    ("Wool Dryer Balls", 5, 19.0, 0.4),
    ("French Press", 6, 48.0, 1.9),
    ("Bamboo Steamer", 6, 27.5, 1.0),
    ("Cedar Soap Dish", 2, 12.0, 0.3),
    ("Terracotta Pot Set", 9, 38.0, 4.5),
];
const VARIANTS: &[&str] = &["Small", "Large", "Natural", "Charcoal", "Sage", "Classic"];

const PAYMENT_METHODS: &[&str] = &["Credit Card", "Credit Card", "Credit Card", "PayPal", "Manual", "Cash on Delivery", "Test Payment Gateway"];
/// Status ids and their weights in the seed.
const STATUS_WEIGHTS: &[(i64, u32)] = &[(10, 30), (11, 20), (2, 14), (7, 8), (9, 5), (1, 5), (5, 5), (3, 3), (4, 3), (14, 2), (6, 2), (12, 1), (13, 1), (8, 1)];
const COUPONS: &[(i64, &str, f64)] = &[(1, "WELCOME10", 10.0), (2, "SPRING5", 5.0), (3, "FREESHIP", 7.5)];
const MESSAGES: &[&str] = &[
    "Could you gift wrap this, please?",
    "Please leave the parcel with the neighbour if I am out.",
    "Is it possible to ship this before Friday?",
    "Thanks, received everything in good shape!",
];
const CARRIERS: &[&str] = &["usps", "ups", "fedex"];

pub(crate) struct Person {
    pub(crate) first: String,
    pub(crate) last: String,
    pub(crate) email: String,
    pub(crate) company: String,
    pub(crate) phone: String,
    pub(crate) address: Map<String, Value>,
}

fn person(rng: &mut Rng, n: usize) -> Person {
    let first = rng.pick(FIRST).to_string();
    let last = rng.pick(LAST).to_string();
    let simple = |s: &str| -> String {
        s.chars()
            .filter_map(|c| match c {
                'ü' => Some('u'),
                c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
                _ => None,
            })
            .collect()
    };
    let email = format!("{}.{}{}@example.com", simple(&first), simple(&last), n);
    let company = rng.pick(COMPANIES).to_string();
    let (city, state, zip, country, iso, prefix) = *rng.pick(CITIES);
    let phone = format!("{prefix}-555-{:04}", rng.range(100, 9999));
    let address = obj(json!({
        "first_name": first, "last_name": last, "company": company,
        "street_1": format!("{} {}", rng.range(1, 2999), rng.pick(STREETS)),
        "street_2": if rng.chance(0.2) { format!("Apt {}", rng.range(1, 40)) } else { String::new() },
        "city": city, "state": state, "zip": zip, "country": country, "country_iso2": iso,
        "phone": phone, "email": email
    }));
    Person { first, last, email, company, phone, address }
}

/// Seeds a store from its configuration.
pub(crate) fn seed_store(cfg: &StoreConfig) -> StoreData {
    let mut rng = Rng::from_text(&cfg.hash, (cfg.seed_orders as u64) << 40 ^ (cfg.seed_customers as u64) << 20 ^ cfg.seed_products as u64);
    let owner = person(&mut rng, 0);
    // Drawn even when configured, so the rest of the seed stays the same.
    let seeded_id = 1_000_000 + rng.range(1, 999_999) as u64;
    let info = StoreInfo {
        store_id: cfg.store_id.unwrap_or(seeded_id),
        name: format!("{}'s Home Goods", owner.first),
        first_name: owner.first.clone(),
        last_name: owner.last.clone(),
        admin_email: format!("owner@{}.example.com", cfg.hash.to_lowercase()),
        phone: owner.phone.clone(),
        address: format!(
            "{}\n{}, {} {}",
            owner.address["street_1"].as_str().unwrap_or(""),
            owner.address["city"].as_str().unwrap_or(""),
            owner.address["state"].as_str().unwrap_or(""),
            owner.address["zip"].as_str().unwrap_or("")
        ),
        account_uuid: format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            rng.next_u64() as u32,
            rng.next_u64() as u16,
            rng.next_u64() & 0xfff,
            rng.next_u64() & 0xfff,
            rng.next_u64() & 0xffff_ffff_ffff
        ),
    };
    let mut d = StoreData::empty(info);
    let start = ANCHOR - YEAR;

    // Catalog.
    for (i, name) in BRANDS.iter().enumerate() {
        let id = d.brands.alloc();
        let v = catalog::brand_value(id, &obj(json!({ "name": name, "page_title": name, "image_file": format!("brand_{}.jpg", i + 1) })));
        d.brands.insert(Record::new(id, start, start, v));
    }
    let mut cat_ids = Vec::new();
    for (i, (name, parent)) in CATEGORIES.iter().enumerate() {
        let id = d.categories.alloc();
        let parent_id = parent.map(|p| cat_ids[p]).unwrap_or(0u64);
        let v = catalog::category_value(
            id,
            &obj(json!({ "name": name, "parent_id": parent_id, "sort_order": i, "description": format!("<p>Everything {} for your home.</p>", name.to_lowercase()) })),
            parent.map(|p| vec![cat_ids[p], id]).unwrap_or_else(|| vec![id]),
        );
        cat_ids.push(id);
        d.categories.insert(Record::new(id, start, start, v));
    }
    let size_option = d.options.alloc();
    d.options.insert(Record::new(size_option, start, start, catalog::option_value(size_option, "Size", "Size", "RB")));
    let color_option = d.options.alloc();
    d.options.insert(Record::new(color_option, start, start, catalog::option_value(color_option, "Colors", "Color", "CS")));
    let gift_option = d.options.alloc();
    d.options.insert(Record::new(gift_option, start, start, catalog::option_value(gift_option, "Gift Wrapping", "Is this a gift?", "C")));

    for n in 0..cfg.seed_products {
        let (base, cat, price, weight) = PRODUCTS[n % PRODUCTS.len()];
        let name = if n < PRODUCTS.len() { base.to_string() } else { format!("{base} - {}", VARIANTS[(n / PRODUCTS.len() - 1) % VARIANTS.len()]) };
        let id = d.products.alloc();
        let created = start + rng.range(0, YEAR / 3);
        let modified = created + rng.range(0, YEAR / 2);
        let price = price + (n / PRODUCTS.len()) as f64 * 5.0;
        let brand_id = 1 + (n as u64 % BRANDS.len() as u64);
        let mut cats = vec![cat_ids[cat]];
        if let Some(parent) = CATEGORIES[cat].1 {
            cats.insert(0, cat_ids[parent]);
        }
        let sku = format!("{}-{:03}", name.split_whitespace().map(|w| w.chars().next().unwrap_or('X').to_ascii_uppercase()).collect::<String>(), id);
        let input = obj(json!({
            "name": name,
            "sku": sku,
            "price": price,
            "cost_price": (price * 0.45 * 100.0).round() / 100.0,
            "retail_price": if rng.chance(0.3) { price * 1.2 } else { 0.0 },
            "sale_price": if rng.chance(0.15) { price * 0.85 } else { 0.0 },
            "weight": weight,
            "categories": cats,
            "brand_id": brand_id,
            "inventory_level": rng.range(0, 250),
            "inventory_warning_level": 5,
            "inventory_tracking": if rng.chance(0.6) { "simple" } else { "none" },
            "is_visible": !rng.chance(0.1),
            "is_featured": rng.chance(0.2),
            "total_sold": rng.range(0, 400),
            "view_count": rng.range(10, 5000),
            "description": format!("<p>The {name}: made to last, easy to love.</p>"),
            "availability": "available",
            "type": "physical",
        }));
        let v = catalog::product_value(id, created, modified, &input);
        d.products.insert(Record::new(id, created, modified, v));
        // Images: one thumbnail, sometimes more.
        for k in 0..rng.range(1, 3) {
            let iid = d.images.alloc();
            let img = catalog::image_value(iid, id, created, &obj(json!({
                "image_file": format!("sample_images/{}_{}.jpg", sku.to_lowercase(), k + 1),
                "is_thumbnail": k == 0,
                "sort_order": k,
                "description": if k == 0 { name.clone() } else { String::new() },
            })));
            d.images.insert(id, Record::new(iid, created, created, img));
        }
        catalog::set_primary_image(&mut d, id);
        // Custom fields.
        for (k, (fname, text)) in [("Material", "Stoneware"), ("Origin", "Portugal"), ("Care", "Hand wash")].iter().enumerate() {
            if rng.chance(0.5 - k as f64 * 0.15) {
                let fid = d.custom_fields.alloc();
                let f = catalog::custom_field_value(fid, id, &obj(json!({ "name": fname, "text": text })));
                d.custom_fields.insert(id, Record::new(fid, created, created, f));
            }
        }
        // SKUs for products sold in sizes.
        if n % 3 == 0 {
            for (k, size) in ["Small", "Large"].iter().enumerate() {
                let sid = d.skus.alloc();
                let s = catalog::sku_value(sid, id, &obj(json!({
                    "sku": format!("{sku}-{}", &size[..1]),
                    "price": if k == 1 { price + 10.0 } else { price },
                    "cost_price": price * 0.45,
                    "inventory_level": rng.range(0, 80),
                    "inventory_warning_level": 3,
                    "weight": weight * (1.0 + k as f64 * 0.5),
                    "options": [{ "product_option_id": 100 + id, "option_value_id": 60 + k as u64 }],
                })));
                d.skus.insert(id, Record::new(sid, created, modified, s));
            }
        }
    }

    // Customers.
    for (i, (name, is_default)) in [("Retail", true), ("Wholesale", false), ("VIP", false)].iter().enumerate() {
        let id = d.groups.alloc();
        let t = start + i as i64 * 3600;
        let v = customers::group_value(id, t, t, &obj(json!({
            "name": name,
            "is_default": is_default,
            "discount_rules": if *name == "Wholesale" { json!([{ "type": "all", "method": "percent", "amount": "15.0000" }]) } else { json!([]) },
        })));
        d.groups.insert(Record::new(id, t, t, v));
    }
    let mut people = Vec::new();
    for n in 0..cfg.seed_customers {
        let p = person(&mut rng, n + 1);
        let id = d.customers.alloc();
        let created = start + rng.range(0, YEAR / 2);
        let modified = created + rng.range(0, YEAR / 3);
        let group = [0u64, 0, 0, 1, 2, 3][rng.range(0, 5) as usize];
        let v = customers::customer_value(id, created, modified, &obj(json!({
            "first_name": p.first, "last_name": p.last, "email": p.email, "company": p.company,
            "phone": p.phone, "customer_group_id": group,
            "notes": if rng.chance(0.1) { "Prefers email contact." } else { "" },
            "accepts_marketing": rng.chance(0.4),
        })));
        d.customers.insert(Record::new(id, created, modified, v));
        let aid = d.addresses.alloc();
        let mut a = p.address.clone();
        a.remove("email");
        let av = customers::address_value(aid, id, &a);
        d.addresses.insert(id, Record::new(aid, created, created, av));
        if rng.chance(0.25) {
            let other = person(&mut rng, n + 1);
            let mut a = other.address;
            a.insert("first_name".into(), json!(p.first));
            a.insert("last_name".into(), json!(p.last));
            a.insert("address_type".into(), json!("commercial"));
            a.remove("email");
            let aid = d.addresses.alloc();
            let av = customers::address_value(aid, id, &a);
            d.addresses.insert(id, Record::new(aid, modified, modified, av));
        }
        people.push((id, p));
    }

    // Orders, oldest first so that ids grow with dates.
    let mut created_times: Vec<i64> = (0..cfg.seed_orders).map(|_| start + rng.range(YEAR / 4, YEAR - 3600)).collect();
    created_times.sort_unstable();
    let product_ids: Vec<u64> = d.products.rows.keys().copied().collect();
    for created in created_times {
        let guest = people.is_empty() || rng.chance(0.15);
        let (customer_id, buyer) = if guest {
            (0, person(&mut rng, 9000 + d.orders.next_id as usize))
        } else {
            let (cid, p) = &people[rng.range(0, people.len() as i64 - 1) as usize];
            (*cid as i64, Person { first: p.first.clone(), last: p.last.clone(), email: p.email.clone(), company: p.company.clone(), phone: p.phone.clone(), address: p.address.clone() })
        };
        let status_id = STATUS_WEIGHTS[rng.weighted(&STATUS_WEIGHTS.iter().map(|s| s.1).collect::<Vec<_>>())].0;
        let mut lines = Vec::new();
        if product_ids.is_empty() {
            lines.push(Line { product_id: 0, name: "Gift Card".into(), sku: String::new(), price_ex: 25.0, quantity: 1, weight: 0.0, cost: 0.0, brand: String::new() });
        }
        for _ in 0..(if product_ids.is_empty() { 0 } else { rng.range(1, 4) }) {
            let pid = *rng.pick(&product_ids);
            if lines.iter().any(|l: &Line| l.product_id == pid as i64) {
                continue;
            }
            let p = d.products.get(pid).map(|r| (r.str("name").to_string(), r.str("sku").to_string(), r.num("price").unwrap_or(0.0), r.num("weight").unwrap_or(0.0), r.num("cost_price").unwrap_or(0.0), r.int("brand_id").unwrap_or(0)));
            let Some((name, sku, price, weight, cost, brand_id)) = p else { continue };
            let brand = d.brands.get(brand_id as u64).map(|b| b.str("name").to_string()).unwrap_or_default();
            lines.push(Line { product_id: pid as i64, name, sku, price_ex: price, quantity: rng.range(1, 3), weight, cost, brand });
        }
        let shipped = matches!(status_id, 2 | 10);
        let modified = (created + rng.range(600, 20 * 86_400)).min(ANCHOR - 60);
        let coupon = if rng.chance(0.2) { let c = rng.pick(COUPONS); Some((c.0, c.1.to_string(), c.2)) } else { None };
        let mut billing = buyer.address.clone();
        billing.insert("email".into(), json!(buyer.email));
        let oid = orders::insert(&mut d, NewOrder {
            customer_id,
            status_id,
            created,
            modified,
            billing,
            shipping: Vec::new(),
            lines,
            payment_method: rng.pick(PAYMENT_METHODS).to_string(),
            shipping_cost: *rng.pick(&[0.0, 0.0, 5.99, 9.5, 12.0, 15.0]),
            discount: 0.0,
            coupon,
            customer_message: if rng.chance(0.1) { rng.pick(MESSAGES).to_string() } else { String::new() },
            staff_notes: String::new(),
            ip_address: format!("{}.{}.{}.{}", rng.range(24, 220), rng.range(0, 255), rng.range(0, 255), rng.range(1, 254)),
            order_source: if rng.chance(0.8) { "www".into() } else { "manual".into() },
            cart_id: format!("{:08x}-{:04x}-4{:03x}-9{:03x}-{:012x}", rng.next_u64() as u32, rng.next_u64() as u16, rng.next_u64() & 0xfff, rng.next_u64() & 0xfff, rng.next_u64() & 0xffff_ffff_ffff),
            shipped,
        });
        if shipped {
            let address_id = d.order_addresses.of(oid).next().map(|a| a.id).unwrap_or(0);
            let items: Vec<(u64, i64, i64)> = d.order_products.of(oid).map(|l| (l.id, l.int("product_id").unwrap_or(0), l.int("quantity").unwrap_or(0))).collect();
            let carrier = *rng.pick(CARRIERS);
            let tracking = match carrier {
                "usps" => format!("9400{:018}", rng.next_u64() % 1_000_000_000_000_000_000),
                "ups" => format!("1Z{:016X}", rng.next_u64()),
                _ => format!("{:012}", rng.next_u64() % 1_000_000_000_000),
            };
            let sid = d.shipments.alloc();
            let v = orders::shipment_value(&d, sid, oid, address_id, modified, &items, &obj(json!({
                "tracking_number": tracking, "shipping_provider": carrier, "comments": "",
            })));
            d.shipments.insert(oid, Record::new(sid, modified, modified, v));
        }
        if rng.chance(0.15) {
            let mid = d.order_messages.alloc();
            let v = obj(json!({
                "id": mid, "order_id": oid, "staff_id": 0, "customer_id": customer_id, "type": "customer",
                "subject": format!("Question about order #{oid}"), "message": rng.pick(MESSAGES),
                "status": if rng.chance(0.5) { "read" } else { "unread" }, "is_flagged": false,
                "date_created": rfc2822(created + 3600), "customer": {}
            }));
            d.order_messages.insert(oid, Record::new(mid, created + 3600, created + 3600, v));
        }
    }
    d
}
