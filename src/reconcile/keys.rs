//! The token Secret's default data keys: the public contract consumers read (renamed per
//! resource by `spec.target.template.rename`, see [`super::template`]).

pub const ACCESS_TOKEN: &str = "accessToken";
pub const VALID_TILL: &str = "validTill";
pub const BASE_URL: &str = "baseUrl";
pub const ENVIRONMENT: &str = "environment";
pub const WORKSPACE: &str = "workspace";
pub const PRODUCTS: &str = "products";
