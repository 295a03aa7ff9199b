//! Starts a simulator on 127.0.0.1:0 and calls it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value as Json};
use switchyard_simulators::keap::{serve, AppConfig, KeapSimulator, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PRIVATE_KEY};
use switchyard_simulators::keap::xmlrpc::{read_response, write_call, Fault, MethodCall, MethodResponse, Struct, Value};

pub const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// Polls `check` until it holds; panics naming `what` once `limit` has passed.
pub async fn until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub struct Sim {
    pub sim: KeapSimulator,
    pub addr: SocketAddr,
    /// Does not follow redirects, so tests see the authorize answers.
    pub http: reqwest::Client,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The query of the `Location` of a redirect.
    pub fn redirect_query(&self) -> HashMap<String, String> {
        assert_eq!(self.status, StatusCode::FOUND, "{}", self.text);
        let loc = self.header("location").expect("a Location header");
        let url = url::Url::parse(loc).unwrap();
        url.query_pairs().into_owned().collect()
    }
}

pub async fn start(apps: Vec<AppConfig>) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = KeapSimulator::new(apps);
    tokio::spawn(serve(listener, sim.clone()));
    let http = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Sim { sim, addr, http }
}

pub async fn demo() -> Sim {
    start(vec![AppConfig::default()]).await
}

async fn answer(resp: reqwest::Response) -> Answer {
    Answer { status: resp.status(), headers: resp.headers().clone(), text: resp.text().await.unwrap() }
}

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> Answer {
        answer(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Answer {
        let mut req = self.http.post(self.url(path)).form(form);
        if let Some((u, p)) = basic {
            req = req.basic_auth(u, Some(p));
        }
        answer(req.send().await.unwrap()).await
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> Answer {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.unwrap()).await
    }

    pub async fn authorize_url(&self, client_id: &str, redirect: &str, state: &str) -> String {
        let mut u = url::Url::parse(&self.url("/app/oauth/authorize")).unwrap();
        u.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect)
            .append_pair("response_type", "code")
            .append_pair("scope", "full")
            .append_pair("state", state);
        u.to_string()
    }

    /// A code through the auto-approve switch.
    pub async fn code_for(&self, client_id: &str) -> String {
        self.sim.set_auto_approve(true);
        let url = self.authorize_url(client_id, CALLBACK, "s").await;
        let a = answer(self.http.get(url).send().await.unwrap()).await;
        a.redirect_query().remove("code").expect("a code")
    }

    pub async fn exchange(&self, client_id: &str, secret: &str, code: &str) -> Answer {
        self.post_form(
            "/token",
            &[("grant_type", "authorization_code"), ("client_id", client_id), ("client_secret", secret), ("code", code), ("redirect_uri", CALLBACK)],
            None,
        )
        .await
    }

    pub async fn refresh(&self, client_id: &str, secret: &str, refresh_token: &str) -> Answer {
        self.post_form("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)], Some((client_id, secret))).await
    }

    /// An access and a refresh token of the demo app.
    pub async fn tokens(&self) -> (String, String) {
        let code = self.code_for(DEMO_CLIENT_ID).await;
        let a = self.exchange(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, &code).await;
        assert_eq!(a.status, 200, "{}", a.text);
        let v = a.json();
        (v["access_token"].as_str().unwrap().to_owned(), v["refresh_token"].as_str().unwrap().to_owned())
    }

    /// Posts an XML-RPC call with a bearer token; the raw HTTP answer.
    pub async fn rpc_raw(&self, token: Option<&str>, method: &str, params: Vec<Value>) -> Answer {
        let mut req = self
            .http
            .post(self.url("/crm/xmlrpc/v1"))
            .header("content-type", "text/xml")
            .body(write_call(&MethodCall::new(method, params)));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        answer(req.send().await.unwrap()).await
    }

    /// Posts a hand-written XML-RPC document with a bearer token; the raw HTTP answer.
    pub async fn rpc_body(&self, token: &str, body: impl Into<String>) -> Answer {
        let req = self.http.post(self.url("/crm/xmlrpc/v1")).header("content-type", "text/xml").bearer_auth(token).body(body.into());
        answer(req.send().await.unwrap()).await
    }

    /// A call with the demo key as first parameter: the value or the fault.
    pub async fn call(&self, token: &str, method: &str, mut params: Vec<Value>) -> Result<Value, Fault> {
        params.insert(0, DEMO_PRIVATE_KEY.into());
        self.call_keyed(token, method, params).await
    }

    pub async fn call_keyed(&self, token: &str, method: &str, params: Vec<Value>) -> Result<Value, Fault> {
        let a = self.rpc_raw(Some(token), method, params).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert!(a.header("content-type").unwrap().starts_with("text/xml"));
        match read_response(a.text.as_bytes()).unwrap() {
            MethodResponse::Success(v) => Ok(v),
            MethodResponse::Fault(f) => Err(f),
        }
    }
}

pub fn st(pairs: &[(&str, Value)]) -> Value {
    Value::Struct(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<Struct>())
}

pub fn fields(names: &[&str]) -> Value {
    Value::Array(names.iter().map(|n| Value::from(*n)).collect())
}

pub fn rows(v: Value) -> Vec<Struct> {
    match v {
        Value::Array(items) => items.into_iter().map(|i| i.as_struct().expect("a struct").clone()).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

pub fn json_app(client_id: &str, key: &str) -> Json {
    json!({ "client_id": client_id, "client_secret": format!("{client_id}-secret"), "private_key": key, "account": client_id, "app_name": format!("App {client_id}") })
}
