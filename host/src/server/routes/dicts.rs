//! The dict routes: `/v1/dicts/...`.

use super::params::*;
use super::*;

#[utoipa::path(get, path = "/v1/dicts", tag = "dicts",
    responses((status = 200, description = "The dicts the token may read", body = [DictSummary])))]
pub(crate) async fn dict_list(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
) -> ApiResult<Response> {
    let svc = s.service.clone();
    let all = blocking(move || Ok(svc.dict_list()?)).await?;
    Ok(axum::Json(visible(&c, Kind::Dict, all, |d| &d.name)).into_response())
}

#[utoipa::path(get, path = "/v1/dicts/{name}", tag = "dicts",
    params(DictName),
    responses((status = 200, description = "The dict", body = DictSummary)))]
pub(crate) async fn dict_info(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Read)?;
    let svc = s.service.clone();
    let n = name.clone();
    let found = blocking(move || Ok(svc.dict_list()?.into_iter().find(|d| d.name == n))).await?;
    match found {
        Some(d) => Ok(axum::Json(d).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("dict `{name}` does not exist"),
        )),
    }
}

#[utoipa::path(post, path = "/v1/dicts/{name}", tag = "dicts",
    params(DictName),
    responses((status = 201, description = "Created", body = Named),
        (status = 409, description = "It exists", body = ErrorBody)))]
pub(crate) async fn dict_create(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let svc = s.service.clone();
    let n = name.clone();
    let created = blocking(move || Ok(svc.dict_create(&n)?)).await?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_exists",
            format!("dict `{name}` already exists"),
        ));
    }
    Ok((StatusCode::CREATED, axum::Json(Named { name })).into_response())
}

#[utoipa::path(delete, path = "/v1/dicts/{name}", tag = "dicts",
    params(DictName),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn dict_delete(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let svc = s.service.clone();
    blocking(move || Ok(svc.dict_delete(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/v1/dicts/{name}/clear", tag = "dicts",
    params(DictName),
    responses((status = 204, description = "Every entry removed")))]
pub(crate) async fn dict_clear(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let svc = s.service.clone();
    blocking(move || Ok(svc.dict_clear(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ItemsQuery {
    /// How many entries (default 20).
    limit: Option<usize>,
    /// Every entry (owner socket only: an unbounded answer).
    #[serde(default)]
    all: bool,
}

#[utoipa::path(get, path = "/v1/dicts/{name}/items", tag = "dicts",
    params(DictName, ItemsQuery),
    responses((status = 200, description = "The first entries in key order", body = DictItems)))]
pub(crate) async fn dict_items(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ItemsQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Read)?;
    let limit = match (q.all, &c) {
        (true, Caller::Owner) => None,
        (true, Caller::Token(_)) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "access_denied",
                "`all` is for the data dir's socket; page with `limit` (at most 10000)",
            ));
        }
        (false, _) => Some(q.limit.unwrap_or(20).min(10_000)),
    };
    let svc = s.service.clone();
    let items = blocking(move || Ok(svc.dict_items(&name, limit)?)).await?;
    Ok(axum::Json(items).into_response())
}

#[utoipa::path(get, path = "/v1/dicts/{name}/keys/{key}", tag = "dicts",
    params(DictName, DictKey),
    responses((status = 200, description = "The entry", body = DictItem)))]
pub(crate) async fn dict_get(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, key)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Read)?;
    let svc = s.service.clone();
    let item = blocking(move || Ok(svc.dict_get(&name, &key)?)).await?;
    Ok(axum::Json(item).into_response())
}

#[utoipa::path(put, path = "/v1/dicts/{name}/keys/{key}", tag = "dicts",
    params(DictName, DictKey),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The value's bytes (JSON text reads back as JSON)"),
    responses((status = 200, description = "Written", body = Versioned),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 413, description = "The value is over the limit", body = ErrorBody),
        (status = 429, description = "The token's requests hold their limit of body bytes (see Retry-After)", body = ErrorBody)))]
pub(crate) async fn dict_put(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, key)): ApiPath<(String, String)>,
    body: Upload,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    // The value stays counted against the token until it is written.
    let mut hold = s.tenants.body(&c);
    let value = body
        .read(MAX_VALUE_BODY, s.tenants.limits().body_timeout, |n| {
            hold.grow(n)
        })
        .await?;
    let svc = s.service.clone();
    let version = blocking(move || Ok(svc.dict_put(&name, &key, &value)?)).await?;
    drop(hold);
    Ok(axum::Json(Versioned { version }).into_response())
}
