//! Who is calling: `Authorization: User <secret>, Organization <secret>[, Element <token>]`,
//! or, for platform calls without that header, the console's session cookie (`session`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::{ApiError, AppState};

/// An authenticated platform caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: i64,
    pub organization_id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// The `Element` token, when the header carries one (hub calls).
    pub element_token: Option<String>,
    /// The instance hub calls act as when the request came from this process's
    /// console ([`ActingAs`]) instead of carrying an `Element` token.
    pub acting_instance: Option<i64>,
}

/// A request made inside this process (the console, the Connect page) on behalf
/// of a user it has authenticated itself: a request extension, which only code in
/// this process can set, so no client can claim it. With `instance_id`, hub calls
/// act as that instance (the console's API explorer), with no token involved.
#[derive(Debug, Clone)]
pub struct ActingAs {
    pub caller: switchyard_store::Caller,
    pub instance_id: Option<i64>,
}

impl Caller {
    fn from_stored(c: switchyard_store::Caller, element_token: Option<String>) -> Caller {
        Caller {
            user_id: c.user_id,
            organization_id: c.organization_id,
            email: c.email,
            first_name: c.first_name,
            last_name: c.last_name,
            element_token,
            acting_instance: None,
        }
    }
}

/// The parts of the header, by name. Unknown parts or repeats are refused.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub organization: String,
    pub element: Option<String>,
}

pub fn parse_authorization(header: &str) -> Option<Credentials> {
    let (mut user, mut organization, mut element) = (None, None, None);
    for part in header.split(',') {
        let (kind, value) = part.trim().split_once(' ')?;
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        let slot = match kind {
            "User" => &mut user,
            "Organization" => &mut organization,
            "Element" => &mut element,
            _ => return None,
        };
        if slot.replace(value.to_owned()).is_some() {
            return None;
        }
    }
    Some(Credentials { user: user?, organization: organization?, element })
}

/// Fresh secrets and their lookup hashes (see `switchyard_engine::secret`).
pub use switchyard_engine::secret::{hash_secret, new_secret};

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        if let Some(acting) = parts.extensions.get::<ActingAs>() {
            let mut caller = Caller::from_stored(acting.caller.clone(), None);
            caller.acting_instance = acting.instance_id;
            return Ok(caller);
        }
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            // Platform calls may come from a logged-in console instead.
            let tokens = crate::session::cookie_tokens(&parts.headers);
            if tokens.is_empty() {
                return Err(ApiError::unauthorized("Missing Authorization header"));
            }
            let stored = crate::session::caller_from_cookie(state, &parts.method, &parts.headers, &tokens).await?;
            return Ok(Caller::from_stored(stored, None));
        };
        let credentials = header.to_str().ok().and_then(parse_authorization).ok_or_else(|| {
            ApiError::unauthorized("Authorization must be 'User <secret>, Organization <secret>'")
        })?;
        let (user_hash, org_hash) = (hash_secret(&credentials.user), hash_secret(&credentials.organization));
        let caller = match state.callers.get(&user_hash, &org_hash) {
            Some(caller) => (*caller).clone(),
            None => {
                let ticket = state.callers.ticket();
                let found = state.engine.store.authenticate(&user_hash, &org_hash).await?;
                let caller = found.ok_or_else(|| ApiError::unauthorized("Invalid user or organization secret"))?;
                state.callers.remember(ticket, user_hash, org_hash, caller.clone());
                caller
            }
        };
        Ok(Caller::from_stored(caller, credentials.element))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_cloud_elements_header() {
        let c = parse_authorization("User u1, Organization o1, Element e1").unwrap();
        assert_eq!((c.user.as_str(), c.organization.as_str(), c.element.as_deref()), ("u1", "o1", Some("e1")));
        let c = parse_authorization("Organization o1,User u1").unwrap();
        assert_eq!(c.element, None);
        for bad in ["", "User u1", "User u1, Organization", "User u1, User u2, Organization o", "Bearer x", "User u1, Organization o1, Other z"] {
            assert_eq!(parse_authorization(bad), None, "{bad}");
        }
    }
}
