//! Outbound policy: where Switchyard may send HTTP requests.
//!
//! Vendor and callback URLs must not reach private, loopback, link-local or
//! otherwise special addresses unless an operator allowed them explicitly
//! (`--outbound-allow`). Plain `http` is only permitted towards allow-listed
//! hosts/addresses. The address check is applied to *resolved* addresses, and
//! [`crate::client::VendorClient`] applies it again inside its DNS resolver so
//! that there is no gap between the check and the connection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Error raised when a URL or an address is not allowed, or a rule is invalid.
///
/// Messages never echo a full URL (which could carry credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The URL could not be parsed or has a forbidden shape.
    #[error("invalid URL: {0}")]
    BadUrl(String),
    /// The scheme is neither `https` nor `http`.
    #[error("URL scheme `{0}` is not allowed: use https")]
    Scheme(String),
    /// Plain `http` towards a host that is not allow-listed.
    #[error("plain http to `{0}` is not allowed: use https, or add the host to --outbound-allow")]
    HttpNotAllowed(String),
    /// The host is (or resolves to) an address in a special-purpose range.
    #[error(
        "outbound request to `{host}` refused: {ip} is a private, loopback, link-local or reserved address; add it to --outbound-allow to permit it"
    )]
    Refused {
        /// Host as written in the URL.
        host: String,
        /// The offending address.
        ip: IpAddr,
    },
    /// Name resolution failed.
    #[error("could not resolve `{0}`")]
    Resolve(String),
    /// An `--outbound-allow` entry could not be understood.
    #[error(
        "invalid --outbound-allow entry `{0}`: expected a host name, an IP address or a CIDR such as 10.0.0.0/8"
    )]
    BadRule(String),
}

/// Allow-list for outbound requests: exact host names (case-insensitive) and CIDRs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

fn normalize_host(h: &str) -> String {
    let h = h.trim().trim_end_matches('.');
    h.to_ascii_lowercase()
}

fn valid_host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl OutboundPolicy {
    /// Parses a comma-separated list of host names, IP addresses and CIDRs,
    /// e.g. `"127.0.0.0/8,::1,localhost,api.example.com"`.
    ///
    /// A bare IP means `/32` (IPv4) or `/128` (IPv6). An empty string allows nothing.
    pub fn parse(list: &str) -> Result<Self, PolicyError> {
        let mut policy = OutboundPolicy::default();
        for raw in list.split(',') {
            let entry = raw.trim();
            if entry.is_empty() {
                continue;
            }
            let unbracketed = entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .unwrap_or(entry);
            if let Ok(net) = unbracketed.parse::<IpNet>() {
                policy.push_net(net.trunc());
            } else if let Ok(ip) = unbracketed.parse::<IpAddr>() {
                policy.push_net(IpNet::from(ip));
            } else {
                let host = normalize_host(entry);
                let numeric_tld = host
                    .rsplit('.')
                    .next()
                    .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
                if !valid_host_name(&host) || numeric_tld {
                    return Err(PolicyError::BadRule(entry.to_string()));
                }
                if !policy.hosts.contains(&host) {
                    policy.hosts.push(host);
                }
            }
        }
        Ok(policy)
    }

    /// Allows loopback: `127.0.0.0/8`, `::1` and the name `localhost`
    /// (for tests and the sandbox).
    pub fn allow_loopback() -> Self {
        OutboundPolicy {
            hosts: vec!["localhost".to_string()],
            nets: vec![
                IpNet::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8).unwrap(),
                IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ],
        }
    }

    /// Adds every rule of `other` to `self`.
    pub fn extend(&mut self, other: &OutboundPolicy) {
        for h in &other.hosts {
            if !self.hosts.contains(h) {
                self.hosts.push(h.clone());
            }
        }
        for n in &other.nets {
            self.push_net(*n);
        }
    }

    fn push_net(&mut self, net: IpNet) {
        if !self.nets.contains(&net) {
            self.nets.push(net);
        }
    }

    /// True when nothing is allow-listed.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.nets.is_empty()
    }

    /// Allow-listed host names (lower-case).
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Allow-listed networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether a host name is explicitly allow-listed (exact, case-insensitive).
    pub fn host_allowed(&self, host: &str) -> bool {
        let h = normalize_host(host);
        self.hosts.contains(&h)
    }

    fn net_allowed(&self, ip: IpAddr) -> bool {
        if self.nets.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        // An IPv4-mapped IPv6 address is allowed when its IPv4 form is.
        if let IpAddr::V6(v6) = ip {
            if let Some(v4) = v6.to_ipv4_mapped() {
                let v4 = IpAddr::V4(v4);
                return self.nets.iter().any(|n| n.contains(&v4));
            }
        }
        false
    }

    /// Public addresses are allowed; special-purpose addresses only when an
    /// allowed CIDR covers them.
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        self.net_allowed(ip) || !is_special(ip)
    }

    /// Parses `url` and checks scheme, credentials and IP-literal hosts.
    ///
    /// Host names are checked against resolved addresses later
    /// ([`OutboundPolicy::check_resolved`] or the client's resolver).
    pub fn check_url(&self, url: &str) -> Result<url::Url, PolicyError> {
        let parsed = url::Url::parse(url.trim()).map_err(|e| PolicyError::BadUrl(e.to_string()))?;
        let scheme = parsed.scheme();
        if scheme != "https" && scheme != "http" {
            return Err(PolicyError::Scheme(scheme.to_owned()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(PolicyError::BadUrl(
                "credentials (user:password@) are not allowed in the URL; configure them as authentication instead"
                    .to_string(),
            ));
        }
        let host = parsed
            .host()
            .ok_or_else(|| PolicyError::BadUrl("the URL has no host".to_string()))?;
        // The host as text only for errors: formatting an address on every call cost
        // more than the checks.
        let (domain, literal) = match host {
            url::Host::Domain(d) => (d, None),
            url::Host::Ipv4(v4) => ("", Some(IpAddr::V4(v4))),
            url::Host::Ipv6(v6) => ("", Some(IpAddr::V6(v6))),
        };
        let host_text = || literal.map_or_else(|| domain.to_owned(), |ip| ip.to_string());
        if domain.is_empty() && literal.is_none() {
            return Err(PolicyError::BadUrl("the URL has no host".to_string()));
        }
        if let Some(ip) = literal {
            if !self.ip_allowed(ip) {
                return Err(PolicyError::Refused { host: host_text(), ip });
            }
        }
        if scheme == "http" {
            let listed = match literal {
                Some(ip) => self.net_allowed(ip),
                None => self.host_allowed(domain),
            };
            if !listed {
                return Err(PolicyError::HttpNotAllowed(host_text()));
            }
        }
        Ok(parsed)
    }

    /// Resolves the URL's host and requires every address to be allowed
    /// (or the host name to be allow-listed).
    pub async fn check_resolved(&self, url: &url::Url) -> Result<(), PolicyError> {
        let host = url
            .host()
            .ok_or_else(|| PolicyError::BadUrl("the URL has no host".to_string()))?;
        let name = match host {
            url::Host::Ipv4(v4) => return self.check_ip(&v4.to_string(), IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => return self.check_ip(&v6.to_string(), IpAddr::V6(v6)),
            url::Host::Domain(d) => d.to_string(),
        };
        if self.host_allowed(&name) {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        self.resolve_strict(&name, port).await.map(|_| ())
    }

    fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), PolicyError> {
        if self.ip_allowed(ip) {
            Ok(())
        } else {
            Err(PolicyError::Refused {
                host: host.to_string(),
                ip,
            })
        }
    }

    async fn lookup(name: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, PolicyError> {
        let host = name.trim_end_matches('.');
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| PolicyError::Resolve(format!("{host}: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(PolicyError::Resolve(format!("{host}: no addresses")));
        }
        Ok(addrs)
    }

    /// Resolves `name` and requires every address to be allowed (unless the
    /// name is allow-listed); returns the addresses.
    pub async fn resolve_strict(
        &self,
        name: &str,
        port: u16,
    ) -> Result<Vec<std::net::SocketAddr>, PolicyError> {
        let addrs = Self::lookup(name, port).await?;
        if self.host_allowed(name) {
            return Ok(addrs);
        }
        if let Some(bad) = addrs.iter().find(|a| !self.ip_allowed(a.ip())) {
            tracing::warn!(host = name, ip = %bad.ip(), "outbound request refused by policy");
            return Err(PolicyError::Refused {
                host: name.trim_end_matches('.').to_string(),
                ip: bad.ip(),
            });
        }
        Ok(addrs)
    }

    /// Resolves `name` and keeps only allowed addresses (all of them when the
    /// name is allow-listed). Used at connect time by the vendor client.
    /// [`PolicyError::Refused`] names the first refused address when none is left.
    pub async fn resolve_filtered(
        &self,
        name: &str,
        port: u16,
    ) -> Result<Vec<std::net::SocketAddr>, PolicyError> {
        let addrs = Self::lookup(name, port).await?;
        if self.host_allowed(name) {
            return Ok(addrs);
        }
        let first = addrs[0].ip();
        let kept: Vec<std::net::SocketAddr> = addrs
            .into_iter()
            .filter(|a| {
                let ok = self.ip_allowed(a.ip());
                if !ok {
                    tracing::debug!(host = name, ip = %a.ip(), "resolved address dropped by outbound policy");
                }
                ok
            })
            .collect();
        if kept.is_empty() {
            tracing::warn!(host = name, ip = %first, "outbound request refused by policy");
            return Err(PolicyError::Refused {
                host: name.trim_end_matches('.').to_string(),
                ip: first,
            });
        }
        Ok(kept)
    }
}

fn in_v4(ip: u32, net: [u8; 4], len: u32) -> bool {
    let net = u32::from_be_bytes(net);
    let shift = 32 - len;
    (ip >> shift) == (net >> shift)
}

fn in_v6(ip: u128, net: u128, len: u32) -> bool {
    let shift = 128 - len;
    (ip >> shift) == (net >> shift)
}

/// Special-purpose IPv4 ranges that are refused unless allowed.
fn is_special_v4(ip: Ipv4Addr) -> bool {
    const RANGES: &[([u8; 4], u32)] = &[
        ([0, 0, 0, 0], 8),       // "this network", unspecified
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // CGNAT shared space
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local (cloud metadata)
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // TEST-NET-1
        ([192, 168, 0, 0], 16),  // private
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // TEST-NET-2
        ([203, 0, 113, 0], 24),  // TEST-NET-3
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved + broadcast
    ];
    let v = u32::from(ip);
    RANGES.iter().any(|(net, len)| in_v4(v, *net, *len))
}

/// Special-purpose IPv6 ranges; embedded IPv4 (mapped, NAT64) is checked as IPv4.
fn is_special_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_special_v4(v4);
    }
    let v = u128::from(ip);
    // NAT64 well-known prefix: judge the embedded IPv4 address.
    if in_v6(v, 0x0064_ff9b_u128 << 96, 96) {
        return is_special_v4(Ipv4Addr::from(v as u32));
    }
    const RANGES: &[(u128, u32)] = &[
        (0, 96),                           // ::, ::1, IPv4-compatible (deprecated)
        (0x0064_ff9b_0001_u128 << 80, 48), // local-use NAT64
        (0x0100_u128 << 112, 64),          // discard-only
        (0x2001_0db8_u128 << 96, 32),      // documentation
        (0x3fff_u128 << 112, 20),          // documentation (RFC 9637)
        (0xfc00_u128 << 112, 7),           // unique local
        (0xfe80_u128 << 112, 10),          // link-local
        (0xfec0_u128 << 112, 10),          // site-local (deprecated)
        (0xff00_u128 << 112, 8),           // multicast
    ];
    RANGES.iter().any(|(net, len)| in_v6(v, *net, *len))
}

/// Whether `ip` lies in a special-purpose (non-public) range.
pub fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_special_v4(v4),
        IpAddr::V6(v6) => is_special_v6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_rules() {
        let p = OutboundPolicy::parse(
            "127.0.0.0/8, ::1,LocalHost,api.example.com., 10.1.2.3,[fd00::1]",
        )
        .unwrap();
        assert_eq!(
            p.hosts(),
            &["localhost".to_string(), "api.example.com".to_string()]
        );
        assert_eq!(p.nets().len(), 4);
        assert!(p.nets().contains(&"10.1.2.3/32".parse().unwrap()));
        assert!(p.nets().contains(&"::1/128".parse().unwrap()));
        assert!(p.nets().contains(&"fd00::1/128".parse().unwrap()));
        assert!(p.ip_allowed(ip("127.9.9.9")));
        assert!(p.ip_allowed(ip("10.1.2.3")));
        assert!(!p.ip_allowed(ip("10.1.2.4")));
        assert!(p.host_allowed("API.example.com"));
        assert!(!p.host_allowed("example.com"));
        assert!(!p.is_empty());
        // Either half alone makes a policy that allows something.
        assert!(!OutboundPolicy::parse("localhost").unwrap().is_empty());
        assert!(!OutboundPolicy::parse("10.0.0.0/8").unwrap().is_empty());
        // Hyphens and underscores are common in internal names (`my-vendor`, `_sandbox`).
        let p = OutboundPolicy::parse("my-vendor.internal,store_sim.test").unwrap();
        assert_eq!(p.hosts(), &["my-vendor.internal".to_string(), "store_sim.test".to_string()]);
    }

    #[test]
    fn parse_empty_allows_nothing() {
        for s in ["", "  ", ",", " , "] {
            let p = OutboundPolicy::parse(s).unwrap();
            assert!(p.is_empty());
            assert!(!p.ip_allowed(ip("127.0.0.1")));
            assert!(p.ip_allowed(ip("93.184.216.34")));
        }
    }

    #[test]
    fn parse_host_bits_truncated() {
        let p = OutboundPolicy::parse("10.1.2.3/8").unwrap();
        assert_eq!(p.nets(), &["10.0.0.0/8".parse::<IpNet>().unwrap()]);
    }

    #[test]
    fn parse_errors_name_entry() {
        for bad in [
            "10.0.0.0/33",
            "*.example.com",
            "http://x",
            "a b",
            "1.2.3",
            "::1/200",
            "foo..bar",
        ] {
            let err = OutboundPolicy::parse(&format!("localhost,{bad}")).unwrap_err();
            assert_eq!(err, PolicyError::BadRule(bad.to_string()), "{bad}");
            let msg = err.to_string();
            assert!(
                msg.contains(bad) && msg.contains("--outbound-allow"),
                "{msg}"
            );
        }
    }

    #[test]
    fn extend_merges_without_duplicates() {
        let mut p = OutboundPolicy::parse("api.example.com,10.0.0.0/8").unwrap();
        p.extend(&OutboundPolicy::allow_loopback());
        p.extend(&OutboundPolicy::allow_loopback());
        assert_eq!(p.hosts().len(), 2);
        assert_eq!(p.nets().len(), 3);
        assert!(p.ip_allowed(ip("127.0.0.1")));
        assert!(p.ip_allowed(ip("10.0.0.1")));
    }

    #[test]
    fn special_ranges() {
        let d = OutboundPolicy::default();
        for s in [
            "0.0.0.0",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b:1::808:808", // local-use NAT64 (RFC 8215), whatever it embeds
            "100::1",
            "3fff::1",
            "fec0::1",
            "::127.0.0.1",
        ] {
            assert!(!d.ip_allowed(ip(s)), "{s} must be refused");
        }
        for s in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(d.ip_allowed(ip(s)), "{s} must be allowed");
        }
    }

    #[test]
    fn loopback_policy_covers_mapped() {
        let p = OutboundPolicy::allow_loopback();
        assert!(p.ip_allowed(ip("127.0.0.1")));
        assert!(p.ip_allowed(ip("::1")));
        assert!(p.ip_allowed(ip("::ffff:127.0.0.1")));
        assert!(!p.ip_allowed(ip("10.0.0.1")));
        assert!(!p.ip_allowed(ip("169.254.169.254")));
    }

    #[test]
    fn check_url_table() {
        let d = OutboundPolicy::default();
        let lo = OutboundPolicy::allow_loopback();
        let refused = |p: &OutboundPolicy, u: &str| {
            matches!(p.check_url(u), Err(PolicyError::Refused { .. }))
        };

        assert!(d.check_url("https://api.example.com/v3/x?y=1").is_ok());
        assert!(d.check_url("https://93.184.216.34/").is_ok());
        assert!(
            matches!(d.check_url("http://api.example.com/"), Err(PolicyError::HttpNotAllowed(h)) if h == "api.example.com")
        );
        assert!(matches!(
            d.check_url("http://93.184.216.34/"),
            Err(PolicyError::HttpNotAllowed(_))
        ));
        assert!(refused(&d, "http://127.0.0.1:8080/"));
        assert!(refused(&d, "https://127.0.0.1/"));
        assert!(lo.check_url("http://127.0.0.1:8080/x").is_ok());
        assert!(lo.check_url("http://[::1]:8080/x").is_ok());
        assert!(lo.check_url("http://localhost:8080/x").is_ok());
        for u in [
            "https://10.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://0x7f.1/",
            "https://2130706433/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://255.255.255.255/",
            "https://192.168.0.10/",
        ] {
            assert!(refused(&d, u), "{u}");
        }
        // Loopback allowance does not open other private ranges.
        assert!(refused(&lo, "https://10.0.0.1/"));
        assert!(refused(&lo, "https://169.254.169.254/"));
        assert!(lo.check_url("https://[::ffff:127.0.0.1]/").is_ok());

        // userinfo
        let err = d
            .check_url("https://user:s3cr3t@api.example.com/")
            .unwrap_err();
        assert!(matches!(err, PolicyError::BadUrl(_)));
        assert!(!err.to_string().contains("s3cr3t"));
        assert!(matches!(
            d.check_url("https://user@api.example.com/"),
            Err(PolicyError::BadUrl(_))
        ));
        // schemes
        assert_eq!(
            d.check_url("ftp://api.example.com/"),
            Err(PolicyError::Scheme("ftp".into()))
        );
        assert!(matches!(
            d.check_url("file:///etc/passwd"),
            Err(PolicyError::Scheme(_))
        ));
        assert!(matches!(
            d.check_url("not a url"),
            Err(PolicyError::BadUrl(_))
        ));

        let named = OutboundPolicy::parse("vendor.internal").unwrap();
        assert!(named.check_url("http://VENDOR.internal/api").is_ok());
        assert!(named.check_url("http://other.internal/api").is_err());
        let cidr = OutboundPolicy::parse("10.0.0.0/8").unwrap();
        assert!(cidr.check_url("http://10.2.3.4/").is_ok());
        assert!(cidr.check_url("https://10.2.3.4/").is_ok());
    }

    #[test]
    fn messages_say_what_to_change() {
        let d = OutboundPolicy::default();
        let msg = d.check_url("https://127.0.0.1/").unwrap_err().to_string();
        assert!(
            msg.contains("--outbound-allow") && msg.contains("127.0.0.1"),
            "{msg}"
        );
        let msg = d
            .check_url("http://api.example.com/")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("https"), "{msg}");
    }

    #[tokio::test]
    async fn localhost_resolution_checked() {
        let url = url::Url::parse("https://localhost:9/").unwrap();
        let d = OutboundPolicy::default();
        assert!(matches!(
            d.check_resolved(&url).await,
            Err(PolicyError::Refused { .. })
        ));
        // Only the CIDRs, not the name: still allowed since every address is loopback.
        let cidrs = OutboundPolicy::parse("127.0.0.0/8,::1").unwrap();
        assert!(cidrs.check_resolved(&url).await.is_ok());
        assert!(OutboundPolicy::allow_loopback()
            .check_resolved(&url)
            .await
            .is_ok());

        // Only ::1 allowed: strict refuses whenever localhost has an IPv4
        // address; filtering keeps exactly the ::1 addresses, if any.
        let v6 = OutboundPolicy::parse("::1").unwrap();
        let all = OutboundPolicy::lookup("localhost", 0).await.unwrap();
        match v6.resolve_filtered("localhost", 0).await {
            Ok(kept) => {
                assert!(!kept.is_empty() && kept.iter().all(|a| a.ip() == ip("::1")));
                assert!(all.iter().any(|a| a.ip() == ip("::1")));
            }
            Err(e) => {
                assert!(matches!(e, PolicyError::Refused { .. }));
                assert!(all.iter().all(|a| a.ip() != ip("::1")));
            }
        }
        if all.iter().any(|a| a.is_ipv4()) {
            assert!(v6.check_resolved(&url).await.is_err());
        }

        let lit = url::Url::parse("https://127.0.0.1/").unwrap();
        assert!(d.check_resolved(&lit).await.is_err());
        let lit6 = url::Url::parse("https://[::1]/").unwrap();
        assert!(d.check_resolved(&lit6).await.is_err());
        assert!(cidrs.check_resolved(&lit6).await.is_ok());
    }
}
