//! Unit tests of the functions Host impl without wasm: a `FunctionsCtxView`
//! whose caller is a stand-in [`Callee`], so the call rules are checked
//! without an app or a guest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use wit::{Host as _, HostCall as _};

/// Answers `echo` with its arguments and refuses every other function.
struct Echo;

impl Callee for Echo {
    fn prepare(
        self: Arc<Self>,
        function: &str,
        args_json: &str,
        chain: &[String],
    ) -> Result<CalleeRun, WitError> {
        if function == "raise" {
            return Ok(Box::pin(async move {
                Err(CalleeError {
                    error: WitError::CallFailed("function `raise`: raised ValueError: boom".into()),
                    raised: Some(Raised {
                        type_name: "ValueError".into(),
                        message: "boom".into(),
                        traceback: "Traceback ...".into(),
                    }),
                })
            }));
        }
        if function != "echo" {
            return Err(WitError::NotFound(format!("no function `{function}`")));
        }
        let out = format!("{{\"args\":{args_json},\"depth\":{}}}", chain.len());
        Ok(Box::pin(async move { Ok(out) }))
    }
}

fn ctx_with(callee: &Arc<Echo>) -> FunctionsCtx {
    let weak: Weak<dyn Callee> = Arc::downgrade(callee) as Weak<dyn Callee>;
    FunctionsCtx {
        caller: Some(CallerCtx {
            app: weak,
            chain: vec!["main".into()],
        }),
        ..FunctionsCtx::default()
    }
}

fn guest_error(e: StorageError) -> WitError {
    match e {
        StorageError::Guest(w) => w,
        StorageError::Trap(t) => panic!("expected a guest error, got a trap: {t}"),
    }
}

#[tokio::test]
async fn remote_and_spawn_reach_the_callee_with_the_chain() {
    let callee = Arc::new(Echo);
    let mut ctx = ctx_with(&callee);
    let mut table = ResourceTable::new();
    let mut v = FunctionsCtxView {
        ctx: &mut ctx,
        table: &mut table,
    };
    let out = v.remote("echo".into(), "[1,2]".into()).await.unwrap();
    assert_eq!(out, r#"{"args":[1,2],"depth":1}"#);

    let h = v.spawn("echo".into(), "[3]".into()).await.unwrap();
    let rep = h.rep();
    let first = v.get(Resource::new_borrow(rep)).await.unwrap();
    // A second get answers the same, from the finished call.
    let again = v.get(Resource::new_borrow(rep)).await.unwrap();
    assert_eq!(first, again);
    v.drop(h).await.unwrap();
    assert!(v.get(Resource::new_borrow(rep)).await.is_err());

    let e = guest_error(v.remote("nope".into(), "[]".into()).await.unwrap_err());
    assert!(matches!(e, WitError::NotFound(_)), "{e:?}");
}

#[tokio::test]
async fn without_an_app_or_after_it_went_calls_are_unavailable() {
    let mut ctx = FunctionsCtx::default();
    let mut table = ResourceTable::new();
    let mut v = FunctionsCtxView {
        ctx: &mut ctx,
        table: &mut table,
    };
    let e = guest_error(v.remote("echo".into(), "[]".into()).await.unwrap_err());
    assert!(
        matches!(e, WitError::Unavailable(ref m) if m.contains("need an app")),
        "{e:?}"
    );

    let callee = Arc::new(Echo);
    let mut ctx = ctx_with(&callee);
    drop(callee);
    let mut v = FunctionsCtxView {
        ctx: &mut ctx,
        table: &mut table,
    };
    let e = guest_error(v.spawn("echo".into(), "[]".into()).await.unwrap_err());
    assert!(
        matches!(e, WitError::Unavailable(ref m) if m.contains("shutting down")),
        "{e:?}"
    );
}

/// `last-failure` describes the last failed call's raised error, for
/// `remote` and `call.get` alike, and a success clears it.
#[tokio::test]
async fn last_failure_follows_the_last_call() {
    let callee = Arc::new(Echo);
    let mut ctx = ctx_with(&callee);
    let mut table = ResourceTable::new();
    let mut view = FunctionsCtxView {
        ctx: &mut ctx,
        table: &mut table,
    };
    assert!(view.last_failure().await.unwrap().is_none());
    let e = guest_error(view.remote("raise".into(), "[]".into()).await.unwrap_err());
    assert!(matches!(e, WitError::CallFailed(ref m) if m.contains("raised ValueError")));
    let f = view.last_failure().await.unwrap().unwrap();
    assert_eq!(
        (f.type_name.as_str(), f.message.as_str()),
        ("ValueError", "boom")
    );
    view.remote("echo".into(), "[]".into()).await.unwrap();
    assert!(view.last_failure().await.unwrap().is_none());
    let call = view.spawn("raise".into(), "[]".into()).await.unwrap();
    let rep = call.rep();
    view.get(Resource::new_borrow(rep)).await.unwrap_err();
    assert!(view.last_failure().await.unwrap().is_some());
    // A second `get` returns the same outcome, and the same failure.
    view.remote("echo".into(), "[]".into()).await.unwrap();
    view.get(Resource::new_borrow(rep)).await.unwrap_err();
    assert!(view.last_failure().await.unwrap().is_some());
}

#[test]
fn a_raised_error_is_cut_to_a_readable_size() {
    let long = "é".repeat(MAX_RAISED_MESSAGE);
    let r = Raised::from_wit(wit::Failure {
        type_name: "E".into(),
        message: long,
        traceback: String::new(),
    });
    assert!(r.message.len() < MAX_RAISED_MESSAGE + 40);
    assert!(
        r.message
            .ends_with(&format!("… ({} more bytes)", MAX_RAISED_MESSAGE))
    );
}
