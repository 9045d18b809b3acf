//! Raw `wasi:filesystem` helpers of the test guests that bypass std (filler,
//! hostile): which preopen holds a guest path, and an error code's name.

use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{Descriptor, ErrorCode};

/// The WASI name of an error code: `quota`, `name-too-long`, ...
pub fn fs_err(e: ErrorCode) -> String {
    e.name().to_owned()
}

/// The preopen that holds guest path `path` (the longest matching one) and
/// the path relative to it.
pub fn split(path: &str) -> Result<(Descriptor, String), String> {
    let mut best: Option<(Descriptor, String)> = None;
    for (d, guest) in get_directories() {
        let g = guest.trim_end_matches('/');
        let rest = if g.is_empty() {
            path.strip_prefix('/')
        } else {
            path.strip_prefix(g)
                .filter(|r| r.is_empty() || r.starts_with('/'))
        };
        let Some(rest) = rest else { continue };
        if best.as_ref().is_none_or(|(_, b)| rest.len() < b.len()) {
            best = Some((d, rest.trim_start_matches('/').to_owned()));
        }
    }
    best.ok_or_else(|| format!("no preopen holds {path}"))
}
