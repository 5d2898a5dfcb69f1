//! The Clear side of the operator: confidential value wrappers, base URL resolution, the
//! token client and its typed errors.

mod allowlist;
mod client;
mod endpoint;
mod error;
mod http_date;
mod rate_limit;
mod response;
mod secret;

pub use allowlist::{ALLOWED_BASE_URL_FLAG, AllowedBaseUrls, BaseUrlNotAllowed};
pub use client::{
    AnswerClass, CLIENT_SECRET_HEADER, ClearClient, ClearClientConfig, DEFAULT_USER_AGENT,
    ProbeAnswer, ProbeOutcome, ProbeResult, ProxyConfig, UnreachableKind, header_problem,
    location_summary,
};
pub use endpoint::{
    BaseUrl, BaseUrlError, TOKEN_PATH, documented_base_url, parse_base_url, resolve_base_url,
};
pub use error::{
    ClearError, FailureClass, MAX_ERROR_MESSAGE_CHARS, REDACTED_MESSAGE, TOKEN_LIKE_RUN,
    next_utc_midnight, sanitize_error_message,
};
pub use rate_limit::{
    MAX_RETRY_AFTER_PAST_RESET, MIN_RETRY_AFTER, QUOTA_JITTER_MAX, quota_jitter,
    quota_reset_with_jitter,
};
pub use response::{
    ErrorDetails, IssuedToken, MAX_ACCEPTED_TOKEN_CHARS, MAX_TOKEN_CHARS, parse_error_body,
    parse_token_body, parse_valid_till,
};
pub use secret::{AccessToken, ClientSecret, FINGERPRINT_HEX_CHARS, REDACTED, fingerprint_of};
