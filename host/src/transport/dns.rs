//! Name resolution for next hops: IP literals never touch DNS; `/etc/hosts` first; then
//! RFC 3263 order (SRV for the transport, then A/AAAA) with hickory-resolver, unless
//! `[dns] hosts_only` is set.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{NameServerConfig, NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

use crate::net::{Proto, SendError};
use crate::sip::hdr::parse_ipv6_lenient;

use super::TransportError;

pub struct Resolver {
    hosts: HashMap<String, Vec<IpAddr>>,
    dns: Option<TokioResolver>,
}

/// Parses /etc/hosts text into name -> addresses.
pub fn parse_hosts(text: &str) -> HashMap<String, Vec<IpAddr>> {
    let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        for name in words {
            map.entry(name.to_ascii_lowercase()).or_default().push(ip);
        }
    }
    map
}

impl Resolver {
    /// `servers`: name servers to ask instead of the system's (`[dns] servers`).
    pub fn new(hosts_only: bool, servers: &[SocketAddr]) -> Result<Resolver, TransportError> {
        let hosts = parse_hosts(&std::fs::read_to_string("/etc/hosts").unwrap_or_default());
        let dns = if hosts_only {
            None
        } else if servers.is_empty() {
            Some(
                TokioResolver::builder_tokio()
                    .map_err(|e| TransportError::Dns(e.to_string()))?
                    .build(),
            )
        } else {
            let group: Vec<NameServerConfig> = servers
                .iter()
                .flat_map(|a| {
                    [
                        NameServerConfig::new(*a, Protocol::Udp),
                        NameServerConfig::new(*a, Protocol::Tcp),
                    ]
                })
                .collect();
            let config =
                ResolverConfig::from_parts(None, vec![], NameServerConfigGroup::from(group));
            Some(
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                    .build(),
            )
        };
        Ok(Resolver { hosts, dns })
    }

    pub fn resolve(
        &self,
        host: &str,
        port: Option<u16>,
        proto: Option<Proto>,
        secure: bool,
    ) -> Result<(Proto, SocketAddr), SendError> {
        let default_proto = if secure { Proto::Tls } else { Proto::Udp };
        let p = proto.unwrap_or(default_proto);
        let port_or_default = port.unwrap_or(p.default_port());
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok((p, SocketAddr::new(ip, port_or_default)));
        }
        if let Some(v6) = parse_ipv6_lenient(host) {
            return Ok((p, SocketAddr::new(IpAddr::V6(v6), port_or_default)));
        }
        if let Some(ip) = self
            .hosts
            .get(&host.to_ascii_lowercase())
            .and_then(|v| v.first())
        {
            return Ok((p, SocketAddr::new(*ip, port_or_default)));
        }
        let Some(dns) = &self.dns else {
            return Err(SendError::Resolve(host.to_string()));
        };
        let dns = dns.clone();
        let host_owned = host.to_string();
        // The routing script is synchronous; wait for the lookup without stalling the
        // other tasks of this worker's runtime.
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| SendError::Resolve(host.to_string()))?;
        tokio::task::block_in_place(move || {
            handle.block_on(rfc3263(&dns, &host_owned, port, proto, secure))
        })
        .ok_or_else(|| SendError::Resolve(host.to_string()))
    }
}

/// The transport a NAPTR service field names (RFC 3263 §4.1, RFC 7118 §5).
fn naptr_proto(service: &[u8]) -> Option<Proto> {
    match service.to_ascii_uppercase().as_slice() {
        b"SIP+D2U" => Some(Proto::Udp),
        b"SIP+D2T" => Some(Proto::Tcp),
        b"SIPS+D2T" => Some(Proto::Tls),
        b"SIP+D2W" => Some(Proto::Ws),
        b"SIPS+D2W" => Some(Proto::Wss),
        _ => None,
    }
}

/// First address of the SRV records of `name`, by priority then weight.
async fn srv_first(dns: &TokioResolver, name: &str) -> Option<SocketAddr> {
    let srv = dns.srv_lookup(name).await.ok()?;
    let mut recs: Vec<_> = srv.iter().cloned().collect();
    recs.sort_by_key(|r| (r.priority(), u16::MAX - r.weight()));
    for r in recs {
        if let Ok(ips) = dns.lookup_ip(r.target().to_utf8()).await {
            if let Some(ip) = ips.iter().next() {
                return Some(SocketAddr::new(ip, r.port()));
            }
        }
    }
    None
}

/// RFC 3263 §4: with no port and no transport, NAPTR then SRV then A/AAAA; with a
/// transport but no port, SRV for it then A/AAAA; with a port, A/AAAA.
async fn rfc3263(
    dns: &TokioResolver,
    host: &str,
    port: Option<u16>,
    proto: Option<Proto>,
    secure: bool,
) -> Option<(Proto, SocketAddr)> {
    let fqdn = format!("{}.", host.trim_end_matches('.'));
    if port.is_none() {
        if proto.is_none() {
            if let Ok(l) = dns.lookup(fqdn.as_str(), RecordType::NAPTR).await {
                let mut recs: Vec<_> = l
                    .iter()
                    .filter_map(|r| match r {
                        RData::NAPTR(n) => Some(n.clone()),
                        _ => None,
                    })
                    .collect();
                recs.sort_by_key(|n| (n.order(), n.preference()));
                for n in recs {
                    let Some(p) = naptr_proto(n.services()) else {
                        continue;
                    };
                    if (secure && !p.is_secure()) || !n.flags().eq_ignore_ascii_case(b"s") {
                        continue;
                    }
                    if let Some(a) = srv_first(dns, &n.replacement().to_utf8()).await {
                        return Some((p, a));
                    }
                }
            }
        }
        let candidates: Vec<(Proto, &str)> = match proto {
            Some(Proto::Tcp) => vec![(Proto::Tcp, "_sip._tcp")],
            Some(Proto::Tls) => vec![(Proto::Tls, "_sips._tcp")],
            Some(Proto::Udp) => vec![(Proto::Udp, "_sip._udp")],
            Some(_) => vec![],
            None if secure => vec![(Proto::Tls, "_sips._tcp")],
            None => vec![
                (Proto::Udp, "_sip._udp"),
                (Proto::Tcp, "_sip._tcp"),
                (Proto::Tls, "_sips._tcp"),
            ],
        };
        for (p, prefix) in candidates {
            if let Some(a) = srv_first(dns, &format!("{prefix}.{fqdn}")).await {
                return Some((p, a));
            }
        }
    }
    let p = proto.unwrap_or(if secure { Proto::Tls } else { Proto::Udp });
    let ips = dns.lookup_ip(fqdn.as_str()).await.ok()?;
    let ip = ips.iter().next()?;
    Some((p, SocketAddr::new(ip, port.unwrap_or(p.default_port()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file() {
        let m = parse_hosts("127.0.0.1 localhost  proxy.test # c\n::1 ip6-localhost\n# x\n");
        assert_eq!(
            m["proxy.test"],
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(m["ip6-localhost"], vec!["::1".parse::<IpAddr>().unwrap()]);
    }
}
