//! Network names: broker and PLC hosts, ports, and the MQTT topic prefix.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::Validator;

/// Longest DNS name (RFC 1035), without a trailing dot.
const MAX_HOSTNAME: usize = 253;
/// Longest DNS label.
const MAX_LABEL: usize = 63;

/// True for an IPv4 or IPv6 address, or a DNS host name: dot-separated labels of 1–63 letters,
/// digits and '-', not starting or ending with '-' (RFC 1123), 253 characters at most.
pub(super) fn valid_host(host: &str) -> bool {
    if host.parse::<Ipv4Addr>().is_ok() || host.parse::<Ipv6Addr>().is_ok() {
        return true;
    }
    // A name made only of digits and dots would be a mistyped IPv4 address, not a host name.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return false;
    }
    host.len() <= MAX_HOSTNAME
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Why `prefix` cannot start every topic, or `None` when it can: levels separated by '/', none
/// empty, no wildcard ('+', '#') or NUL, and no leading '$' (reserved for broker topics).
pub(super) fn topic_prefix_problem(prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return Some("must not be empty".into());
    }
    if prefix.starts_with('$') {
        return Some(format!(
            "{prefix:?} must not start with '$' (reserved for broker topics)"
        ));
    }
    if prefix.contains(['+', '#', '\0']) {
        return Some(format!(
            "{prefix:?} must not contain the wildcards '+' or '#' (or NUL)"
        ));
    }
    if prefix.split('/').any(str::is_empty) {
        return Some(format!(
            "{prefix:?} has an empty level (a leading, trailing or doubled '/')"
        ));
    }
    None
}

impl Validator<'_> {
    /// Checks a PLC's `host:port` (IPv6 in brackets: `[fd00::1]:502`).
    pub(super) fn plc_address(&mut self, path: &str, address: &str) {
        let problem = match address.rsplit_once(':') {
            None => Some(format!(
                "{address:?} must be host:port, e.g. \"192.168.10.11:502\""
            )),
            Some((host, port)) => {
                let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                    Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
                    None => valid_host(host),
                };
                match port.parse::<u16>() {
                    _ if !host_ok => Some(format!(
                        "{host:?} in {address:?} is not a valid host name or IP address"
                    )),
                    Ok(port) if port > 0 => None,
                    _ => Some(format!(
                        "the port in {address:?} must be between 1 and 65535 (e.g. \"192.168.10.11:502\")"
                    )),
                }
            }
        };
        if let Some(message) = problem {
            self.problem(path, message);
        }
    }

    /// Checks the broker host.
    pub(super) fn broker_host(&mut self, path: &str, host: &str) {
        if host.is_empty() {
            self.problem(path, "must not be empty");
        } else if !valid_host(host) {
            self.problem(
                path,
                format!("{host:?} is not a valid host name or IP address"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_names_or_addresses() {
        for good in [
            "127.0.0.1",
            "::1",
            "fd00::10",
            "localhost",
            "broker.plant-1.example",
            "a1",
        ] {
            assert!(valid_host(good), "{good}");
        }
        let long_label = "a".repeat(64);
        for bad in [
            "",
            "999.1.1.1",
            "10.0.0",
            "my broker",
            "-bad.example",
            "bad-.example",
            "a..b",
            "host.",
            "mqtt://broker",
            "broker:1883",
            long_label.as_str(),
        ] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }

    #[test]
    fn topic_prefixes_without_empty_levels_or_wildcards() {
        for good in ["shopfloor/v1", "a", "plant 1/v2"] {
            assert_eq!(topic_prefix_problem(good), None, "{good}");
        }
        for bad in ["", "a//b", "/a", "a/", "a/+/b", "a/#", "$SYS/x", "a\0b"] {
            assert!(topic_prefix_problem(bad).is_some(), "{bad:?}");
        }
    }
}
