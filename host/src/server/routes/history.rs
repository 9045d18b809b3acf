//! The volume history routes: `/v1/volumes/{name}/history`, `/diff`,
//! `/restore`, `/fork` and `/retention`. Reads of an older version are the file and
//! listing routes with `?version=` (see `volumes.rs`).

use super::params::*;
use super::*;
use crate::storage::volume::{CommitInfo, History};

/// `GET .../history`: how many versions.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// At most this many versions, newest first (1 to 10,000; default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/volumes/{name}/history", tag = "volumes",
    params(VolumeName, HistoryQuery),
    responses((status = 200, description = "The kept versions, newest first, with the head, the oldest version still readable and the retention", body = History),
        (status = 404, description = "No such volume", body = ErrorBody)))]
pub(crate) async fn volume_history(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Read)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad(format!(
            "limit={limit}: a history lists 1 to 10000 versions"
        )));
    }
    let svc = s.service.clone();
    let h = blocking(move || Ok(svc.volume_history(&name, limit)?)).await?;
    Ok(axum::Json(h).into_response())
}

/// `GET .../diff`: the two versions.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DiffQuery {
    /// The older version (either order works: `change` reads from `from`
    /// to `to`).
    from: u64,
    /// The newer version; default: the head.
    to: Option<u64>,
}

#[utoipa::path(get, path = "/v1/volumes/{name}/diff", tag = "volumes",
    params(VolumeName, DiffQuery),
    responses((status = 200, description = "The paths added, modified and removed from `from` to `to`, in path order", body = [DiffEntry]),
        (status = 404, description = "No such volume, or a version that is not kept", body = ErrorBody)))]
pub(crate) async fn volume_diff(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Read)?;
    let svc = s.service.clone();
    let d = blocking(move || Ok(svc.volume_diff(&name, q.from, q.to)?)).await?;
    Ok(axum::Json(d).into_response())
}

/// `POST .../restore`: the version to bring back.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RestoreQuery {
    /// A kept version (see `/history`).
    version: u64,
}

#[utoipa::path(post, path = "/v1/volumes/{name}/restore", tag = "volumes",
    params(VolumeName, RestoreQuery),
    responses((status = 200, description = "The version's tree is the head again, as a new version", body = CommitInfo),
        (status = 404, description = "No such volume, or a version that is not kept", body = ErrorBody)))]
pub(crate) async fn volume_restore(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RestoreQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Write)?;
    crate::service::volume::writable(&name)?;
    let svc = s.service.clone();
    let info = blocking(move || Ok(svc.volume_restore(&name, q.version)?)).await?;
    Ok(axum::Json(info).into_response())
}

/// `POST .../fork`: the new volume, and which version.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ForkQuery {
    /// The name of the new volume.
    #[param(min_length = 1, max_length = 255, pattern = "^[^/\\x00]+$")]
    to: String,
    /// The kept version to fork (default: the head; or name it in the
    /// path as `NAME@VERSION`).
    version: Option<u64>,
}

#[utoipa::path(post, path = "/v1/volumes/{name}/fork", tag = "volumes",
    params(VolumeName, ForkQuery),
    responses((status = 201, description = "The new volume, whose version 1 is the source's tree at that version; nothing was copied", body = VolumeSummary),
        (status = 404, description = "No such volume, or a version that is not kept", body = ErrorBody),
        (status = 409, description = "The new name exists", body = ErrorBody),
        (status = 413, description = "The source is a fork too many levels deep", body = ErrorBody)))]
pub(crate) async fn volume_fork(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ForkQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Read)?;
    require(&c, Kind::Volume, &q.to, Mode::Write)?;
    crate::service::volume::writable(&q.to)?;
    let src = match (
        q.version,
        crate::service::volume::VolumeRef::parse(&name)?.version,
    ) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad(format!(
                "{name}: the path names version {b} and `version` {a}; name one"
            )));
        }
        (Some(v), None) => format!("{name}@{v}"),
        _ => name,
    };
    let svc = s.service.clone();
    let info = blocking(move || Ok(svc.volume_fork(&src, &q.to)?)).await?;
    Ok((StatusCode::CREATED, axum::Json(info)).into_response())
}

/// `PUT .../retention`: the retention to set.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RetentionQuery {
    /// How long a replaced version stays readable, in milliseconds; 0
    /// keeps only the head. At most 2^63 - 1.
    retention_ms: u64,
}

#[utoipa::path(put, path = "/v1/volumes/{name}/retention", tag = "volumes",
    params(VolumeName, RetentionQuery),
    responses((status = 200, description = "The volume with its new retention (versions already pruned do not come back)", body = VolumeSummary),
        (status = 400, description = "No or a bad `retention_ms`", body = ErrorBody)))]
pub(crate) async fn volume_set_retention(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<RetentionQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Write)?;
    crate::service::volume::writable(&name)?;
    let svc = s.service.clone();
    let info = blocking(move || Ok(svc.volume_set_retention(&name, q.retention_ms)?)).await?;
    Ok(axum::Json(info).into_response())
}
