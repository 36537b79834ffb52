//! Host names and URLs the service writes into `Location` headers and
//! `meta.location`: only what is checked here is ever written.

/// Whether `host` is a host name or address with an optional port: what a
/// `Host` or `X-Forwarded-Host` header may hold before it is written into
/// `Location` headers.
pub fn is_host(host: &str) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) if addr.parse::<std::net::Ipv6Addr>().is_ok() => (None, rest.strip_prefix(':')),
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        },
    };
    let name_ok = name.is_none_or(|n| {
        !n.is_empty()
            && n.len() <= 253
            && n.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    name_ok && port_ok
}

/// Check a configured public URL (`https://scim.example.com`, optionally
/// with a path prefix): only http and https, a host name, and a plain path,
/// since it is written into every `Location` header. Returns it without a
/// trailing slash.
pub fn public_origin(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    let bad =
        || format!("the public URL '{url}' must be http:// or https:// followed by a host name and an optional path");
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(bad());
    }
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let path_ok = path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
    if is_host(host) && path_ok { Ok(url.to_string()) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_names_or_addresses_with_a_port() {
        for ok in ["localhost", "localhost:8080", "scim.example.com", "127.0.0.1:9", "[::1]:8080", "[::1]", "a-b.c"] {
            assert!(is_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.example/path",
            "javascript://x",
            "a b",
            "a:99999",
            "a:",
            "[zz]:1",
            "-a.com",
            "a..com",
            "x\"y",
            "a@b",
            "host:80:80",
        ] {
            assert!(!is_host(bad), "{bad}");
        }
    }
}
