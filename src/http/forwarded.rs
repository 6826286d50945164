//! `--forwarded-allow-ips`: which peers are proxies whose `X-Forwarded-For`
//! and `X-Forwarded-Proto` we believe, and what those headers then say
//! about the client (its address, the scheme it used).
//!
//! Pure (no Python, no sockets): the WSGI environ builder asks
//! [`TrustedProxies::trusts`] about the peer and, only when a request
//! carries one of the headers, [`client_addr`] / [`scheme`] about their
//! values. By default only the trusted peer's own entry counts
//! (`--forwarded-hops 1`); walking further left is opt-in. Nothing here
//! allocates per request.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::chars::trim_ows;

/// gunicorn's default: a proxy on the same host.
pub const DEFAULT_ALLOW_IPS: &str = "127.0.0.1,::1";

/// The peers allowed to speak for their clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustedProxies {
    /// `*`: every peer.
    All,
    /// Addresses and networks; empty trusts no TCP peer.
    Nets(Vec<IpNet>),
}

/// An address with a prefix length (`10.0.0.0/8`; a plain address is /32
/// or /128). The address is stored with its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a `--forwarded-allow-ips` entry was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowListError {
    /// Neither an IP address nor `ADDR/PREFIX`.
    NotAnAddress(String),
    /// The prefix is not a number within the address family's width.
    BadPrefix(String),
}

impl fmt::Display for AllowListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowListError::NotAnAddress(e) => write!(f, "{e:?} is not an IP address or network"),
            AllowListError::BadPrefix(e) => write!(f, "{e:?} has an invalid prefix length"),
        }
    }
}

impl std::error::Error for AllowListError {}

/// The scheme a trusted proxy says the client used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl IpNet {
    pub fn parse(entry: &str) -> Result<IpNet, AllowListError> {
        let (addr, prefix) = match entry.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (entry, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| AllowListError::NotAnAddress(entry.to_string()))?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= width)
                .ok_or_else(|| AllowListError::BadPrefix(entry.to_string()))?,
            Some(_) => return Err(AllowListError::BadPrefix(entry.to_string())),
        };
        // Host bits are cleared rather than refused: `10.0.0.1/8` can only
        // mean the network it lies in.
        Ok(IpNet {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.addr
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl Default for TrustedProxies {
    fn default() -> Self {
        TrustedProxies::Nets(vec![
            IpNet {
                addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                prefix: 32,
            },
            IpNet {
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ])
    }
}

impl TrustedProxies {
    /// A comma-separated list of addresses and networks, or `*`. Empty
    /// entries are skipped, so `""` trusts no TCP peer at all.
    pub fn parse(list: &str) -> Result<TrustedProxies, AllowListError> {
        let mut nets = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                return Ok(TrustedProxies::All);
            }
            let net = IpNet::parse(entry)?;
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        Ok(TrustedProxies::Nets(nets))
    }

    /// True when `ip` is a trusted proxy. An IPv4 peer seen through a
    /// dual-stack socket (`::ffff:127.0.0.1`) counts as its IPv4 address.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        match self {
            TrustedProxies::All => true,
            TrustedProxies::Nets(nets) => {
                let ip = ip.to_canonical();
                nets.iter().any(|n| n.contains(ip))
            }
        }
    }
}

/// `--forwarded-hops` by default: the address our proxy saw, nothing
/// further left (nginx `real_ip_recursive off`, waitress
/// `trusted_proxy_count=1`, werkzeug `ProxyFix(x_for=1)`).
pub(crate) const DEFAULT_HOPS: u8 = 1;

/// The most `--forwarded-hops` accepts: far more proxies than any chain has.
pub(crate) const MAX_HOPS: u8 = 64;

/// The client address that `X-Forwarded-For` names, given every field line
/// of it in order (from a peer the caller already trusts), looking at most
/// `hops` entries back from the right (`hops` >= 1).
///
/// Each proxy appends the address it received the request from, so the
/// list is read from the right. Its last entry is what our trusted peer
/// saw; with `hops` 1 that is the client, whatever it is. With more, the
/// walk goes on to the left while the entry just taken is itself a trusted
/// proxy, for at most `hops` entries: the first address that is not a
/// trusted proxy, or the one `hops` back, is the client. Entries left of
/// it came from that client and may be forged. Both limits matter:
/// without the count, a client inside the trusted range could choose any
/// address; without the trust check, so could a client that bypassed the
/// outer proxies. An entry that is not an IP address (`unknown`, garbage)
/// ends the walk: the hop that wrote it is unknown, so nothing to its left
/// can be checked; the trusted address already taken, if any, stands. `None`
/// leaves the peer address as it is.
pub fn client_addr<'a>(
    trusted: &TrustedProxies,
    hops: u8,
    field_values: impl DoubleEndedIterator<Item = &'a [u8]>,
) -> Option<IpAddr> {
    let mut client = None;
    let mut left = hops;
    for value in field_values.rev() {
        for item in value.rsplit(|&b| b == b',') {
            let item = trim_ows(item);
            // RFC 9110 section 5.6.1: empty list elements are allowed.
            if item.is_empty() {
                continue;
            }
            let Some(ip) = parse_addr(item) else {
                return client;
            };
            client = Some(ip);
            left = left.saturating_sub(1);
            if left == 0 || !trusted.trusts(ip) {
                return client;
            }
        }
    }
    client
}

/// The scheme `X-Forwarded-Proto` gives: its rightmost value (the one our
/// proxy wrote), `http` or `https` in any case; anything else is ignored.
/// Never further left, whatever `--forwarded-hops` says: proxies commonly
/// replace this header instead of appending to it, so its entries do not
/// line up with X-Forwarded-For's hops. In a chain the inner proxies pass
/// the outer one's value on.
pub fn scheme<'a>(field_values: impl DoubleEndedIterator<Item = &'a [u8]>) -> Option<Scheme> {
    let last = field_values
        .rev()
        .flat_map(|v| v.rsplit(|&b| b == b','))
        .map(trim_ows)
        .find(|item| !item.is_empty())?;
    if last.eq_ignore_ascii_case(b"https") {
        Some(Scheme::Https)
    } else if last.eq_ignore_ascii_case(b"http") {
        Some(Scheme::Http)
    } else {
        None
    }
}

/// An address as proxies write it: `1.2.3.4`, `2001:db8::1`, and, with a
/// port some add, `1.2.3.4:5678`, `[2001:db8::1]` or `[2001:db8::1]:5678`.
/// IPv4-mapped IPv6 addresses come back as IPv4.
fn parse_addr(item: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(item).ok()?;
    let ip = if let Ok(ip) = s.parse::<IpAddr>() {
        ip
    } else if let Ok(sa) = s.parse::<SocketAddr>() {
        sa.ip()
    } else {
        let inner = s.strip_prefix('[')?.strip_suffix(']')?;
        IpAddr::V6(inner.parse().ok()?)
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn list(s: &str) -> TrustedProxies {
        TrustedProxies::parse(s).expect(s)
    }

    /// The client address with the default `--forwarded-hops 1`.
    fn client(t: &TrustedProxies, lines: &[&str]) -> Option<IpAddr> {
        walk(t, DEFAULT_HOPS, lines)
    }

    /// ...and with `--forwarded-hops hops`.
    fn walk(t: &TrustedProxies, hops: u8, lines: &[&str]) -> Option<IpAddr> {
        client_addr(t, hops, lines.iter().map(|l| l.as_bytes()))
    }

    /// As far as any chain goes: the old unbounded walk.
    const FAR: u8 = MAX_HOPS;

    #[test]
    fn default_is_localhost() {
        let t = TrustedProxies::default();
        assert_eq!(t, list(DEFAULT_ALLOW_IPS));
        assert!(t.trusts(ip("127.0.0.1")));
        assert!(t.trusts(ip("::1")));
        assert!(t.trusts(ip("::ffff:127.0.0.1")), "v4-mapped peer");
        assert!(!t.trusts(ip("127.0.0.2")));
        assert!(!t.trusts(ip("10.0.0.1")));
        assert!(!t.trusts(ip("::2")));
    }

    #[test]
    fn parse_lists() {
        assert_eq!(list("*"), TrustedProxies::All);
        assert_eq!(list("10.0.0.1, *"), TrustedProxies::All);
        assert_eq!(list(""), TrustedProxies::Nets(vec![]));
        assert_eq!(list(" , "), TrustedProxies::Nets(vec![]));
        let t = list(" 10.0.0.0/8 ,192.168.1.7,2001:db8::/32,, fe80::1/128");
        let TrustedProxies::Nets(nets) = &t else {
            panic!("{t:?}")
        };
        assert_eq!(nets.len(), 4);
        assert_eq!(nets[0].to_string(), "10.0.0.0/8");
        assert_eq!(nets[1].to_string(), "192.168.1.7/32");
        // Host bits are cleared.
        assert_eq!(
            IpNet::parse("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(IpNet::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(IpNet::parse("::/0").unwrap().to_string(), "::/0");
        // Duplicates collapse.
        assert_eq!(list("1.2.3.4,1.2.3.4/32"), list("1.2.3.4"));
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "localhost",
            "1.2.3",
            "1.2.3.4.5",
            "::g",
            "1.2.3.4:80",
            "[::1]",
        ] {
            assert_eq!(
                TrustedProxies::parse(bad),
                Err(AllowListError::NotAnAddress(bad.to_string())),
                "{bad}"
            );
        }
        for bad in [
            "1.2.3.4/33",
            "::/129",
            "1.2.3.4/",
            "1.2.3.4/x",
            "1.2.3.4/-1",
            "1.2.3.4/+8",
        ] {
            assert_eq!(
                TrustedProxies::parse(bad),
                Err(AllowListError::BadPrefix(bad.to_string())),
                "{bad}"
            );
        }
        assert!(TrustedProxies::parse("10.0.0.1,bogus").is_err());
        let msg = AllowListError::NotAnAddress("x y".into()).to_string();
        assert_eq!(msg, "\"x y\" is not an IP address or network");
    }

    #[test]
    fn cidr_membership() {
        let t = list("10.0.0.0/8,192.168.0.0/16,2001:db8::/32,172.16.5.4");
        for yes in [
            "10.0.0.0",
            "10.255.255.255",
            "192.168.3.4",
            "2001:db8::1",
            "2001:db8:ffff::9",
            "172.16.5.4",
        ] {
            assert!(t.trusts(ip(yes)), "{yes}");
        }
        for no in [
            "11.0.0.0",
            "9.255.255.255",
            "192.169.0.1",
            "2001:db9::1",
            "172.16.5.5",
        ] {
            assert!(!t.trusts(ip(no)), "{no}");
        }
        // The v4-mapped form of 10.0.0.1 is 10.0.0.1.
        assert!(t.trusts(ip("::ffff:10.0.0.1")));
        assert!(!t.trusts(ip("::ffff:11.0.0.1")));
        // An IPv4 network never matches an IPv6 address and vice versa.
        let all4 = list("0.0.0.0/0");
        assert!(all4.trusts(ip("8.8.8.8")));
        assert!(!all4.trusts(ip("2001:db8::1")));
        let all6 = list("::/0");
        assert!(all6.trusts(ip("2001:db8::1")));
        assert!(!all6.trusts(ip("8.8.8.8")));
        assert!(list("*").trusts(ip("8.8.8.8")));
        assert!(!list("").trusts(ip("127.0.0.1")));
    }

    #[test]
    fn xff_single_client() {
        let t = TrustedProxies::default();
        assert_eq!(client(&t, &["1.2.3.4"]), Some(ip("1.2.3.4")));
        assert_eq!(client(&t, &[" 1.2.3.4 "]), Some(ip("1.2.3.4")));
        assert_eq!(client(&t, &["2001:db8::7"]), Some(ip("2001:db8::7")));
        assert_eq!(client(&t, &[]), None);
        assert_eq!(client(&t, &[""]), None);
    }

    #[test]
    fn xff_one_hop_takes_the_last_entry() {
        // The client forged "6.6.6.6"; nginx appended the real address.
        let t = TrustedProxies::default();
        assert_eq!(client(&t, &["6.6.6.6, 1.2.3.4"]), Some(ip("1.2.3.4")));
        // A client inside the trusted range (a health checker, the app
        // calling its own URL) forging an entry left of its own gets its
        // own address, not the forgery.
        let t = list("10.0.0.0/8");
        assert_eq!(client(&t, &["6.6.6.6, 10.0.0.9"]), Some(ip("10.0.0.9")));
        assert_eq!(client(&t, &["10.7.7.7, 10.0.0.9"]), Some(ip("10.0.0.9")));
        // The last entry counts whether or not it is a trusted address.
        assert_eq!(
            client(&t, &["6.6.6.6, 1.2.3.4, 10.1.1.1, 10.2.2.2"]),
            Some(ip("10.2.2.2"))
        );
        assert_eq!(
            client(&list("127.0.0.1"), &["127.0.0.1"]),
            Some(ip("127.0.0.1"))
        );
        // `*` trusts every peer, not every entry.
        let all = list("*");
        assert_eq!(client(&all, &["1.2.3.4, 5.6.7.8"]), Some(ip("5.6.7.8")));
        // Field lines are one list; the last line's last entry is the hop.
        assert_eq!(
            client(&all, &["1.1.1.1", "2.2.2.2, 3.3.3.3"]),
            Some(ip("3.3.3.3"))
        );
        assert_eq!(client(&t, &["1.2.3.4", " , "]), Some(ip("1.2.3.4")));
        // Same forms as further back.
        assert_eq!(
            client(&t, &["1.2.3.4, ::ffff:127.0.0.1"]),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            client(&t, &["1.2.3.4, [2001:db8::1]:443"]),
            Some(ip("2001:db8::1"))
        );
    }

    #[test]
    fn xff_hops_bound_the_walk() {
        let t = list("127.0.0.1,10.0.0.0/8");
        let chain = ["6.6.6.6, 1.2.3.4, 10.1.1.1, 10.2.2.2"];
        assert_eq!(walk(&t, 1, &chain), Some(ip("10.2.2.2")));
        assert_eq!(walk(&t, 2, &chain), Some(ip("10.1.1.1")));
        assert_eq!(walk(&t, 3, &chain), Some(ip("1.2.3.4")));
        // An untrusted entry ends the walk before the count does: what is
        // left of it was written by a client.
        assert_eq!(walk(&t, 4, &chain), Some(ip("1.2.3.4")));
        assert_eq!(walk(&t, 2, &["6.6.6.6, 1.2.3.4"]), Some(ip("1.2.3.4")));
        // ...and so does the count: a trusted client's forgery two hops
        // back stays out of reach of --forwarded-hops 2.
        let two_proxies = ["6.6.6.6, 10.0.0.9, 10.1.1.1"];
        assert_eq!(walk(&t, 2, &two_proxies), Some(ip("10.0.0.9")));
        assert_eq!(walk(&t, 3, &two_proxies), Some(ip("6.6.6.6")));
        // Fewer entries than hops: the leftmost.
        assert_eq!(walk(&t, 5, &["10.1.1.1, 10.2.2.2"]), Some(ip("10.1.1.1")));
        // Counted across field lines, empty elements not counted.
        assert_eq!(
            walk(&t, 2, &["9.9.9.9, 1.2.3.4", " , ", "10.0.0.2,", "10.0.0.3"]),
            Some(ip("10.0.0.2"))
        );
        let all = list("*");
        assert_eq!(
            walk(&all, 2, &["1.1.1.1", "2.2.2.2, 3.3.3.3"]),
            Some(ip("2.2.2.2"))
        );
    }

    #[test]
    fn xff_spoofed_leftmost_is_ignored() {
        // The client forged "6.6.6.6"; nginx appended the real address.
        let t = TrustedProxies::default();
        assert_eq!(walk(&t, FAR, &["6.6.6.6, 1.2.3.4"]), Some(ip("1.2.3.4")));
        // Through two trusted proxies: skip them from the right.
        let t = list("127.0.0.1,10.0.0.0/8");
        assert_eq!(
            walk(&t, FAR, &["6.6.6.6, 1.2.3.4, 10.1.1.1, 10.2.2.2"]),
            Some(ip("1.2.3.4"))
        );
        // A forged entry that claims to be a trusted proxy changes nothing.
        assert_eq!(
            walk(&t, FAR, &["10.9.9.9, 1.2.3.4, 10.1.1.1"]),
            Some(ip("1.2.3.4"))
        );
    }

    #[test]
    fn xff_all_trusted_gives_leftmost() {
        let t = list("127.0.0.1,10.0.0.0/8");
        assert_eq!(walk(&t, FAR, &["10.1.1.1, 10.2.2.2"]), Some(ip("10.1.1.1")));
        assert_eq!(walk(&t, FAR, &["127.0.0.1"]), Some(ip("127.0.0.1")));
        // With `*` every hop is trusted: the leftmost is the client.
        let all = list("*");
        assert_eq!(walk(&all, FAR, &["1.2.3.4, 5.6.7.8"]), Some(ip("1.2.3.4")));
        // ...as far as the count goes.
        let long: Vec<String> = (0..=u32::from(FAR))
            .map(|i| format!("10.0.0.{i}"))
            .collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        assert_eq!(walk(&all, FAR, &long), Some(ip("10.0.0.1")));
    }

    #[test]
    fn xff_multiple_field_lines_in_order() {
        let t = TrustedProxies::default();
        assert_eq!(client(&t, &["6.6.6.6", "1.2.3.4"]), Some(ip("1.2.3.4")));
        let t = list("10.0.0.0/8");
        assert_eq!(
            walk(&t, FAR, &["9.9.9.9, 1.2.3.4", "10.0.0.2", "10.0.0.3"]),
            Some(ip("1.2.3.4"))
        );
        let all = list("*");
        assert_eq!(
            walk(&all, FAR, &["1.1.1.1", "2.2.2.2, 3.3.3.3"]),
            Some(ip("1.1.1.1"))
        );
    }

    #[test]
    fn xff_garbage_is_never_used_and_stops_the_search() {
        let t = TrustedProxies::default();
        for v in [
            "unknown",
            "garbage",
            "1.2.3",
            "1.2.3.4.5",
            "_hidden",
            "\u{e9}",
            "[::1",
            "::1]",
        ] {
            assert_eq!(client(&t, &[v]), None, "{v:?}");
            assert_eq!(walk(&t, FAR, &[v]), None, "{v:?}");
        }
        // Garbage left of the client is never reached.
        assert_eq!(client(&t, &["garbage, 1.2.3.4"]), Some(ip("1.2.3.4")));
        assert_eq!(walk(&t, FAR, &["garbage, 1.2.3.4"]), Some(ip("1.2.3.4")));
        // Garbage right of it: what is left of the garbage is unverifiable.
        assert_eq!(client(&t, &["1.2.3.4, unknown"]), None);
        assert_eq!(walk(&t, FAR, &["1.2.3.4, unknown"]), None);
        // ...but the trusted hops already passed are still known.
        let t = list("10.0.0.0/8");
        assert_eq!(
            walk(&t, FAR, &["1.2.3.4, unknown, 10.0.0.5"]),
            Some(ip("10.0.0.5"))
        );
        // Empty list elements are not garbage.
        assert_eq!(walk(&t, FAR, &[" , 1.2.3.4 ,, "]), Some(ip("1.2.3.4")));
        // Non-UTF-8 bytes.
        for hops in [DEFAULT_HOPS, FAR] {
            assert_eq!(
                client_addr(&t, hops, [&b"1.2.3.4\xff"[..]].into_iter()),
                None
            );
        }
    }

    #[test]
    fn xff_address_forms() {
        let t = TrustedProxies::default();
        assert_eq!(client(&t, &["1.2.3.4:5678"]), Some(ip("1.2.3.4")));
        assert_eq!(client(&t, &["[2001:db8::1]"]), Some(ip("2001:db8::1")));
        assert_eq!(client(&t, &["[2001:db8::1]:443"]), Some(ip("2001:db8::1")));
        assert_eq!(client(&t, &["::ffff:1.2.3.4"]), Some(ip("1.2.3.4")));
        // A v4-mapped loopback is a trusted proxy like 127.0.0.1.
        assert_eq!(
            walk(&t, FAR, &["1.2.3.4, ::ffff:127.0.0.1"]),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(walk(&t, FAR, &["1.2.3.4,\t::1"]), Some(ip("1.2.3.4")));
    }

    #[test]
    fn proto() {
        let s = |lines: &[&str]| scheme(lines.iter().map(|l| l.as_bytes()));
        assert_eq!(s(&["https"]), Some(Scheme::Https));
        assert_eq!(s(&["HTTPS"]), Some(Scheme::Https));
        assert_eq!(s(&["http"]), Some(Scheme::Http));
        assert_eq!(s(&[" https "]), Some(Scheme::Https));
        // Rightmost wins: the client's own claim sits on the left.
        assert_eq!(s(&["http, https"]), Some(Scheme::Https));
        assert_eq!(s(&["https, http"]), Some(Scheme::Http));
        assert_eq!(s(&["https", "http"]), Some(Scheme::Http));
        assert_eq!(s(&["https,"]), Some(Scheme::Https));
        // Anything else is ignored as a whole (not searched further left).
        assert_eq!(s(&["https, ftp"]), None);
        assert_eq!(s(&["wss"]), None);
        assert_eq!(s(&[""]), None);
        assert_eq!(s(&[]), None);
    }
}
