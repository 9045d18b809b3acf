//! The path parameters routes share, described once for the OpenAPI
//! document (`params(VolumeName)` instead of the same tuple in every
//! route). The structs are never built: axum extracts the values; these
//! only carry their descriptions and constraints.
#![allow(dead_code)]

/// `{name}` of a volume route.
#[derive(utoipa::IntoParams)]
#[into_params(names("name"), parameter_in = Path)]
pub(crate) struct VolumeName(
    /// Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`
    #[param(max_length = 255, pattern = "^[^/\\x00]+$")]
    String,
);

/// `{name}` of a dict route.
#[derive(utoipa::IntoParams)]
#[into_params(names("name"), parameter_in = Path)]
pub(crate) struct DictName(
    /// Dict name: ASCII letters, digits, `.`, `_`, `-`
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    String,
);

/// `{key}` of a dict entry route.
#[derive(utoipa::IntoParams)]
#[into_params(names("key"), parameter_in = Path)]
pub(crate) struct DictKey(
    /// Key
    String,
);

/// `{app}` and `{function}` of a function route.
#[derive(utoipa::IntoParams)]
#[into_params(names("app", "function"), parameter_in = Path)]
pub(crate) struct FunctionPath(
    /// App name
    String,
    /// Function name
    String,
);
