//! The string `format`s kube-apiserver checks on custom resources that are cheap to
//! check here; other formats are accepted unchecked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine;

/// `Some(valid)` for a format this crate checks, `None` for one it does not.
pub(crate) fn is_valid(format: &str, s: &str) -> Option<bool> {
    Some(match format {
        "date-time" | "datetime" => is_date_time(s),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "byte" => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        "uuid" => is_uuid(s),
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(s),
        "hostname" => is_hostname(s),
        _ => return None,
    })
}

/// RFC 3339, plus the zone-less ISO 8601 forms kube-openapi's `strfmt` also accepts.
fn is_date_time(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").is_ok()
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(prefix) = prefix.parse::<u8>() else {
        return false;
    };
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => prefix <= 32,
        Ok(IpAddr::V6(_)) => prefix <= 128,
        Err(_) => false,
    }
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_formats_accept_good_and_refuse_bad_strings() {
        assert_eq!(is_valid("date-time", "2026-11-25T16:00:00Z"), Some(true));
        assert_eq!(is_valid("date-time", "yesterday"), Some(false));
        assert_eq!(is_valid("date", "2026-02-30"), Some(false));
        assert_eq!(is_valid("byte", "aGVsbG8="), Some(true));
        assert_eq!(is_valid("byte", "not base64!"), Some(false));
        assert_eq!(
            is_valid("uuid", "550e8400-e29b-41d4-a716-446655440000"),
            Some(true)
        );
        assert_eq!(is_valid("ipv4", "10.0.0.300"), Some(false));
        assert_eq!(is_valid("cidr", "10.0.0.0/8"), Some(true));
        assert_eq!(is_valid("hostname", "-bad.example"), Some(false));
        assert_eq!(is_valid("password", "anything"), None);
    }
}
