//! Credentials at instance creation and update: the element's cheap check call
//! with what the caller gave, and the OAuth 2.0 code exchange.

use std::collections::BTreeMap;

use http::StatusCode;
use switchyard_elements::{ElementDefinition, Protocol};

use crate::instance::defaults;
use crate::oauth::{self, TokenPair};
use crate::vendor::Vendor;
use crate::{Engine, EngineError};

impl Engine {
    /// The element's check call with `given` (over the element defaults), through
    /// the outbound policy. Any refusal is a 400; the vendor's words stay in
    /// `provider_message`.
    pub async fn check_credentials(&self, def: &ElementDefinition, given: &BTreeMap<String, String>) -> Result<(), EngineError> {
        let mut config = defaults(def);
        config.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
        let vendor = Vendor::new(self, def, &config)?;
        let checked = match def.protocol {
            Protocol::XmlRpc => crate::hub::xmlrpc::check(&vendor).await,
            Protocol::RestJson => {
                let method = def.check.method.parse().map_err(EngineError::internal)?;
                vendor.send(method, &def.check.path, &[], None).await.map(|_| ())
            }
        };
        match checked {
            Ok(_) => Ok(()),
            Err(e) if e.status == StatusCode::BAD_REQUEST => Err(e),
            Err(e) => Err(EngineError::bad_request(format!("The credentials could not be checked: {}", e.message))
                .with_provider_message(e.provider_message)),
        }
    }

    /// The OAuth 2.0 code exchange for `config` (over the element defaults), logged
    /// in the call log of `instance` when it already exists.
    pub async fn exchange_code(
        &self,
        def: &ElementDefinition,
        config: &BTreeMap<String, String>,
        code: &str,
        instance: Option<i64>,
    ) -> Result<TokenPair, EngineError> {
        let mut full = defaults(def);
        full.extend(config.iter().map(|(k, v)| (k.clone(), v.clone())));
        oauth::exchange_code(self, def, &full, code, instance).await
    }
}
