//! Labels and properties shaped like the ones Postfix's SMTP client sends
//! (see `docs/postfix-clients.md`, "What is stored").
//!
//! - Labels are built by `smtp_key_prefix`: a sequence of fields, each
//!   terminated by `\n`; unavailable fields are `*`.
//!   - endpoint label: service, IP address, port, TLS level, SMTPUTF8,
//!     REQUIRETLS;
//!   - destination label: service, request nexthop, TLS level, SMTPUTF8,
//!     REQUIRETLS.
//! - Properties are Postfix "plain" attribute text, `name=value\n` lines:
//!   - endpoint: `tls_level`, `reuse_count`, `endpoint_features`,
//!     `expire_time` (about 70 bytes);
//!   - destination: `destination`, `host_name`, `host_addr`, `host_port`,
//!     `destination_features`.
//!
//! Every endpoint property carries a serial number (as `reuse_count` and in
//! `expire_time`), so that the load generator can tell which saved session
//! a lookup returned.

use std::io::Write;

/// An IP address for endpoint `n` of client `client`: IPv4 for even `n`,
/// IPv6 for odd `n` (both occur in real labels; IPv6 ones are longer).
fn address(client: usize, n: usize) -> String {
    if n % 2 == 0 {
        format!(
            "10.{}.{}.{}",
            client % 250,
            (n / 2 / 250) % 250,
            n / 2 % 250 + 1
        )
    } else {
        format!("2001:db8:{:x}:{:x}::25", client, n / 2)
    }
}

/// Endpoint label `n` of client `client` for TCP port `port`, e.g.
/// `smtp\n10.0.0.1\n25\nmay\n0\n*\n`. (The load generator uses port 25
/// with a daemon it started, and another port per run with a daemon that
/// may still hold sessions of an earlier run.)
pub fn endp_label(client: usize, n: usize, port: u16) -> Vec<u8> {
    format!("smtp\n{}\n{port}\nmay\n0\n*\n", address(client, n)).into_bytes()
}

/// An endpoint label that is never saved (for the `miss` workload).
pub fn miss_label(client: usize, n: usize, port: u16) -> Vec<u8> {
    format!(
        "smtp\n198.51.{}.{}\n{port}\nmay\n0\n*\n",
        client % 250,
        n % 250 + 1
    )
    .into_bytes()
}

/// Destination label `n` of client `client`, e.g.
/// `smtp\nexample-0-1.com:25\nmay\n0\n*\n` (the request nexthop with its
/// port).
pub fn dest_label(client: usize, n: usize, port: u16) -> Vec<u8> {
    format!("smtp\nexample-{client}-{n}.com:{port}\nmay\n0\n*\n").into_bytes()
}

/// Destination properties for destination `n` of client `client` bound to
/// endpoint `n`.
pub fn dest_prop(client: usize, n: usize) -> Vec<u8> {
    format!(
        "destination=example-{client}-{n}.com\nhost_name=mx{n}.example-{client}-{n}.com\n\
         host_addr={}\nhost_port=25\ndestination_features=0\n",
        address(client, n)
    )
    .into_bytes()
}

/// Endpoint properties of the session with serial number `serial`, written
/// into `out` (cleared first).
pub fn endp_prop(out: &mut Vec<u8>, serial: u64) {
    out.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "tls_level=may\nreuse_count={serial}\nendpoint_features=0\nexpire_time={}\n",
        1_700_000_300 + serial % 1_000_000
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(endp_label(0, 0, 25), b"smtp\n10.0.0.1\n25\nmay\n0\n*\n");
        assert!(endp_label(3, 1, 25).starts_with(b"smtp\n2001:db8:3:0::25\n"));
        assert_ne!(endp_label(1, 2, 25), endp_label(1, 4, 25));
        assert_ne!(endp_label(1, 2, 25), endp_label(2, 2, 25));
        assert_ne!(endp_label(1, 2, 25), endp_label(1, 2, 26));
        let mut p = Vec::new();
        endp_prop(&mut p, 7);
        assert_eq!(
            p,
            b"tls_level=may\nreuse_count=7\nendpoint_features=0\nexpire_time=1700000307\n"
        );
        assert!(dest_prop(1, 2).ends_with(b"destination_features=0\n"));
        for l in [
            endp_label(9, 9, 25),
            miss_label(9, 9, 25),
            dest_label(9, 9, 25),
        ] {
            assert!(!l.contains(&0));
            assert!(l.ends_with(b"\n"));
        }
    }
}
