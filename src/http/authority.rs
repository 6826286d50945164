//! The host a request names: a Host field value, or the host and port of an
//! absolute-form or authority-form target. RFC 9112 3.2 says a server MUST
//! answer 400 to an invalid Host, and apps build URLs and make security
//! decisions from it, so only `uri-host [ ":" port ]` (RFC 3986 3.2.2-3.2.3)
//! passes: a reg-name or IPv4 address, or a bracketed IPv6 (or IPvFuture)
//! literal, and a port of digits no larger than 65535. Userinfo, paths,
//! spaces and lists are not part of a Host.

use std::net::Ipv6Addr;

use memchr::memchr;

/// A Host field value: empty (RFC 9112 3.2: a client sends an empty Host
/// when the target has no authority) or `host [ ":" port ]`.
pub(crate) fn is_valid_host_field(value: &[u8]) -> bool {
    value.is_empty() || is_host_port(value)
}

/// `host [ ":" port ]` with a non-empty host.
pub(crate) fn is_host_port(value: &[u8]) -> bool {
    if value.first() == Some(&b'[') {
        return match split_port(value) {
            Some((host, port)) => is_host(host) && port.is_none_or(is_port),
            None => false,
        };
    }
    // The common case (a name or IPv4 address, maybe a port) in one pass
    // over a byte table: this runs for every request.
    for (i, &b) in value.iter().enumerate() {
        if REG_NAME[usize::from(b)] {
            continue;
        }
        match b {
            b':' => return i > 0 && is_port(value.get(i + 1..).unwrap_or_default()),
            b'%' if is_pct_encoded(value.get(i..).unwrap_or_default()) => {}
            _ => return false,
        }
    }
    !value.is_empty()
}

/// `host ":" port` with a non-empty port: a CONNECT target (RFC 9112
/// 3.2.3).
pub(crate) fn is_host_and_port(value: &[u8]) -> bool {
    match split_port(value) {
        Some((host, Some(port))) => !port.is_empty() && is_host(host) && is_port(port),
        _ => false,
    }
}

/// Splits off `":" port` after the host; None when a bracketed literal is
/// unterminated or followed by something other than a port.
fn split_port(value: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    if value.first() == Some(&b'[') {
        let close = memchr(b']', value)?;
        let (host, rest) = value.split_at(close + 1);
        return match rest.split_first() {
            None => Some((host, None)),
            Some((b':', port)) => Some((host, Some(port))),
            Some(_) => None,
        };
    }
    Some(match memchr(b':', value) {
        Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
        None => (value, None),
    })
}

/// A non-empty reg-name (which covers IPv4 addresses) or IP-literal.
fn is_host(host: &[u8]) -> bool {
    match host {
        [] => false,
        [b'[', inner @ .., b']'] => is_ipv6(inner) || is_ipv_future(inner),
        _ => is_reg_name(host),
    }
}

/// `port = *DIGIT` (RFC 3986 allows it empty), at most 65535.
fn is_port(port: &[u8]) -> bool {
    let mut value: u32 = 0;
    for &b in port {
        if !b.is_ascii_digit() {
            return false;
        }
        value = value * 10 + u32::from(b - b'0');
        if value > u32::from(u16::MAX) {
            return false;
        }
    }
    true
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`.
fn is_reg_name(name: &[u8]) -> bool {
    name.iter().enumerate().all(|(i, &b)| {
        REG_NAME[usize::from(b)] || (b == b'%' && is_pct_encoded(name.get(i..).unwrap_or_default()))
    })
}

/// `%` followed by two hex digits, at the start of `s`.
fn is_pct_encoded(s: &[u8]) -> bool {
    matches!(s, [b'%', h, l, ..] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit())
}

/// The bytes a reg-name may hold as they are: unreserved and sub-delims
/// (`%` must start a pct-encoded triple, checked apart).
static REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = is_unreserved(b) || is_sub_delim(b);
        i += 1;
    }
    table
};

fn is_ipv6(inner: &[u8]) -> bool {
    std::str::from_utf8(inner).is_ok_and(|s| s.parse::<Ipv6Addr>().is_ok())
}

/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn is_ipv_future(inner: &[u8]) -> bool {
    let Some(rest) = inner.strip_prefix(b"v").or(inner.strip_prefix(b"V")) else {
        return false;
    };
    let Some(dot) = memchr(b'.', rest) else {
        return false;
    };
    let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
    !version.is_empty()
        && version.iter().all(u8::is_ascii_hexdigit)
        && !tail.is_empty()
        && tail
            .iter()
            .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':')
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_hosts() {
        for v in [
            "",
            "localhost",
            "localhost:8000",
            "example.com:",
            "127.0.0.1",
            "127.0.0.1:65535",
            "h:0",
            "h:00080",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]:443",
            "[v1.fe80::a+en1]",
            "0.0.0.0=5000",
            "xn--bcher-kva.example",
            "my_host~1",
            "a%41b",
        ] {
            assert!(is_valid_host_field(v.as_bytes()), "{v:?} should pass");
        }
    }

    #[test]
    fn invalid_hosts() {
        for v in [
            "user@localhost",
            "localhost/path",
            "a b",
            "localhost, other",
            "[::1",
            "::1",
            "[::1]x",
            "[::1]:x",
            "[zz::1]",
            "[]",
            "h:abc",
            "h:99999",
            "h:65536",
            "h:-1",
            "h?x",
            "h#x",
            ":80",
            "a%4",
            "a%zz",
            "h:80:81",
            "[v.x]",
            "[v1.]",
            "\"h\"",
            "h\\x",
        ] {
            assert!(!is_valid_host_field(v.as_bytes()), "{v:?} should fail");
        }
    }

    #[test]
    fn authority_form_needs_a_port() {
        assert!(is_host_and_port(b"example.com:443"));
        assert!(is_host_and_port(b"[::1]:443"));
        for v in ["example.com", "example.com:", "[::1]", ":443", "a@b:443"] {
            assert!(!is_host_and_port(v.as_bytes()), "{v:?} should fail");
        }
    }
}
