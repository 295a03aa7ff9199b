//! The v2 catalog: `/products` (with custom fields, images and SKUs), `/brands`,
//! `/categories` and `/options`.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::api::{apply, body_object, id, int_value, max_len, not_allowed, require, uint_value, Ctx, Data, CREATED, T};
use super::data::StoreData;
use super::events;
use super::fmt::{money, rfc2822};
use super::query::{filters, matches, select, F};
use super::table::{link, obj, ApiError, ChildTable, Record, Reply, Table};

const CDN: &str = "https://cdn11.bigcommerce.com/s-sandbox";

const PRODUCT_FIELDS: &[(&str, T)] = &[
    ("name", T::Str),
    ("type", T::Str),
    ("sku", T::Str),
    ("description", T::Str),
    ("search_keywords", T::Str),
    ("availability_description", T::Str),
    ("price", T::Money),
    ("cost_price", T::Money),
    ("retail_price", T::Money),
    ("sale_price", T::Money),
    ("sort_order", T::Int),
    ("is_visible", T::Bool),
    ("is_featured", T::Bool),
    ("related_products", T::Str),
    ("inventory_level", T::Int),
    ("inventory_warning_level", T::Int),
    ("warranty", T::Str),
    ("weight", T::Money),
    ("width", T::Money),
    ("height", T::Money),
    ("depth", T::Money),
    ("fixed_cost_shipping_price", T::Money),
    ("is_free_shipping", T::Bool),
    ("inventory_tracking", T::Str),
    ("total_sold", T::Int),
    ("brand_id", T::Int),
    ("view_count", T::Int),
    ("page_title", T::Str),
    ("meta_keywords", T::Str),
    ("meta_description", T::Str),
    ("layout_file", T::Str),
    ("is_price_hidden", T::Bool),
    ("price_hidden_label", T::Str),
    ("categories", T::IntArray),
    ("event_date_field_name", T::Str),
    ("event_date_type", T::Str),
    ("event_date_start", T::Date),
    ("event_date_end", T::Date),
    ("myob_asset_account", T::Str),
    ("myob_income_account", T::Str),
    ("myob_expense_account", T::Str),
    ("peachtree_gl_account", T::Str),
    ("condition", T::Str),
    ("is_condition_shown", T::Bool),
    ("preorder_release_date", T::Date),
    ("is_preorder_only", T::Bool),
    ("preorder_message", T::Str),
    ("order_quantity_minimum", T::Int),
    ("order_quantity_maximum", T::Int),
    ("open_graph_type", T::Str),
    ("open_graph_title", T::Str),
    ("open_graph_description", T::Str),
    ("is_open_graph_thumbnail", T::Bool),
    ("upc", T::Str),
    ("option_set_id", T::Int),
    ("tax_class_id", T::Int),
    ("option_set_display", T::Str),
    ("bin_picking_number", T::Str),
    ("custom_url", T::Str),
    ("availability", T::Str),
];

/// A product record: the writable fields given, the vendor's defaults for the rest.
pub(crate) fn product_value(id: u64, created: i64, modified: i64, input: &Map<String, Value>) -> Map<String, Value> {
    let name = input.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    let slug: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let mut v = obj(json!({
        "id": id,
        "keyword_filter": null,
        "name": name,
        "type": "physical",
        "sku": "",
        "description": "",
        "search_keywords": "",
        "availability_description": "",
        "price": "0.0000",
        "cost_price": "0.0000",
        "retail_price": "0.0000",
        "sale_price": "0.0000",
        "calculated_price": "0.0000",
        "sort_order": 0,
        "is_visible": true,
        "is_featured": false,
        "related_products": "-1",
        "inventory_level": 0,
        "inventory_warning_level": 0,
        "warranty": "",
        "weight": "0.0000",
        "width": "0.0000",
        "height": "0.0000",
        "depth": "0.0000",
        "fixed_cost_shipping_price": "0.0000",
        "is_free_shipping": false,
        "inventory_tracking": "none",
        "rating_total": 0,
        "rating_count": 0,
        "total_sold": 0,
        "date_created": rfc2822(created),
        "brand_id": 0,
        "view_count": 0,
        "page_title": "",
        "meta_keywords": "",
        "meta_description": "",
        "layout_file": "product.html",
        "is_price_hidden": false,
        "price_hidden_label": "",
        "categories": [],
        "date_modified": rfc2822(modified),
        "event_date_field_name": "Delivery Date",
        "event_date_type": "none",
        "event_date_start": "",
        "event_date_end": "",
        "myob_asset_account": "",
        "myob_income_account": "",
        "myob_expense_account": "",
        "peachtree_gl_account": "",
        "condition": "New",
        "is_condition_shown": false,
        "preorder_release_date": "",
        "is_preorder_only": false,
        "preorder_message": "",
        "order_quantity_minimum": 0,
        "order_quantity_maximum": 0,
        "open_graph_type": "product",
        "open_graph_title": "",
        "open_graph_description": "",
        "is_open_graph_thumbnail": true,
        "upc": "",
        "date_last_imported": "",
        "option_set_id": null,
        "tax_class_id": 0,
        "option_set_display": "right",
        "bin_picking_number": "",
        "custom_url": format!("/{slug}/"),
        "primary_image": {},
        "availability": "available",
    }));
    for (k, val) in input {
        if k != "id" && v.contains_key(k) {
            v.insert(k.clone(), val.clone());
        }
    }
    for f in ["price", "cost_price", "retail_price", "sale_price", "weight", "width", "height", "depth", "fixed_cost_shipping_price"] {
        if let Some(x) = v.get(f).and_then(super::fmt::parse_money) {
            v.insert(f.into(), json!(money(x)));
        }
    }
    set_links(&mut v, id);
    v
}

/// Recomputes the derived fields: `calculated_price` and the resource links.
fn set_links(v: &mut Map<String, Value>, id: u64) {
    let num = |v: &Map<String, Value>, f: &str| v.get(f).and_then(super::fmt::parse_money).unwrap_or(0.0);
    let sale = num(v, "sale_price");
    let calc = if sale > 0.0 { sale } else { num(v, "price") };
    v.insert("calculated_price".into(), json!(money(calc)));
    let brand = v.get("brand_id").and_then(int_value).unwrap_or(0);
    v.insert("brand".into(), if brand > 0 { link(format!("/brands/{brand}")) } else { Value::Null });
    for r in ["downloads", "images", "discount_rules", "configurable_fields", "custom_fields", "videos", "skus", "rules"] {
        v.insert(r.into(), link(format!("/products/{id}/{r}")));
    }
    let option_set = v.get("option_set_id").and_then(int_value);
    v.insert("option_set".into(), option_set.map(|o| link(format!("/option_sets/{o}"))).unwrap_or(Value::Null));
    v.insert("options".into(), link(format!("/products/{id}/options")));
    let tax = v.get("tax_class_id").and_then(int_value).unwrap_or(0);
    v.insert("tax_class".into(), link(format!("/tax_classes/{tax}")));
    v.insert("avalara_product_tax_code".into(), link(format!("/products/{id}/avalara_product_tax_code")));
}

/// Sets `primary_image` from the product's thumbnail image (or its first image).
pub(crate) fn set_primary_image(d: &mut StoreData, pid: u64) {
    let img = {
        let mut imgs = d.images.of(pid);
        let first = d.images.of(pid).next();
        imgs.find(|i| i.bool("is_thumbnail")).or(first).map(|i| (i.id, i.str("image_file").to_string()))
    };
    if let Some(p) = d.products.get_mut(pid) {
        let v = match img {
            Some((iid, file)) => json!({
                "id": iid,
                "zoom_url": format!("{CDN}/images/stencil/1280x1280/products/{pid}/{iid}/{}", base_name(&file)),
                "thumbnail_url": format!("{CDN}/images/stencil/386x513/products/{pid}/{iid}/{}", base_name(&file)),
                "standard_url": format!("{CDN}/images/stencil/500x659/products/{pid}/{iid}/{}", base_name(&file)),
                "tiny_url": format!("{CDN}/images/stencil/44x58/products/{pid}/{iid}/{}", base_name(&file)),
            }),
            None => json!({}),
        };
        p.value.insert("primary_image".into(), v);
        p.refresh();
    }
}

fn base_name(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

pub(crate) fn brand_value(id: u64, input: &Map<String, Value>) -> Map<String, Value> {
    let s = |f: &str| input.get(f).cloned().unwrap_or_else(|| json!(""));
    obj(json!({
        "id": id,
        "name": s("name"),
        "page_title": s("page_title"),
        "meta_keywords": s("meta_keywords"),
        "meta_description": s("meta_description"),
        "image_file": s("image_file"),
        "search_keywords": s("search_keywords"),
    }))
}

const BRAND_FIELDS: &[(&str, T)] = &[
    ("name", T::Str),
    ("page_title", T::Str),
    ("meta_keywords", T::Str),
    ("meta_description", T::Str),
    ("image_file", T::Str),
    ("search_keywords", T::Str),
];

pub(crate) fn category_value(id: u64, input: &Map<String, Value>, parents: Vec<u64>) -> Map<String, Value> {
    let s = |f: &str| input.get(f).cloned().unwrap_or_else(|| json!(""));
    let name = input.get("name").and_then(Value::as_str).unwrap_or("");
    let slug: String = name.to_lowercase().split_whitespace().collect::<Vec<_>>().join("-");
    obj(json!({
        "id": id,
        "parent_id": input.get("parent_id").cloned().unwrap_or(json!(0)),
        "name": name,
        "description": s("description"),
        "sort_order": input.get("sort_order").cloned().unwrap_or(json!(0)),
        "page_title": s("page_title"),
        "meta_keywords": s("meta_keywords"),
        "meta_description": s("meta_description"),
        "layout_file": input.get("layout_file").cloned().unwrap_or_else(|| json!("category.html")),
        "parent_category_list": parents,
        "image_file": s("image_file"),
        "is_visible": input.get("is_visible").cloned().unwrap_or(json!(true)),
        "search_keywords": s("search_keywords"),
        "url": input.get("url").cloned().unwrap_or_else(|| json!(format!("/{slug}/"))),
    }))
}

const CATEGORY_FIELDS: &[(&str, T)] = &[
    ("parent_id", T::Int),
    ("name", T::Str),
    ("description", T::Str),
    ("sort_order", T::Int),
    ("page_title", T::Str),
    ("meta_keywords", T::Str),
    ("meta_description", T::Str),
    ("layout_file", T::Str),
    ("image_file", T::Str),
    ("is_visible", T::Bool),
    ("search_keywords", T::Str),
    ("url", T::Str),
];

pub(crate) fn option_value(id: u64, name: &str, display: &str, kind: &str) -> Map<String, Value> {
    obj(json!({
        "id": id,
        "name": name,
        "display_name": display,
        "type": kind,
        "values": link(format!("/options/{id}/values")),
    }))
}

pub(crate) fn image_value(id: u64, pid: u64, created: i64, input: &Map<String, Value>) -> Map<String, Value> {
    obj(json!({
        "id": id,
        "product_id": pid,
        "image_file": input.get("image_file").cloned().unwrap_or_else(|| json!("")),
        "zoom_url": "",
        "thumbnail_url": "",
        "standard_url": "",
        "tiny_url": "",
        "is_thumbnail": input.get("is_thumbnail").cloned().unwrap_or(json!(false)),
        "sort_order": input.get("sort_order").cloned().unwrap_or(json!(0)),
        "description": input.get("description").cloned().unwrap_or_else(|| json!("")),
        "date_created": rfc2822(created),
    }))
}

const IMAGE_FIELDS: &[(&str, T)] = &[("image_file", T::Str), ("is_thumbnail", T::Bool), ("sort_order", T::Int), ("description", T::Str)];

pub(crate) fn custom_field_value(id: u64, pid: u64, input: &Map<String, Value>) -> Map<String, Value> {
    obj(json!({
        "id": id,
        "product_id": pid,
        "name": input.get("name").cloned().unwrap_or_else(|| json!("")),
        "text": input.get("text").cloned().unwrap_or_else(|| json!("")),
    }))
}

const FIELD_FIELDS: &[(&str, T)] = &[("name", T::Str), ("text", T::Str)];

pub(crate) fn sku_value(id: u64, pid: u64, input: &Map<String, Value>) -> Map<String, Value> {
    let m = |f: &str| input.get(f).and_then(super::fmt::parse_money).map(money);
    let price = m("price");
    obj(json!({
        "id": id,
        "product_id": pid,
        "sku": input.get("sku").cloned().unwrap_or_else(|| json!("")),
        "price": price,
        "adjusted_price": price.clone().unwrap_or_else(|| money(0.0)),
        "cost_price": m("cost_price").unwrap_or_else(|| money(0.0)),
        "upc": input.get("upc").cloned().unwrap_or_else(|| json!("")),
        "inventory_level": input.get("inventory_level").cloned().unwrap_or(json!(0)),
        "inventory_warning_level": input.get("inventory_warning_level").cloned().unwrap_or(json!(0)),
        "bin_picking_number": input.get("bin_picking_number").cloned().unwrap_or_else(|| json!("")),
        "weight": m("weight"),
        "adjusted_weight": m("weight").unwrap_or_else(|| money(0.0)),
        "is_purchasing_disabled": input.get("is_purchasing_disabled").cloned().unwrap_or(json!(false)),
        "purchasing_disabled_message": input.get("purchasing_disabled_message").cloned().unwrap_or_else(|| json!("")),
        "image_file": input.get("image_file").cloned().unwrap_or_else(|| json!("")),
        "options": input.get("options").cloned().unwrap_or_else(|| json!([])),
    }))
}

const SKU_FIELDS: &[(&str, T)] = &[
    ("sku", T::Str),
    ("price", T::Money),
    ("cost_price", T::Money),
    ("upc", T::Str),
    ("inventory_level", T::Int),
    ("inventory_warning_level", T::Int),
    ("bin_picking_number", T::Str),
    ("weight", T::Money),
    ("is_purchasing_disabled", T::Bool),
    ("purchasing_disabled_message", T::Str),
    ("image_file", T::Str),
    ("options", T::Array),
];

const PRODUCT_FILTERS: &[(&str, F)] = &[
    ("min_id", F::MinId),
    ("max_id", F::MaxId),
    ("name", F::Text("name")),
    ("keyword_filter", F::Keyword(&["name", "description", "search_keywords", "sku"])),
    ("description", F::Keyword(&["description"])),
    ("sku", F::Text("sku")),
    ("condition", F::Text("condition")),
    ("availability", F::Text("availability")),
    ("brand_id", F::Int("brand_id")),
    ("min_date_created", F::MinCreated),
    ("max_date_created", F::MaxCreated),
    ("min_date_modified", F::MinModified),
    ("max_date_modified", F::MaxModified),
    ("min_price", F::MinDec("price")),
    ("max_price", F::MaxDec("price")),
    ("min_number_sold", F::MinInt("total_sold")),
    ("max_number_sold", F::MaxInt("total_sold")),
    ("is_visible", F::Bool("is_visible")),
    ("is_featured", F::Bool("is_featured")),
    ("min_inventory_level", F::MinInt("inventory_level")),
    ("max_inventory_level", F::MaxInt("inventory_level")),
    ("category", F::Contains("categories")),
];

const SKU_FILTERS: &[(&str, F)] = &[
    ("min_id", F::MinId),
    ("max_id", F::MaxId),
    ("sku", F::Text("sku")),
    ("upc", F::Text("upc")),
    ("inventory_level", F::Int("inventory_level")),
    ("inventory_warning_level", F::Int("inventory_warning_level")),
    ("bin_picking_number", F::Text("bin_picking_number")),
    ("min_inventory_level", F::MinInt("inventory_level")),
    ("max_inventory_level", F::MaxInt("inventory_level")),
];

const BRAND_FILTERS: &[(&str, F)] = &[("name", F::Text("name")), ("min_id", F::MinId), ("max_id", F::MaxId)];
const CATEGORY_FILTERS: &[(&str, F)] =
    &[("parent_id", F::Int("parent_id")), ("name", F::Text("name")), ("is_visible", F::Bool("is_visible")), ("min_id", F::MinId), ("max_id", F::MaxId)];
const OPTION_FILTERS: &[(&str, F)] =
    &[("name", F::Text("name")), ("display_name", F::Text("display_name")), ("type", F::Text("type")), ("min_id", F::MinId), ("max_id", F::MaxId)];

pub(crate) fn route(d: &mut Data<'_>, method: &Method, segs: &[&str], ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    match segs[0] {
        "brands" => flat(d, method, segs, ctx, Kind::Brand),
        "categories" => flat(d, method, segs, ctx, Kind::Category),
        "options" => flat(d, method, segs, ctx, Kind::Option),
        _ => products(d, method, segs, ctx),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Brand,
    Category,
    Option,
}

fn table(d: &StoreData, k: Kind) -> &Table {
    match k {
        Kind::Brand => &d.brands,
        Kind::Category => &d.categories,
        Kind::Option => &d.options,
    }
}

fn table_mut(d: &mut StoreData, k: Kind) -> &mut Table {
    match k {
        Kind::Brand => &mut d.brands,
        Kind::Category => &mut d.categories,
        Kind::Option => &mut d.options,
    }
}

/// Brands, categories and options: flat collections with the same verbs.
fn flat(d: &mut Data<'_>, m: &Method, segs: &[&str], ctx: &Ctx<'_>, k: Kind) -> Result<Reply, ApiError> {
    let spec = match k {
        Kind::Brand => BRAND_FILTERS,
        Kind::Category => CATEGORY_FILTERS,
        Kind::Option => OPTION_FILTERS,
    };
    // The hub uses `/options` read-only; writes to options are not simulated.
    let writable = k != Kind::Option;
    match (segs.len(), m) {
        (1, &Method::GET) => {
            let (page, limit) = ctx.query.paging()?;
            let preds = filters(&ctx.query, spec)?;
            Ok(Reply::list(select(table(d.get(), k).iter(), &preds, None, page, limit), ctx.base))
        }
        (1, &Method::POST) if writable => {
            let body = body_object(ctx.body)?;
            require(&body, &["name"])?;
            let d = d.get_mut()?;
            let r = write_flat(d, k, None, &body, ctx.now)?;
            Ok(Reply::record(CREATED, table(d, k).get(r).ok_or_else(ApiError::not_found)?, ctx.base))
        }
        (1, &Method::DELETE) if writable => {
            table_mut(d.get_mut()?, k).rows.clear();
            Ok(Reply::no_content())
        }
        (1, _) => not_allowed(),
        (2, &Method::GET) if segs[1] == "count" => {
            let preds = filters(&ctx.query, spec)?;
            Ok(Reply::count(table(d.get(), k).iter().filter(|r| matches(r, &preds)).count()))
        }
        (2, _) if segs[1] == "count" => not_allowed(),
        (2, m) => {
            let rid = id(segs[1])?;
            match *m {
                Method::GET => Ok(Reply::record(StatusCode::OK, table(d.get(), k).get(rid).ok_or_else(ApiError::not_found)?, ctx.base)),
                Method::PUT if writable => {
                    let body = body_object(ctx.body)?;
                    let d = d.get_mut()?;
                    if table(d, k).get(rid).is_none() {
                        return Err(ApiError::not_found());
                    }
                    write_flat(d, k, Some(rid), &body, ctx.now)?;
                    Ok(Reply::record(StatusCode::OK, table(d, k).get(rid).ok_or_else(ApiError::not_found)?, ctx.base))
                }
                Method::DELETE if writable => {
                    table_mut(d.get_mut()?, k).rows.remove(&rid).ok_or_else(ApiError::not_found)?;
                    Ok(Reply::no_content())
                }
                _ => not_allowed(),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

/// Creates (`own` none) or updates a brand or category; returns its id.
fn write_flat(d: &mut StoreData, k: Kind, own: Option<u64>, body: &Map<String, Value>, now: i64) -> Result<u64, ApiError> {
    max_len(body, "name", if k == Kind::Brand { 255 } else { 50 })?;
    max_len(body, "page_title", 250)?;
    if let Some(v) = body.get("name") {
        let name = v.as_str().ok_or_else(|| ApiError::invalid("name", "The value must be a string."))?;
        if name.trim().is_empty() {
            return Err(ApiError::invalid("name", "The value must not be empty."));
        }
        let parent = match body.get("parent_id") {
            Some(p) => int_value(p).unwrap_or(-1),
            None => own.and_then(|o| d.categories.get(o)).and_then(|r| r.int("parent_id")).unwrap_or(0),
        };
        let clash = table(d, k).iter().any(|r| {
            Some(r.id) != own && r.str("name").eq_ignore_ascii_case(name) && (k == Kind::Brand || r.int("parent_id") == Some(parent))
        });
        if clash {
            let what = if k == Kind::Brand { "brand" } else { "category" };
            return Err(ApiError::conflict(format!("The {what} '{name}' already exists."), format!("Another {what} is named '{name}'.")));
        }
    }
    let fields = if k == Kind::Brand { BRAND_FIELDS } else { CATEGORY_FIELDS };
    let mut input = match own {
        Some(o) => table(d, k).get(o).map(|r| r.value.clone()).unwrap_or_default(),
        None => Map::new(),
    };
    apply(&mut input, body, fields)?;
    let rid = match own {
        Some(o) => o,
        None => table_mut(d, k).alloc(),
    };
    let v = match k {
        Kind::Brand => brand_value(rid, &input),
        _ => {
            let parent = input.get("parent_id").and_then(uint_value).unwrap_or(0);
            let mut list = if parent == 0 {
                Vec::new()
            } else {
                let p = d.categories.get(parent).ok_or_else(|| ApiError::invalid("parent_id", format!("There is no category {parent}.")))?;
                p.value.get("parent_category_list").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
            };
            list.push(rid);
            category_value(rid, &input, list)
        }
    };
    let created = own.and_then(|o| table(d, k).get(o)).map(|r| r.created).unwrap_or(now);
    table_mut(d, k).insert(Record::new(rid, created, now, v));
    Ok(rid)
}

fn products(d: &mut Data<'_>, m: &Method, segs: &[&str], ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    match (segs.len(), m) {
        (1, &Method::GET) => {
            let (page, limit) = ctx.query.paging()?;
            let preds = filters(&ctx.query, PRODUCT_FILTERS)?;
            Ok(Reply::list(select(d.get().products.iter(), &preds, None, page, limit), ctx.base))
        }
        (1, &Method::POST) => {
            let body = body_object(ctx.body)?;
            require(&body, &["name", "price", "categories", "type", "availability", "weight"])?;
            let d = d.get_mut()?;
            let pid = write_product(d, None, &body, ctx.now)?;
            d.emit(events::PRODUCT_CREATED, pid);
            Ok(Reply::record(CREATED, d.products.get(pid).ok_or_else(ApiError::not_found)?, ctx.base))
        }
        (1, &Method::DELETE) => {
            let d = d.get_mut()?;
            let ids: Vec<u64> = d.products.rows.keys().copied().collect();
            for pid in ids {
                remove_product(d, pid);
                d.emit(events::PRODUCT_DELETED, pid);
            }
            Ok(Reply::no_content())
        }
        (1, _) => not_allowed(),
        (2, &Method::GET) if segs[1] == "count" => {
            let preds = filters(&ctx.query, PRODUCT_FILTERS)?;
            Ok(Reply::count(d.get().products.iter().filter(|r| matches(r, &preds)).count()))
        }
        (3, &Method::GET) if segs[2] == "count" && matches!(segs[1], "custom_fields" | "images" | "skus") => {
            let data = d.get();
            let n = match segs[1] {
                "custom_fields" => data.custom_fields.rows.len(),
                "images" => data.images.rows.len(),
                _ => data.skus.rows.len(),
            };
            Ok(Reply::count(n))
        }
        (2, _) if segs[1] == "count" => not_allowed(),
        (2, m) => {
            let pid = id(segs[1])?;
            match *m {
                Method::GET => Ok(Reply::record(StatusCode::OK, d.get().products.get(pid).ok_or_else(ApiError::not_found)?, ctx.base)),
                Method::PUT => {
                    let body = body_object(ctx.body)?;
                    let d = d.get_mut()?;
                    if d.products.get(pid).is_none() {
                        return Err(ApiError::not_found());
                    }
                    write_product(d, Some(pid), &body, ctx.now)?;
                    d.emit(events::PRODUCT_UPDATED, pid);
                    Ok(Reply::record(StatusCode::OK, d.products.get(pid).ok_or_else(ApiError::not_found)?, ctx.base))
                }
                Method::DELETE => {
                    let d = d.get_mut()?;
                    if d.products.get(pid).is_none() {
                        return Err(ApiError::not_found());
                    }
                    remove_product(d, pid);
                    d.emit(events::PRODUCT_DELETED, pid);
                    Ok(Reply::no_content())
                }
                _ => not_allowed(),
            }
        }
        (3 | 4, m) if matches!(segs[2], "custom_fields" | "images" | "skus") => {
            let pid = id(segs[1])?;
            if d.get().products.get(pid).is_none() {
                return Err(ApiError::not_found());
            }
            product_child(d, m, pid, segs[2], &segs[3..], ctx)
        }
        _ => Err(ApiError::not_found()),
    }
}

fn remove_product(d: &mut StoreData, pid: u64) {
    d.products.rows.remove(&pid);
    d.custom_fields.remove_parent(pid);
    d.images.remove_parent(pid);
    d.skus.remove_parent(pid);
}

fn write_product(d: &mut StoreData, own: Option<u64>, body: &Map<String, Value>, now: i64) -> Result<u64, ApiError> {
    max_len(body, "name", 250)?;
    max_len(body, "sku", 250)?;
    max_len(body, "upc", 14)?;
    let enum_check = |field: &str, allowed: &[&str]| -> Result<(), ApiError> {
        match body.get(field) {
            Some(Value::String(s)) if !allowed.contains(&s.as_str()) => {
                Err(ApiError::invalid(field, format!("The value must be one of: {}.", allowed.join(", "))))
            }
            Some(Value::String(_)) | None => Ok(()),
            Some(_) => Err(ApiError::invalid(field, "The value must be a string.")),
        }
    };
    enum_check("type", &["physical", "digital"])?;
    enum_check("availability", &["available", "disabled", "preorder"])?;
    enum_check("inventory_tracking", &["none", "simple", "sku"])?;
    enum_check("condition", &["New", "Used", "Refurbished"])?;
    for f in ["price", "weight", "cost_price", "retail_price", "sale_price"] {
        if let Some(x) = body.get(f).and_then(super::fmt::parse_money) {
            if x < 0.0 {
                return Err(ApiError::invalid(f, "The value must not be negative."));
            }
        }
    }
    if let Some(v) = body.get("name") {
        let name = v.as_str().ok_or_else(|| ApiError::invalid("name", "The value must be a string."))?;
        if name.trim().is_empty() {
            return Err(ApiError::invalid("name", "The value must not be empty."));
        }
        if d.products.iter().any(|p| Some(p.id) != own && p.str("name").eq_ignore_ascii_case(name)) {
            return Err(ApiError::conflict(format!("The product name '{name}' is a duplicate."), format!("Another product is named '{name}'.")));
        }
    }
    if let Some(Value::String(sku)) = body.get("sku") {
        if !sku.is_empty() && d.products.iter().any(|p| Some(p.id) != own && p.str("sku") == sku) {
            return Err(ApiError::conflict(format!("The SKU '{sku}' is a duplicate."), format!("Another product has the SKU '{sku}'.")));
        }
    }
    if let Some(v) = body.get("categories") {
        let cats = v.as_array().ok_or_else(|| ApiError::invalid("categories", "The value must be an array of category ids."))?;
        if cats.is_empty() {
            return Err(ApiError::invalid("categories", "A product needs at least one category."));
        }
        for c in cats {
            let c = uint_value(c).ok_or_else(|| ApiError::invalid("categories", "The value must be an array of category ids."))?;
            if d.categories.get(c).is_none() {
                return Err(ApiError::invalid("categories", format!("There is no category {c}.")));
            }
        }
    }
    if let Some(b) = body.get("brand_id") {
        let b = uint_value(b).ok_or_else(|| ApiError::invalid("brand_id", "The value must be an integer."))?;
        if b != 0 && d.brands.get(b).is_none() {
            return Err(ApiError::invalid("brand_id", format!("There is no brand {b}.")));
        }
    }
    let mut input = Map::new();
    apply(&mut input, body, PRODUCT_FIELDS)?;
    match own {
        None => {
            let pid = d.products.alloc();
            let v = product_value(pid, now, now, &input);
            d.products.insert(Record::new(pid, now, now, v));
            Ok(pid)
        }
        Some(pid) => {
            let r = d.products.get_mut(pid).ok_or_else(ApiError::not_found)?;
            let mut v = r.value.clone();
            for (k, val) in input {
                v.insert(k, val);
            }
            set_links(&mut v, pid);
            r.modified = now.max(r.modified);
            v.insert("date_modified".into(), json!(rfc2822(r.modified)));
            r.value = v;
            r.refresh();
            Ok(pid)
        }
    }
}

fn touch_product(d: &mut StoreData, pid: u64, now: i64) {
    if let Some(r) = d.products.get_mut(pid) {
        r.modified = now.max(r.modified);
        r.value.insert("date_modified".into(), json!(rfc2822(r.modified)));
        r.refresh();
    }
}

fn child<'a>(d: &'a StoreData, kind: &str) -> &'a ChildTable {
    match kind {
        "custom_fields" => &d.custom_fields,
        "images" => &d.images,
        _ => &d.skus,
    }
}

fn child_mut<'a>(d: &'a mut StoreData, kind: &str) -> &'a mut ChildTable {
    match kind {
        "custom_fields" => &mut d.custom_fields,
        "images" => &mut d.images,
        _ => &mut d.skus,
    }
}

fn product_child(d: &mut Data<'_>, m: &Method, pid: u64, kind: &str, segs: &[&str], ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    match (segs.len(), m) {
        (0, &Method::GET) => {
            let (page, limit) = ctx.query.paging()?;
            let preds = if kind == "skus" { filters(&ctx.query, SKU_FILTERS)? } else { Vec::new() };
            Ok(Reply::list(select(child(d.get(), kind).of(pid), &preds, None, page, limit), ctx.base))
        }
        (0, &Method::POST) => {
            let body = body_object(ctx.body)?;
            let d = d.get_mut()?;
            let cid = write_child(d, pid, kind, None, &body, ctx.now)?;
            Ok(Reply::record(CREATED, child(d, kind).get(pid, cid).ok_or_else(ApiError::not_found)?, ctx.base))
        }
        (0, &Method::DELETE) => {
            let d = d.get_mut()?;
            child_mut(d, kind).remove_parent(pid);
            if kind == "images" {
                set_primary_image(d, pid);
            }
            touch_product(d, pid, ctx.now);
            Ok(Reply::no_content())
        }
        (0, _) => not_allowed(),
        (1, &Method::GET) if segs[0] == "count" => Ok(Reply::count(child(d.get(), kind).count(pid))),
        (1, m) => {
            let cid = id(segs[0])?;
            match *m {
                Method::GET => Ok(Reply::record(StatusCode::OK, child(d.get(), kind).get(pid, cid).ok_or_else(ApiError::not_found)?, ctx.base)),
                Method::PUT => {
                    let body = body_object(ctx.body)?;
                    let d = d.get_mut()?;
                    if child(d, kind).get(pid, cid).is_none() {
                        return Err(ApiError::not_found());
                    }
                    write_child(d, pid, kind, Some(cid), &body, ctx.now)?;
                    Ok(Reply::record(StatusCode::OK, child(d, kind).get(pid, cid).ok_or_else(ApiError::not_found)?, ctx.base))
                }
                Method::DELETE => {
                    let d = d.get_mut()?;
                    child_mut(d, kind).remove(pid, cid).ok_or_else(ApiError::not_found)?;
                    if kind == "images" {
                        set_primary_image(d, pid);
                    }
                    touch_product(d, pid, ctx.now);
                    Ok(Reply::no_content())
                }
                _ => not_allowed(),
            }
        }
        _ => Err(ApiError::not_found()),
    }
}

fn write_child(d: &mut StoreData, pid: u64, kind: &str, own: Option<u64>, body: &Map<String, Value>, now: i64) -> Result<u64, ApiError> {
    let (required, fields): (&[&str], &[(&str, T)]) = match kind {
        "custom_fields" => (&["name", "text"], FIELD_FIELDS),
        "images" => (&["image_file"], IMAGE_FIELDS),
        _ => (&["sku"], SKU_FIELDS),
    };
    if own.is_none() {
        require(body, required)?;
    }
    if kind == "custom_fields" {
        max_len(body, "name", 250)?;
        max_len(body, "text", 250)?;
        for f in ["name", "text"] {
            if matches!(body.get(f), Some(Value::String(s)) if s.is_empty()) {
                return Err(ApiError::invalid(f, "The value must not be empty."));
            }
        }
    }
    if kind == "skus" {
        if let Some(Value::String(sku)) = body.get("sku") {
            let clash = d.skus.rows.values().any(|s| s.str("sku") == sku && Some(s.id) != own)
                || d.products.iter().any(|p| p.str("sku") == sku);
            if clash {
                return Err(ApiError::conflict(format!("The SKU '{sku}' is a duplicate."), format!("Another product or SKU has the SKU '{sku}'.")));
            }
        }
    }
    let mut input = match own {
        Some(c) => child(d, kind).get(pid, c).map(|r| r.value.clone()).unwrap_or_default(),
        None => Map::new(),
    };
    apply(&mut input, body, fields)?;
    let cid = match own {
        Some(c) => c,
        None => child_mut(d, kind).alloc(),
    };
    let created = own.and_then(|c| child(d, kind).get(pid, c)).map(|r| r.created).unwrap_or(now);
    let v = match kind {
        "custom_fields" => custom_field_value(cid, pid, &input),
        "images" => image_value(cid, pid, created, &input),
        _ => {
            // No own price or weight: the SKU takes the product's (null own value).
            let mut v = sku_value(cid, pid, &input);
            let product = d.products.get(pid);
            for (own, adjusted, from) in [("price", "adjusted_price", "price"), ("weight", "adjusted_weight", "weight")] {
                if v.get(own).is_some_and(Value::is_null) {
                    let x = product.and_then(|p| p.num(from)).unwrap_or(0.0);
                    v.insert(adjusted.into(), json!(money(x)));
                }
            }
            v
        }
    };
    if kind == "images" && v.get("is_thumbnail") == Some(&json!(true)) {
        for r in d.images.rows.range_mut((pid, 0)..=(pid, u64::MAX)).map(|(_, r)| r) {
            if r.id != cid && r.bool("is_thumbnail") {
                r.value.insert("is_thumbnail".into(), json!(false));
                r.refresh();
            }
        }
    }
    child_mut(d, kind).insert(pid, Record::new(cid, created, now, v));
    if kind == "images" {
        set_primary_image(d, pid);
    }
    touch_product(d, pid, now);
    Ok(cid)
}
