//! Opaque cursors and bounded page sizes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use utoipa::IntoParams;

use super::codes;
use super::problem::ApiError;
use super::state::Limits;

const CURSOR_PREFIX: &str = "c1:";

#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

pub fn encode_cursor(after: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{after}"))
}

/// The position a cursor continues after; no cursor starts at the beginning.
pub fn decode_cursor(cursor: Option<&str>) -> Result<i64, ApiError> {
    // An empty cursor is no cursor: the first page.
    let Some(cursor) = cursor.filter(|cursor| !cursor.is_empty()) else {
        return Ok(0);
    };
    let invalid = || {
        ApiError::new(
            codes::INVALID_CURSOR,
            "cursor is not one this service issued",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let after = text
        .strip_prefix(CURSOR_PREFIX)
        .and_then(|rest| rest.parse::<i64>().ok())
        .ok_or_else(invalid)?;
    if after < 0 {
        return Err(invalid());
    }
    Ok(after)
}

pub fn page_size(limit: Option<usize>, limits: &Limits) -> Result<usize, ApiError> {
    match limit {
        None => Ok(limits.default_page_size),
        Some(limit) if (1..=limits.max_page_size).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::new(
            codes::INVALID_LIMIT,
            format!("limit must be 1 to {}, got {limit}", limits.max_page_size),
        )),
    }
}
