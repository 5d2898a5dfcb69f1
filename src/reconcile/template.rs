//! `spec.target.template`: extra keys of the token Secret built from the token and its
//! metadata, and new names for the default keys. A pure module: templates substitute the
//! values of the six default keys and nothing else; there are no functions besides JSON
//! quoting, no conditionals, loops or includes, and nothing that can read another object.
//!
//! Syntax (whitespace inside the braces is optional):
//! - `{{ .accessToken }}`, `{{ .validTill }}`, `{{ .baseUrl }}`, `{{ .environment }}`,
//!   `{{ .workspace }}`, `{{ .products }}`: the value of that default key, as is;
//! - `{{ json .accessToken }}` (any of the six): the value as a JSON string, quotes included.
//!
//! Everything else is copied as written. `{{` always opens a placeholder: one that is not
//! closed by `}}`, or that names anything else, makes the spec invalid (InvalidSpec).

use std::collections::BTreeMap;

use crate::resource::SecretTemplate;

use super::keys;

/// The default keys of the token Secret, which are also the values templates may use.
pub const DEFAULT_KEYS: [&str; 6] = [
    keys::ACCESS_TOKEN,
    keys::VALID_TILL,
    keys::BASE_URL,
    keys::ENVIRONMENT,
    keys::WORKSPACE,
    keys::PRODUCTS,
];

/// Most extra keys a template may add.
pub const MAX_TEMPLATE_KEYS: usize = 16;
/// Longest template text, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 4096;
/// Most bytes all rendered templates together may hold, rendered with the longest token the
/// operator accepts (a Secret holds at most 1 MiB).
pub const MAX_RENDERED_BYTES: usize = 256 * 1024;
/// Longest Secret key name.
pub const MAX_KEY_CHARS: usize = 253;

/// One piece of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// The value of a default key, as is.
    Value(&'static str),
    /// The value of a default key as a JSON string.
    Json(&'static str),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

/// Parses template text; `Err` says what is wrong and where (byte offset).
pub fn parse(text: &str) -> Result<Template, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        let inner_start = open + 2;
        let Some(close) = rest[inner_start..].find("}}") else {
            return Err(format!(
                "unclosed `{{{{` at byte {} (every `{{{{` opens a placeholder closed by `}}}}`)",
                offset + open
            ));
        };
        let inner = &rest[inner_start..inner_start + close];
        pieces.push(placeholder(inner).map_err(|why| format!("{why} at byte {}", offset + open))?);
        let consumed = inner_start + close + 2;
        rest = &rest[consumed..];
        offset += consumed;
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(Template(pieces))
}

fn placeholder(inner: &str) -> Result<Piece, String> {
    let words: Vec<&str> = inner.split_whitespace().collect();
    let field = |word: &str| {
        word.strip_prefix('.')
            .and_then(|name| DEFAULT_KEYS.iter().copied().find(|k| *k == name))
    };
    let unknown = || {
        format!(
            "unknown placeholder `{{{{{inner}}}}}` (known: {}, each also as `{{{{ json .name }}}}`)",
            DEFAULT_KEYS
                .iter()
                .map(|k| format!("`{{{{ .{k} }}}}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match words.as_slice() {
        [name] => field(name).map(Piece::Value).ok_or_else(unknown),
        ["json", name] => field(name).map(Piece::Json).ok_or_else(unknown),
        _ => Err(unknown()),
    }
}

impl Template {
    /// The text with every placeholder replaced by its value from `values` (the default
    /// keys; a missing one is empty).
    pub fn render(&self, values: &BTreeMap<String, String>) -> String {
        let value = |key: &str| values.get(key).map(String::as_str).unwrap_or_default();
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Value(key) => out.push_str(value(key)),
                Piece::Json(key) => out.push_str(
                    &serde_json::to_string(value(key)).expect("a string always serializes"),
                ),
            }
        }
        out
    }
}

/// Whether `name` can be a Secret data key (see [`crate::resource::SECRET_KEY_PATTERN`]; the
/// API server also refuses `.` and names starting with `..`).
pub fn is_secret_key(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_KEY_CHARS
        && name != "."
        && !name.starts_with("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// The name a default key is written under.
pub fn renamed<'a>(template: Option<&'a SecretTemplate>, key: &'a str) -> &'a str {
    template
        .and_then(|t| t.rename.get(key))
        .map(String::as_str)
        .unwrap_or(key)
}

/// Every rule the schema cannot check on its own (and those it does, again, for a CRD
/// applied without its validation rules): key names, sizes, collisions, and that every
/// template parses. `values` are the default keys' values with the longest token accepted,
/// to bound the rendered size.
pub fn check(template: &SecretTemplate, values: &BTreeMap<String, String>) -> Result<(), String> {
    if template.keys.len() > MAX_TEMPLATE_KEYS {
        return Err(format!(
            "target.template.keys has {} keys; at most {MAX_TEMPLATE_KEYS} are allowed",
            template.keys.len()
        ));
    }
    let mut written: BTreeMap<&str, String> = BTreeMap::new();
    for (from, to) in &template.rename {
        if !DEFAULT_KEYS.contains(&from.as_str()) {
            return Err(format!(
                "target.template.rename: {from} is not a default key (only {} can be renamed)",
                DEFAULT_KEYS.join(", ")
            ));
        }
        if !is_secret_key(to) {
            return Err(format!(
                "target.template.rename.{from}: {to:?} is not a valid Secret key (letters, digits, `-`, `_`, `.`; at most {MAX_KEY_CHARS}; not `.` nor starting with `..`)"
            ));
        }
        if to != from && DEFAULT_KEYS.contains(&to.as_str()) {
            return Err(format!(
                "target.template.rename.{from}: {to} is the name of a default key; pick a name of its own"
            ));
        }
    }
    for key in DEFAULT_KEYS {
        let name = renamed(Some(template), key);
        if let Some(other) = written.insert(name, format!("the default key {key}")) {
            return Err(format!(
                "target.template.rename: {key} and {} would both be written as {name}",
                other.trim_start_matches("the default key ")
            ));
        }
    }
    let mut rendered = 0;
    for (name, text) in &template.keys {
        if !is_secret_key(name) {
            return Err(format!(
                "target.template.keys: {name:?} is not a valid Secret key (letters, digits, `-`, `_`, `.`; at most {MAX_KEY_CHARS}; not `.` nor starting with `..`)"
            ));
        }
        if DEFAULT_KEYS.contains(&name.as_str()) {
            return Err(format!(
                "target.template.keys.{name}: {name} is a default key; rename it with target.template.rename instead"
            ));
        }
        if let Some(other) = written.get(name.as_str()) {
            return Err(format!(
                "target.template.keys.{name}: {other} is already renamed to {name}"
            ));
        }
        let chars = text.chars().count();
        if chars > MAX_TEMPLATE_CHARS {
            return Err(format!(
                "target.template.keys.{name}: {chars} characters; at most {MAX_TEMPLATE_CHARS} are allowed"
            ));
        }
        let parsed = parse(text).map_err(|why| format!("target.template.keys.{name}: {why}"))?;
        rendered += parsed.render(values).len();
    }
    if rendered > MAX_RENDERED_BYTES {
        return Err(format!(
            "target.template.keys would render to {rendered} bytes with the longest token accepted; at most {MAX_RENDERED_BYTES} are allowed"
        ));
    }
    Ok(())
}

/// The Secret's data: `defaults` (the six default keys, under their default names) renamed
/// as the template says, plus its rendered keys. A template that does not parse (never
/// written: [`check`] refuses the spec first) is left out.
pub fn shape(
    template: Option<&SecretTemplate>,
    defaults: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let Some(template) = template else {
        return defaults;
    };
    let mut data: BTreeMap<String, String> = defaults
        .iter()
        .map(|(key, value)| (renamed(Some(template), key).to_string(), value.clone()))
        .collect();
    for (name, text) in &template.keys {
        if let Ok(parsed) = parse(text) {
            data.insert(name.clone(), parsed.render(&defaults));
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<String, String> {
        [
            (keys::ACCESS_TOKEN, "tok-123"),
            (keys::VALID_TILL, "2026-11-25T22:00:00Z"),
            (keys::BASE_URL, "https://api-sandbox.clear.in"),
            (keys::ENVIRONMENT, "sandbox"),
            (keys::WORKSPACE, "ws-1"),
            (keys::PRODUCTS, "GST,E_INVOICE"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn template(keys: &[(&str, &str)], rename: &[(&str, &str)]) -> SecretTemplate {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        SecretTemplate {
            keys: map(keys),
            rename: map(rename),
        }
    }

    #[test]
    fn templates_render_as_documented() {
        let cases = [
            (
                "header line",
                "x-cleartax-auth-token: {{ .accessToken }}",
                "x-cleartax-auth-token: tok-123",
            ),
            (
                ".env document",
                "CLEAR_TOKEN={{ .accessToken }}\nCLEAR_BASE_URL={{ .baseUrl }}\n",
                "CLEAR_TOKEN=tok-123\nCLEAR_BASE_URL=https://api-sandbox.clear.in\n",
            ),
            (
                "JSON document",
                r#"{"token": {{ json .accessToken }}, "validTill": {{ json .validTill }}}"#,
                r#"{"token": "tok-123", "validTill": "2026-11-25T22:00:00Z"}"#,
            ),
            (
                "no whitespace inside the braces",
                "{{.workspace}}/{{json .environment}}",
                r#"ws-1/"sandbox""#,
            ),
            (
                "extra whitespace and tabs",
                "{{   .products\t}}",
                "GST,E_INVOICE",
            ),
            (
                "plain text",
                "no placeholders }} at all",
                "no placeholders }} at all",
            ),
            ("empty", "", ""),
            (
                "nested JSON braces",
                r#"{"a": {"b": {{json .accessToken}}}}"#,
                r#"{"a": {"b": "tok-123"}}"#,
            ),
            (
                "every value",
                "{{.accessToken}} {{.validTill}} {{.baseUrl}} {{.environment}} {{.workspace}} {{.products}}",
                "tok-123 2026-11-25T22:00:00Z https://api-sandbox.clear.in sandbox ws-1 GST,E_INVOICE",
            ),
            ("unicode text around", "é{{.workspace}}ü", "éws-1ü"),
        ];
        for (name, text, expected) in cases {
            let parsed = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed.render(&values()), expected, "{name}");
        }
    }

    #[test]
    fn json_quoting_escapes_what_json_needs() {
        let mut values = values();
        values.insert(keys::WORKSPACE.into(), "a\"b\\c\nd".into());
        let rendered = parse("{{ json .workspace }}").unwrap().render(&values);
        assert_eq!(rendered, r#""a\"b\\c\nd""#);
        let back: String = serde_json::from_str(&rendered).unwrap();
        assert_eq!(back, "a\"b\\c\nd");
    }

    #[test]
    fn bad_templates_are_refused_with_a_reason() {
        let cases = [
            ("unclosed", "{{ .accessToken", "unclosed"),
            ("unclosed after a good one", "{{.workspace}} {{", "byte 15"),
            ("unknown name", "{{ .token }}", "unknown placeholder"),
            ("no dot", "{{ accessToken }}", "unknown placeholder"),
            ("empty", "{{}}", "unknown placeholder"),
            (
                "a function",
                "{{ upper .accessToken }}",
                "unknown placeholder",
            ),
            ("json without a name", "{{ json }}", "unknown placeholder"),
            (
                "json of nothing known",
                "{{ json .secret }}",
                "unknown placeholder",
            ),
            (
                "two names",
                "{{ .workspace .products }}",
                "unknown placeholder",
            ),
            (
                "Go template action",
                "{{ range .x }}",
                "unknown placeholder",
            ),
            (
                "reading another object",
                r#"{{ lookup "v1" "Secret" "ns" "x" }}"#,
                "unknown placeholder",
            ),
            ("case matters", "{{ .AccessToken }}", "unknown placeholder"),
        ];
        for (name, text, expected) in cases {
            let err = parse(text).expect_err(name);
            assert!(err.contains(expected), "{name}: {err}");
        }
    }

    #[test]
    fn checks_refuse_collisions_bad_names_and_sizes() {
        let ok = [
            ("none", template(&[], &[])),
            (
                "the three examples",
                template(
                    &[
                        ("header", "x-cleartax-auth-token: {{ .accessToken }}"),
                        (".env", "CLEAR_TOKEN={{ .accessToken }}"),
                        ("token.json", r#"{"token": {{ json .accessToken }}}"#),
                    ],
                    &[],
                ),
            ),
            (
                "renames",
                template(&[], &[("accessToken", "token"), ("validTill", "expires")]),
            ),
            ("identity rename", template(&[], &[("baseUrl", "baseUrl")])),
            (
                "a template key beside a renamed token",
                template(
                    &[("header", "{{.accessToken}}")],
                    &[("accessToken", "TOKEN")],
                ),
            ),
        ];
        for (name, t) in ok {
            assert_eq!(check(&t, &values()), Ok(()), "{name}");
        }
        let long = "x".repeat(MAX_TEMPLATE_CHARS + 1);
        let many: Vec<(String, String)> = (0..=MAX_TEMPLATE_KEYS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        let many_refs: Vec<(&str, &str)> =
            many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let huge = "{{.accessToken}}".repeat(MAX_TEMPLATE_CHARS / 16);
        let mut big_values = values();
        big_values.insert(keys::ACCESS_TOKEN.into(), "x".repeat(4096));
        let refused = [
            (
                "template key is a default key",
                template(&[("accessToken", "{{.accessToken}}")], &[]),
                &values(),
                "is a default key",
            ),
            (
                "template key is a default key renamed away",
                template(&[("validTill", "x")], &[("validTill", "expires")]),
                &values(),
                "is a default key",
            ),
            (
                "template key collides with a renamed key",
                template(&[("token", "x")], &[("accessToken", "token")]),
                &values(),
                "already renamed to token",
            ),
            (
                "two defaults renamed to one key",
                template(&[], &[("accessToken", "t"), ("validTill", "t")]),
                &values(),
                "both be written as t",
            ),
            (
                "renamed to another default key's name",
                template(&[], &[("validTill", "accessToken")]),
                &values(),
                "name of a default key",
            ),
            (
                "renaming a key that is not a default key",
                template(&[], &[("token", "t")]),
                &values(),
                "not a default key",
            ),
            (
                "renamed to an invalid key",
                template(&[], &[("accessToken", "a b")]),
                &values(),
                "not a valid Secret key",
            ),
            (
                "template key invalid",
                template(&[("a/b", "x")], &[]),
                &values(),
                "not a valid Secret key",
            ),
            (
                "template key `..`",
                template(&[("..env", "x")], &[]),
                &values(),
                "not a valid Secret key",
            ),
            (
                "renamed to `.`",
                template(&[], &[("workspace", ".")]),
                &values(),
                "not a valid Secret key",
            ),
            (
                "template too long",
                template(&[("k", long.as_str())], &[]),
                &values(),
                "characters",
            ),
            (
                "too many keys",
                template(&many_refs, &[]),
                &values(),
                "at most 16",
            ),
            (
                "unknown placeholder",
                template(&[("k", "{{ .secret }}")], &[]),
                &values(),
                "target.template.keys.k: unknown placeholder",
            ),
            (
                "unclosed braces",
                template(&[("k", "x-cleartax-auth-token: {{ .accessToken")], &[]),
                &values(),
                "unclosed",
            ),
            (
                "renders too large with the longest token",
                template(&[("a", huge.as_str()), ("b", huge.as_str())], &[]),
                &big_values,
                "would render to",
            ),
        ];
        for (name, t, values, expected) in refused {
            let err = check(&t, values).expect_err(name);
            assert!(err.contains(expected), "{name}: {err}");
        }
    }

    #[test]
    fn shape_renames_and_adds_rendered_keys() {
        let t = template(
            &[("header", "x-cleartax-auth-token: {{ .accessToken }}")],
            &[("accessToken", "token"), ("baseUrl", "CLEAR_BASE_URL")],
        );
        let data = shape(Some(&t), values());
        assert_eq!(data["token"], "tok-123");
        assert_eq!(data["CLEAR_BASE_URL"], "https://api-sandbox.clear.in");
        assert_eq!(data["header"], "x-cleartax-auth-token: tok-123");
        assert!(!data.contains_key("accessToken") && !data.contains_key("baseUrl"));
        assert_eq!(data.len(), 7);
        assert_eq!(shape(None, values()), values());
        assert_eq!(renamed(Some(&t), keys::ACCESS_TOKEN), "token");
        assert_eq!(renamed(None, keys::ACCESS_TOKEN), "accessToken");
    }
}
