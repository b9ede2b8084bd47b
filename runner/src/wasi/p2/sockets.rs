//! `wasi:sockets` for components: wasmtime-wasi's TCP and name lookups,
//! with kiln's [`Rules`] deciding what a step may reach.
//!
//! - A step without network ([`Rules::set`] with no policy) has every
//!   connect and lookup refused (`access-denied`), and its log told which
//!   flags open it.
//! - A networked step may look up only the names its
//!   [`Allowlist`](crate::network::Allowlist) has (any port,
//!   [`allows_name`](crate::network::Allowlist::allows_name)); a literal
//!   IP address "looks up" to itself without the network and is not
//!   remembered.
//! - It may connect (TCP) to an address that is on the allowlist as a
//!   literal IP (with its port rule), or that an allowed lookup of this
//!   step returned (with the port rule of that name's entries).
//! - No listening: `listen` and `accept` are refused, and so is `bind`
//!   except to an unspecified address and port 0 (the implicit bind of
//!   `connect`, an ephemeral port that cannot listen).
//! - UDP is linked but denied when the socket is created (wasmtime-wasi's
//!   `allow_udp(false)`), so components importing it still instantiate.
//!
//! Refusals are told to the step's log like the `wasi:http` ones
//! (`kiln: refused connect to ADDR: ... --allow-net ADDR`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    Host, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{
    self, ErrorCode, HostNetwork, IpAddress, Network,
};
use wasmtime_wasi::p2::{DynPollable, SocketError};
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsCtxView};

use crate::network::{AllowedHost, NetLog, Policy, note_no_network};

/// Ports a name's allowlist entries allow: `None` in it is any port.
type Ports = Vec<Option<u16>>;

/// What the sockets of one step may do, shared by the address check in
/// its `WasiCtx` and the name-lookup host.
#[derive(Clone, Default)]
pub(super) struct Rules(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    /// `None`: the step has no network.
    policy: Option<Arc<Policy>>,
    /// Where refusals are told when the step has no network.
    log: Option<NetLog>,
    /// Addresses returned by this step's allowed lookups, with the port
    /// rules of the names that returned them.
    resolved: HashMap<IpAddr, Ports>,
    /// Lookups under way (by resource): the port rule of their name.
    lookups: HashMap<u32, Ports>,
}

/// What the guest gets for a refusal.
fn denied() -> SocketError {
    ErrorCode::AccessDenied.into()
}

impl Rules {
    /// Sets the step's network: `policy` (`None`: no network), and where
    /// refusals are told without one. Forgets earlier lookups.
    pub(super) fn set(&self, policy: Option<Arc<Policy>>, log: Option<NetLog>) {
        let mut inner = self.lock();
        *inner = Inner {
            policy,
            log,
            ..Inner::default()
        };
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a socket may use `addr` for `use_`; when not, tells the
    /// step's log why.
    pub(super) fn check(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        let inner = self.lock();
        let ip = addr.ip().to_canonical();
        let port = addr.port();
        match use_ {
            // The implicit bind of `connect` (checked before the connect
            // itself), or an explicit bind to any address, ephemeral port.
            SocketAddrUse::TcpBind if ip.is_unspecified() && port == 0 => true,
            SocketAddrUse::TcpConnect => {
                let Some(policy) = &inner.policy else {
                    note_no_network(inner.log.as_ref(), &format!("connect to {addr}"));
                    return false;
                };
                let resolved = inner
                    .resolved
                    .get(&ip)
                    .is_some_and(|ports| ports.iter().any(|p| p.is_none_or(|p| p == port)));
                if resolved || policy.allow.allows(&ip.to_string(), port) {
                    return true;
                }
                policy.refuse(
                    "connect to ",
                    &AllowedHost {
                        host: ip.to_string(),
                        port: Some(port),
                    },
                );
                false
            }
            SocketAddrUse::TcpBind | SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => {
                inner.note(&format!(
                    "refused to bind or listen on {addr}: steps may only connect out, not listen"
                ));
                false
            }
            // UDP sockets cannot be created (`allow_udp(false)`).
            _ => false,
        }
    }

    /// Whether `name` may be looked up: `Ok(Some(ports))` for a name on
    /// the allowlist (its addresses then connectable on `ports`),
    /// `Ok(None)` for a literal IP address (nothing to look up), `Err`
    /// (told to the log) otherwise.
    fn admit_name(&self, name: &str) -> Result<Option<Ports>, ()> {
        let inner = self.lock();
        let Some(policy) = &inner.policy else {
            note_no_network(inner.log.as_ref(), &format!("lookup of {name:?}"));
            return Err(());
        };
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_ok() {
            return Ok(None);
        }
        if !policy.allow.allows_name(name) {
            let shown = crate::network::normalise_host(name).unwrap_or_else(|| name.to_string());
            policy.refuse(
                "lookup of ",
                &AllowedHost {
                    host: shown,
                    port: None,
                },
            );
            return Err(());
        }
        let host = crate::network::normalise_host(name).unwrap_or_default();
        Ok(Some(
            policy
                .allow
                .entries()
                .iter()
                .filter(|a| a.host == host)
                .map(|a| a.port)
                .collect(),
        ))
    }

    /// Remembers `ip`, returned by a lookup whose name allows `ports`.
    fn remember(&self, ip: IpAddr, ports: &[Option<u16>]) {
        let mut inner = self.lock();
        let known = inner.resolved.entry(ip.to_canonical()).or_default();
        for p in ports {
            if !known.contains(p) {
                known.push(*p);
            }
        }
    }
}

impl Inner {
    fn note(&self, line: &str) {
        match &self.policy {
            Some(p) => p.note(line),
            None => crate::network::tell(self.log.as_ref(), line),
        }
    }
}

/// The [`HasData`] of kiln's `wasi:sockets/ip-name-lookup`.
pub(super) struct Lookup;

impl HasData for Lookup {
    type Data<'a> = LookupView<'a>;
}

/// wasmtime-wasi's sockets view and the step's [`Rules`].
pub(super) struct LookupView<'a> {
    pub(super) sockets: WasiSocketsCtxView<'a>,
    pub(super) rules: &'a Rules,
}

fn std_ip(ip: &IpAddress) -> IpAddr {
    match *ip {
        IpAddress::Ipv4((a, b, c, d)) => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => {
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h))
        }
    }
}

// `ip-name-lookup` uses `network`'s types: wasmtime-wasi's, passed on.
impl network::Host for LookupView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.sockets, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.sockets, err)
    }
}

impl HostNetwork for LookupView<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        HostNetwork::drop(&mut self.sockets, this)
    }
}

impl Host for LookupView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        let ports = self.rules.admit_name(&name).map_err(|()| denied())?;
        let stream = Host::resolve_addresses(&mut self.sockets, network, name)?;
        if let Some(ports) = ports {
            self.rules.lock().lookups.insert(stream.rep(), ports);
        }
        Ok(stream)
    }
}

impl HostResolveAddressStream for LookupView<'_> {
    fn resolve_next_address(
        &mut self,
        resource: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        let rep = resource.rep();
        let next = HostResolveAddressStream::resolve_next_address(&mut self.sockets, resource)?;
        if let Some(addr) = &next {
            let ports = self.rules.lock().lookups.get(&rep).cloned();
            if let Some(ports) = ports {
                self.rules.remember(std_ip(addr), &ports);
            }
        }
        Ok(next)
    }

    fn subscribe(
        &mut self,
        resource: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        HostResolveAddressStream::subscribe(&mut self.sockets, resource)
    }

    fn drop(&mut self, resource: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        self.rules.lock().lookups.remove(&resource.rep());
        HostResolveAddressStream::drop(&mut self.sockets, resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Allowlist, tls_config};

    fn rules(allow: &[&str]) -> (Rules, Arc<Mutex<Vec<u8>>>) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let log: NetLog = Arc::new(Mutex::new(Box::new(SharedVec(out.clone()))));
        let r = Rules::default();
        r.set(
            Some(Arc::new(Policy {
                allow: Allowlist::parse(allow).unwrap(),
                bound: Vec::new(),
                tls: tls_config(Vec::new()).unwrap(),
                log: Some(log),
            })),
            None,
        );
        (r, out)
    }

    struct SharedVec(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for SharedVec {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text(out: &Arc<Mutex<Vec<u8>>>) -> String {
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn connects_go_to_listed_ips_and_their_ports_only() {
        let (r, out) = rules(&["127.0.0.1:8080", "10.0.0.1", "::1:9"]);
        assert!(r.check(sa("0.0.0.0:0"), SocketAddrUse::TcpBind));
        assert!(r.check(sa("[::]:0"), SocketAddrUse::TcpBind));
        assert!(r.check(sa("127.0.0.1:8080"), SocketAddrUse::TcpConnect));
        assert!(r.check(sa("10.0.0.1:1"), SocketAddrUse::TcpConnect));
        assert!(r.check(sa("[::ffff:10.0.0.1]:2"), SocketAddrUse::TcpConnect));
        assert!(text(&out).is_empty());
        assert!(!r.check(sa("127.0.0.1:8081"), SocketAddrUse::TcpConnect));
        assert!(
            text(&out).contains("kiln: refused connect to 127.0.0.1:8081: not in this build's network allowlist (allow it with --allow-net 127.0.0.1:8081)"),
            "{}",
            text(&out)
        );
        assert!(!r.check(sa("10.0.0.2:80"), SocketAddrUse::TcpConnect));
        // No listening, no binding to an address or port.
        for (a, u) in [
            ("127.0.0.1:0", SocketAddrUse::TcpBind),
            ("0.0.0.0:8080", SocketAddrUse::TcpBind),
            ("0.0.0.0:0", SocketAddrUse::TcpListen),
            ("127.0.0.1:8080", SocketAddrUse::TcpAccept),
            ("127.0.0.1:8080", SocketAddrUse::UdpSend),
        ] {
            assert!(!r.check(sa(a), u), "{a} {u:?}");
        }
        assert!(text(&out).contains("not listen"), "{}", text(&out));
    }

    #[test]
    fn lookups_only_of_listed_names_and_their_addresses_then_connect() {
        let (r, out) = rules(&["localhost:8080", "localhost:9090", "127.0.0.2"]);
        assert_eq!(
            r.admit_name("LocalHost."),
            Ok(Some(vec![Some(8080), Some(9090)]))
        );
        assert_eq!(r.admit_name("127.0.0.9"), Ok(None));
        assert_eq!(r.admit_name("example.com"), Err(()));
        assert!(
            text(&out).contains("refused lookup of example.com: not in this build's network allowlist (allow it with --allow-net example.com)"),
            "{}",
            text(&out)
        );
        // Not looked up yet.
        assert!(!r.check(sa("127.0.0.1:8080"), SocketAddrUse::TcpConnect));
        r.remember("127.0.0.1".parse().unwrap(), &[Some(8080), Some(9090)]);
        assert!(r.check(sa("127.0.0.1:8080"), SocketAddrUse::TcpConnect));
        assert!(r.check(sa("127.0.0.1:9090"), SocketAddrUse::TcpConnect));
        assert!(!r.check(sa("127.0.0.1:22"), SocketAddrUse::TcpConnect));
        // A new step's network forgets them.
        r.set(None, None);
        assert!(!r.check(sa("127.0.0.1:8080"), SocketAddrUse::TcpConnect));
    }

    #[test]
    fn without_network_everything_is_refused_naming_the_flags() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let log: NetLog = Arc::new(Mutex::new(Box::new(SharedVec(out.clone()))));
        let r = Rules::default();
        assert!(!r.check(sa("127.0.0.1:80"), SocketAddrUse::TcpConnect));
        r.set(None, Some(log));
        assert!(!r.check(sa("127.0.0.1:80"), SocketAddrUse::TcpConnect));
        assert_eq!(r.admit_name("localhost"), Err(()));
        let t = text(&out);
        assert!(
            t.contains("kiln: refused connect to 127.0.0.1:80: this step has no network"),
            "{t}"
        );
        assert!(t.contains("refused lookup of \"localhost\""), "{t}");
        assert!(t.contains("--network=default"), "{t}");
    }
}
