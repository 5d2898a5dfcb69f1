//! HTTP-dates (RFC 9110 §5.6.7) as Clear may send them in `Date` and `Retry-After`: the
//! IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT` and, as recipients must also accept, the
//! obsolete RFC 850 and asctime forms.

use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderName};

/// The instant an HTTP-date names; `None` for anything else (including a date whose
/// weekday does not match, or one before 1970).
pub fn parse_http_date(text: &str) -> Option<Timestamp> {
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    Timestamp::try_from(time).ok()
}

/// The single value of header `name` as text; `None` when it is absent, not visible
/// ASCII, or sent several times with different values (which one to believe would be a
/// guess).
pub(crate) fn single_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.any(|other| other != first) {
        return None;
    }
    first.to_str().ok()
}

#[cfg(test)]
mod tests {
    use reqwest::header::{DATE, HeaderValue};

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn all_three_http_date_forms_are_read() {
        let want = ts("1994-11-06T08:49:37Z");
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "  Sun, 06 Nov 1994 08:49:37 GMT ",
        ] {
            assert_eq!(parse_http_date(text), Some(want), "{text:?}");
        }
        assert_eq!(
            parse_http_date("Thu, 26 Nov 2026 00:00:00 GMT"),
            Some(ts("2026-11-26T00:00:00Z"))
        );
    }

    #[test]
    fn anything_else_is_not_a_date() {
        for text in [
            "",
            "120",
            "tomorrow",
            "2026-11-26T00:00:00Z",
            // Wrong weekday: 2026-11-26 is a Thursday.
            "Fri, 26 Nov 2026 00:00:00 GMT",
            "Thu, 26 Nov 2026 00:00:00 PST",
            "Thu, 31 Nov 2026 00:00:00 GMT",
            "Thu, 26 Nov 2026 24:00:00 GMT",
        ] {
            assert_eq!(parse_http_date(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_header_sent_twice_with_different_values_is_not_believed() {
        let mut headers = HeaderMap::new();
        assert_eq!(single_header(&headers, &DATE), None);
        headers.append(DATE, HeaderValue::from_static("a"));
        assert_eq!(single_header(&headers, &DATE), Some("a"));
        headers.append(DATE, HeaderValue::from_static("a"));
        assert_eq!(single_header(&headers, &DATE), Some("a"));
        headers.append(DATE, HeaderValue::from_static("b"));
        assert_eq!(single_header(&headers, &DATE), None);
        let mut headers = HeaderMap::new();
        headers.insert(DATE, HeaderValue::from_bytes(b"caf\xe9").unwrap());
        assert_eq!(single_header(&headers, &DATE), None);
    }
}
