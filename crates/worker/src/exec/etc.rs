//! The generated `/etc/hosts` and `/etc/resolv.conf` a step sees (bind-mounted
//! read-only, as BuildKit does).

use super::NetworkMode;

/// `/etc/hosts` for a step named `hostname`, with the `extra` lines (`--add-host`)
/// after the standard ones.
pub fn hosts_file(hostname: &str, extra: &[(String, std::net::IpAddr)]) -> String {
    let mut s = format!(
        "127.0.0.1\tlocalhost {hostname}\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n"
    );
    for (name, ip) in extra {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    s
}

/// Nameservers used when filtering leaves none (Docker's and BuildKit's defaults).
const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// `/etc/resolv.conf` for a step, from the host's.
///
/// With `--network=host` the host's file is used as it is. Otherwise loopback
/// nameservers (`127.0.0.0/8`, `::1`, such as systemd-resolved's `127.0.0.53`) are
/// dropped, as BuildKit does, because they are not reachable from a separate network
/// namespace; when none is left, public fallback nameservers are added.
pub fn resolv_conf(host: &str, network: NetworkMode) -> String {
    if network == NetworkMode::Host {
        return host.to_owned();
    }
    let mut out = String::new();
    let mut kept = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            kept += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if kept == 0 {
        for ns in FALLBACK_NAMESERVERS {
            out.push_str(&format!("nameserver {ns}\n"));
        }
    }
    out
}

/// `/etc/resolv.conf` naming only `nameserver` (a user-mode network's forwarder),
/// with the host's search domains and options.
pub fn resolv_conf_with(host: &str, nameserver: &str) -> String {
    let mut out: String = host
        .lines()
        .filter(|l| l.split_whitespace().next() != Some("nameserver"))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("nameserver {nameserver}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_nameservers_are_replaced() {
        let host = "search example.com\nnameserver 127.0.0.53\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, NetworkMode::None),
            "search example.com\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(resolv_conf(host, NetworkMode::Host), host);
        let mixed = "nameserver 127.0.0.1\nnameserver 10.0.0.2\nnameserver ::1\n";
        assert_eq!(
            resolv_conf(mixed, NetworkMode::Default),
            "nameserver 10.0.0.2\n"
        );
    }

    #[test]
    fn a_user_mode_network_names_its_own_nameserver() {
        let host = "search example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n";
        assert_eq!(
            resolv_conf_with(host, "10.0.2.3"),
            "search example.com\nnameserver 10.0.2.3\n"
        );
    }

    #[test]
    fn hosts_names_the_step() {
        assert!(hosts_file("box", &[]).starts_with("127.0.0.1\tlocalhost box\n"));
        let extra = [("db".to_owned(), "10.1.2.3".parse().unwrap())];
        assert!(hosts_file("box", &extra).ends_with("ip6-loopback\n10.1.2.3\tdb\n"));
    }
}
