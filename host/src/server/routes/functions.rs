//! The app and function listing routes: `/v1/apps`.

use super::*;

#[utoipa::path(get, path = "/v1/apps", tag = "functions",
    responses((status = 200, description = "Each app the token may call, with its functions", body = BTreeMap<String, Vec<String>>)))]
pub(crate) async fn app_list(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
) -> ApiResult<Response> {
    let apps: BTreeMap<&String, Vec<String>> = s
        .apps
        .iter()
        .filter(|(name, _)| c.allows(Kind::App, name, Mode::Write))
        .map(|(name, app)| (name, app.function_names()))
        .collect();
    Ok(axum::Json(apps).into_response())
}
