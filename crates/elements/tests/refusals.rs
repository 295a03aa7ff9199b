//! Issue 16: a wrong definition is refused when the catalog loads, in one line
//! naming the file, the line, the field path and what the field allows.

use switchyard_elements::{parse, Catalog};

const BIGCOMMERCE: &str = include_str!("../../../elements/bigcommerce.yaml");
const KEAP: &str = include_str!("../../../elements/infusionsoftcrm.yaml");

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text.find(needle).unwrap_or_else(|| panic!("'{needle}' not in the text"));
    text[..at].matches('\n').count() + 1
}

/// Parses `base` with its first `from` replaced by `to`: the refusal, which must be
/// one line starting `shop.yaml:LINE: FIELD: ` (LINE that of `to`'s last line) and saying
/// what is allowed.
fn refusal(base: &str, from: &str, to: &str, field: &str) -> String {
    assert!(base.contains(from), "{from}");
    let text = base.replacen(from, to, 1);
    let err = parse("shop.yaml", &text).expect_err(to).to_string();
    // The line of the field `to` writes (its last line when it writes several).
    let at = line_of(&text, to.trim_end_matches('\n').rsplit('\n').next().unwrap_or(to));
    assert!(err.starts_with(&format!("shop.yaml:{at}: {field}: ")), "expected line {at} and {field}: {err}");
    assert!(err.contains("; allowed: "), "says what is allowed: {err}");
    assert!(!err.contains('\n'), "one line: {err}");
    err
}

#[test]
fn a_vendor_path_with_a_query_or_fragment_is_refused() {
    let err = refusal(BIGCOMMERCE, "vendorPath: /orders\n", "vendorPath: /orders?status=any\n", "resources[4].vendorPath");
    assert!(err.contains("'/orders?status=any' has a '?' or '#'") && err.contains("a vendor path starting with '/'"), "{err}");
    let err = refusal(BIGCOMMERCE, "vendorPath: /orders\n", "vendorPath: \"/orders#top\"\n", "resources[4].vendorPath");
    assert!(err.contains("'/orders#top'"), "{err}");
    // The credential check's path too.
    let err = refusal(BIGCOMMERCE, "check: {method: GET, path: /time}", "check: {method: GET, path: \"/time?x=1\"}", "check.path");
    assert!(err.contains("'/time?x=1'"), "{err}");
}

#[test]
fn a_method_that_is_not_one_is_refused() {
    let err = refusal(BIGCOMMERCE, "    model: order\n", "    model: order\n    updateMethod: PUTT\n", "resources[4].updateMethod");
    assert!(err.contains("'PUTT' is not an HTTP method") && err.ends_with("allowed: PUT, PATCH, POST"), "{err}");
    let err = refusal(BIGCOMMERCE, "check: {method: GET,", "check: {method: get,", "check.method");
    assert!(err.ends_with("allowed: GET, HEAD, POST"), "{err}");
    let err = refusal(BIGCOMMERCE, "register: {method: POST,", "register: {method: SEND,", "events.webhooks.register.method");
    assert!(err.contains("'SEND'") && err.ends_with("allowed: GET, POST, PUT, PATCH, DELETE"), "{err}");
}

#[test]
fn a_placeholder_the_field_does_not_have_is_refused() {
    // Configuration keys in the base URL and authentication.
    let err = refusal(BIGCOMMERCE, "baseUrl: \"{store.url}\"", "baseUrl: \"{store.link}\"", "baseUrl");
    assert!(err.contains("uses '{store.link}', which is not a configuration key") && err.contains("allowed: placeholders naming configuration keys: authentication.type, username,"), "{err}");
    let err = refusal(BIGCOMMERCE, "password: \"{password}\"}", "password: \"{pasword}\"}", "authentication.modes.basic.password");
    assert!(err.contains("{pasword}"), "{err}");
    // The hub path's parameters in the vendor path.
    let err = refusal(
        BIGCOMMERCE,
        "vendorPath: \"/orders/{orderId}/products\"",
        "vendorPath: \"/orders/{order}/products\"",
        "resources[7].vendorPath",
    );
    assert!(err.contains("uses '{order}'") && err.ends_with("allowed: the path's parameters: orderId"), "{err}");
    let err = refusal(BIGCOMMERCE, "check: {method: GET, path: /time}", "check: {method: GET, path: \"/time/{store.url}\"}", "check.path");
    assert!(err.ends_with("allowed: no placeholders"), "{err}");
    // What the engine fills in webhook calls.
    let err = refusal(BIGCOMMERCE, "destination: \"{destination}\"", "destination: \"{callback}\"", "events.webhooks.body[destination]");
    assert!(err.contains("{callback}") && err.contains("{scope}, {destination}, {secretHeader}, {secret}"), "{err}");
    let err = refusal(BIGCOMMERCE, "remove: {method: DELETE, path: \"/hooks/{id}\"}", "remove: {method: DELETE, path: \"/hooks/{hook}\"}", "events.webhooks.remove.path");
    assert!(err.ends_with("allowed: {id}, the hook's id"), "{err}");
    // Hub path placeholders are whole segments, and `{id}` is the engine's.
    let err = refusal(BIGCOMMERCE, "path: \"/orders/{orderId}/taxes\"", "path: \"/orders/{id}/taxes\"", "resources[10].path");
    assert!(err.contains("'{id}' is the record id"), "{err}");
    let err = refusal(BIGCOMMERCE, "path: \"/orders/{orderId}/taxes\"", "path: \"/orders/o{orderId}/taxes\"", "resources[10].path");
    assert!(err.contains("mixes a placeholder with text"), "{err}");
    // A malformed placeholder.
    let err = refusal(BIGCOMMERCE, "baseUrl: \"{store.url}\"", "baseUrl: \"{store.url}}\"", "baseUrl");
    assert!(err.contains("closes no placeholder"), "{err}");
}

#[test]
fn an_unknown_paging_style_or_pointer_syntax_is_refused() {
    let text = BIGCOMMERCE.replacen("paging: {style: page,", "paging: {style: pages,", 1);
    let err = parse("shop.yaml", &text).unwrap_err().to_string();
    let at = line_of(&text, "paging: {style: pages");
    assert!(err.starts_with(&format!("shop.yaml:{at}: ")) && err.contains("paging.style: unknown variant `pages`, expected one of `page`"), "{err}");
    assert!(!err.contains(" at line "), "the line is given once: {err}");
    let err = refusal(BIGCOMMERCE, "idPointer: /data/id", "idPointer: data.id", "events.webhooks.idPointer");
    assert!(err.contains("'data.id' is not a JSON pointer") && err.contains("RFC 6901"), "{err}");
    let err = refusal(BIGCOMMERCE, "digest: [/scope,", "digest: [/sc~pe,", "events.webhooks.digest[0]");
    assert!(err.contains("'/sc~pe'"), "{err}");
    let err = refusal(BIGCOMMERCE, "    model: order\n", "    model: order\n    recordsPath: data..orders\n", "resources[4].recordsPath");
    assert!(err.contains("not a dotted path"), "{err}");
}

#[test]
fn a_base_url_that_cannot_form_a_url_is_refused() {
    let err = refusal(BIGCOMMERCE, "baseUrl: \"{store.url}\"", "baseUrl: \"store/{store.url}\"", "baseUrl");
    assert!(err.contains("does not form an absolute http(s) URL") && err.contains("store/https://example.com/base"), "{err}");
    // A key that is not `format: url` cannot stand for a whole URL.
    let err = refusal(BIGCOMMERCE, "baseUrl: \"{store.url}\"", "baseUrl: \"{username}\"", "baseUrl");
    assert!(err.contains("format: url"), "{err}");
    // Paths are appended to the base URL: no query.
    let err = refusal(BIGCOMMERCE, "baseUrl: \"{store.url}\"", "baseUrl: \"https://{username}.example.com/api?v=2\"", "baseUrl");
    assert!(err.contains("without query or fragment"), "{err}");
    // A template over a host part is fine.
    parse("shop.yaml", &BIGCOMMERCE.replacen("baseUrl: \"{store.url}\"", "baseUrl: \"https://{username}.example.com/api/v2\"", 1)).unwrap();
    // OAuth 2.0 endpoints too.
    let err = refusal(KEAP, "tokenUrl: \"{oauth.token.url}\"", "tokenUrl: \"token/{oauth.api.key}\"", "authentication.tokenUrl");
    assert!(err.contains("does not form"), "{err}");
}

#[test]
fn a_hub_outside_the_documented_list_is_refused() {
    let err = refusal(BIGCOMMERCE, "hub: ecommerce", "hub: ecomerce", "hub");
    assert!(err.contains("'ecomerce' is not one of the allowed values") && err.contains("allowed: one of crm, documents, ecommerce,"), "{err}");
    let err = refusal(KEAP, "hub: crm", "hub: CRM", "hub");
    assert!(err.contains("'CRM'"), "{err}");
}

#[test]
fn a_wrong_throttle_dialect_is_refused() {
    let err = refusal(BIGCOMMERCE, "  statuses: [429, 509]", "  statuses: [429, 209]", "throttle.statuses[1]");
    assert!(err.contains("209 is not an error status"), "{err}");
    let err = refusal(BIGCOMMERCE, "  windowSeconds: 30", "  windowSeconds: 0", "throttle.windowSeconds");
    assert!(err.contains("0 s is not a window"), "{err}");
    let err = refusal(BIGCOMMERCE, "remaining: X-BC-ApiLimit-Remaining", "remaining: X BC Remaining", "throttle.limits[1].remaining");
    assert!(err.contains("'X BC Remaining' is not a header name"), "{err}");
    let text = BIGCOMMERCE.replacen("unit: milliseconds", "unit: minutes", 1);
    let err = parse("shop.yaml", &text).unwrap_err().to_string();
    assert!(err.starts_with(&format!("shop.yaml:{}: ", line_of(&text, "unit: minutes"))) && err.contains("unknown variant `minutes`"), "{err}");
}

#[test]
fn keys_and_ids_are_refused_when_taken() {
    let dir = tempfile::tempdir().unwrap();
    let load = || Catalog::builtin().load_dir(dir.path()).map(|_| ()).map_err(|e| e.to_string());
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    let remove = |name: &str| std::fs::remove_file(dir.path().join(name)).unwrap();

    // A built-in key, without `replaces`.
    write("bc.yaml", BIGCOMMERCE);
    let err = load().unwrap_err();
    let file = dir.path().join("bc.yaml").display().to_string();
    assert!(err.starts_with(&format!("{file}:{}: key: 'bigcommerce' is already the key of bigcommerce.yaml", line_of(BIGCOMMERCE, "key: bigcommerce"))), "{err}");
    assert!(err.contains("`replaces: bigcommerce`"), "{err}");
    // With it, the file takes the built-in element's place.
    write("bc.yaml", &BIGCOMMERCE.replacen("name: BigCommerce\n", "name: My BigCommerce\nreplaces: bigcommerce\n", 1));
    let mut catalog = Catalog::builtin();
    catalog.load_dir(dir.path()).unwrap();
    assert_eq!(catalog.get("bigcommerce").unwrap().name, "My BigCommerce");
    assert_eq!(catalog.get("274").unwrap().name, "My BigCommerce");
    // `replaces` names this file's own key, and only a built-in one.
    write("bc.yaml", &BIGCOMMERCE.replacen("name: BigCommerce\n", "name: x\nreplaces: infusionsoftcrm\n", 1));
    assert!(load().unwrap_err().contains("replaces: 'infusionsoftcrm' is not this file's key 'bigcommerce'"));
    let shop = BIGCOMMERCE.replacen("key: bigcommerce", "key: shop", 1).replacen("id: 274", "id: 9001", 1);
    write("bc.yaml", &shop.replacen("name: BigCommerce\n", "name: x\nreplaces: shop\n", 1));
    let err = load().unwrap_err();
    assert!(err.contains("replaces: 'shop' is not the key of a built-in element"), "{err}");
    remove("bc.yaml");

    // A built-in id under another key.
    write("a.yaml", &BIGCOMMERCE.replacen("key: bigcommerce", "key: shop", 1));
    let err = load().unwrap_err();
    assert!(err.contains(&format!(":{}: id: 274 is already the id of bigcommerce.yaml", line_of(BIGCOMMERCE, "id: 274"))), "{err}");
    // Two files of the directory with one key, or one id.
    write("a.yaml", &shop);
    write("b.yaml", &shop.replacen("id: 9001", "id: 9002", 1));
    let err = load().unwrap_err();
    assert!(err.contains("b.yaml:2: key: 'shop' is already the key of ") && err.contains("a.yaml"), "{err}");
    write("b.yaml", &shop.replacen("key: shop", "key: shop2", 1));
    let err = load().unwrap_err();
    assert!(err.contains("b.yaml:3: id: 9001 is already the id of ") && err.contains("a.yaml"), "{err}");
    remove("b.yaml");
    load().unwrap();
}

#[test]
fn json_files_name_their_lines_too() {
    let def = parse("x.yaml", BIGCOMMERCE).unwrap();
    let mut value = serde_json::to_value(&def).unwrap();
    value["hub"] = "shop".into();
    let text = serde_json::to_string_pretty(&value).unwrap();
    let err = parse("shop.json", &text).unwrap_err().to_string();
    assert!(err.starts_with(&format!("shop.json:{}: hub: ", line_of(&text, "\"hub\": \"shop\""))), "{err}");
    let err = parse("shop.json", "{\"key\": 1}").unwrap_err().to_string();
    assert!(err.starts_with("shop.json:1: invalid type"), "{err}");
}

#[test]
fn a_key_that_is_no_url_segment_or_a_configuration_key_declared_twice_is_refused() {
    let err = refusal(BIGCOMMERCE, "key: bigcommerce", "key: big/commerce", "key");
    assert!(err.contains("'big/commerce' is not a usable element key"), "{err}");
    let err = refusal(
        BIGCOMMERCE,
        "  - {key: oauth.api.key, name: Client ID,",
        "  - {key: username, name: Client ID,",
        "configuration[4].key",
    );
    assert!(err.contains("'username' is empty or declared twice"), "{err}");
}

#[test]
fn a_time_zone_call_that_names_no_method_is_refused() {
    let from = "timezone: {method: DataService.getAppSetting, params: [Application, timezone]}";
    let err = refusal(KEAP, from, "timezone: {method: getAppSetting, params: [Application, timezone]}", "xmlRpc.timezone.method");
    assert!(err.contains("'getAppSetting' is not a method name") && err.ends_with("allowed: a method name (Service.method) and plain string params, no placeholders"), "{err}");
    let err = refusal(KEAP, from, "timezone: {method: DataService.getAppSetting, params: [Application, \"{zone}\"]}", "xmlRpc.timezone.params[1]");
    assert!(err.contains("'{zone}' holds a placeholder"), "{err}");
}

/// Syntax and type errors name the field they are in and its line (found by a review:
/// a missing `sizeParam` was reported at line 1 with no field).
#[test]
fn a_missing_or_mistyped_field_names_where_it_is() {
    let paging = "paging: {style: page, pageParam: page, sizeParam: limit, firstPage: 1, maxPageSize: 250}";
    assert!(BIGCOMMERCE.contains(paging), "the test edits the BigCommerce paging line");
    let at = line_of(BIGCOMMERCE, paging);
    let missing = BIGCOMMERCE.replacen(paging, "paging: {style: page, pageParam: page, firstPage: 1, maxPageSize: 250}", 1);
    let err = parse("shop.yaml", &missing).unwrap_err().to_string();
    assert!(err.starts_with(&format!("shop.yaml:{at}: paging: ")) && err.contains("sizeParam"), "{err}");
    let mistyped = BIGCOMMERCE.replacen(paging, "paging: {style: page, pageParam: page, sizeParam: limit, firstPage: 1, maxPageSize: lots}", 1);
    let err = parse("shop.yaml", &mistyped).unwrap_err().to_string();
    assert!(err.starts_with(&format!("shop.yaml:{at}: paging")) && err.contains("lots"), "{err}");
}

#[test]
fn a_setup_guide_for_an_unknown_key_or_without_an_https_link_is_refused() {
    let err = refusal(KEAP, "  - key: oauth.api.secret\n", "  - key: oauth.client.secret\n", "setup[2].key");
    assert!(err.contains("'oauth.client.secret' is not a configuration key"), "{err}");
    assert!(err.contains("allowed: one of infusionsoft.private.key, oauth.api.key, oauth.api.secret"), "lists the keys: {err}");
    let link = "    link: \"https://developer.infusionsoft.com/getting-started-oauth-keys/\"\n";
    let err = refusal(KEAP, link, "    link: \"ftp://developer.infusionsoft.com/keys\"\n", "setup[1].link");
    assert!(err.contains("'ftp://developer.infusionsoft.com/keys' is not an absolute https URL"), "{err}");
    let err = refusal(KEAP, link, "    link: \"https://\"\n", "setup[1].link");
    assert!(err.contains("'https://'"), "{err}");
}
