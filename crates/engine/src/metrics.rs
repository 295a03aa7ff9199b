//! Vendor call metrics (rendered by whatever exporter the process installed).

use std::time::Duration;

/// One vendor call: `switchyard_vendor_calls_total{element,outcome}` and
/// `switchyard_vendor_call_duration_seconds{element}`.
pub(crate) fn vendor_call(element: &str, outcome: &str, took: Duration) {
    metrics::counter!("switchyard_vendor_calls_total", "element" => element.to_owned(), "outcome" => outcome.to_owned())
        .increment(1);
    metrics::histogram!("switchyard_vendor_call_duration_seconds", "element" => element.to_owned())
        .record(took.as_secs_f64());
}
