//! `wasi:io/poll` and the waits of `vessel:storage/functions`, shadowed so
//! background commits keep their schedule while the guest waits: the wait
//! is cut at the next commit's due time, the commit runs, and the wait
//! starts again. wasmtime-wasi makes the pollables' futures afresh on each
//! poll, and a call's task runs on while its `get` is cut, so cutting a
//! wait loses nothing.

use std::time::Instant;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::io::poll::{Host as _, HostPollable as _};

use super::HostState;
use crate::bindings::vessel::storage::functions::HostCall as _;
use crate::bindings::vessel::storage::types::Host as _;
use crate::error::WitError;
use crate::functions::{CallHandle, FunctionsView as _};

const POLL: &str = "wasi:io/poll@0.2.12";
const FUNCTIONS: &str = "vessel:storage/functions@0.1.0";

type Wait<'a, R> = Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>;

/// Waits for `wait` on the store's state, committing in the background
/// whenever a commit falls due first. `wait` must be restartable: it is
/// dropped at each commit and made again.
async fn with_commits<R>(
    store: &mut StoreContextMut<'_, HostState>,
    wait: impl for<'s> Fn(&'s mut HostState) -> Wait<'s, R>,
) -> wasmtime::Result<R> {
    loop {
        let due = store.data().background.due();
        let waited = {
            let fut = std::pin::Pin::from(wait(store.data_mut()));
            match due {
                None => Some(fut.await),
                Some(due) => tokio::select! {
                    r = fut => Some(r),
                    () = tokio::time::sleep_until(due.into()) => None,
                },
            }
        };
        match waited {
            Some(r) => return r,
            None => store.data_mut().background_commit(Instant::now()),
        }
    }
}

/// Waits for the call `rep` (a `call` handle) as `call.get` does, with
/// background commits meanwhile; the error converted for the guest.
async fn get_call(
    store: &mut StoreContextMut<'_, HostState>,
    rep: u32,
) -> wasmtime::Result<Result<String, WitError>> {
    let got = with_commits(store, |state| {
        Box::new(async move {
            let mut view = state.functions();
            Ok(view.get(Resource::<CallHandle>::new_borrow(rep)).await)
        })
    })
    .await?;
    match got {
        Ok(s) => Ok(Ok(s)),
        Err(e) => Ok(Err(store.data_mut().functions().convert_error(e)?)),
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut inst = linker.instance(POLL)?;
    inst.func_wrap_async(
        "poll",
        |mut store: StoreContextMut<'_, HostState>, (pollables,): (Vec<Resource<DynPollable>>,)| {
            Box::new(async move {
                let reps: Vec<u32> = pollables.iter().map(Resource::rep).collect();
                let ready = with_commits(&mut store, |state| {
                    let ps = reps.iter().map(|r| Resource::new_borrow(*r)).collect();
                    Box::new(state.table.poll(ps))
                })
                .await?;
                Ok((ready,))
            }) as Wait<'_, (Vec<u32>,)>
        },
    )?;
    inst.func_wrap_async(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, HostState>, (pollable,): (Resource<DynPollable>,)| {
            Box::new(async move {
                let rep = pollable.rep();
                with_commits(&mut store, |state| {
                    Box::new(state.table.block(Resource::new_borrow(rep)))
                })
                .await?;
                Ok(())
            }) as Wait<'_, ()>
        },
    )?;
    // A function waiting for another keeps committing too: `remote` is
    // `spawn` then `get`, and `get` waits as a poll does.
    let mut inst = linker.instance(FUNCTIONS)?;
    inst.func_wrap_async(
        "remote",
        |mut store: StoreContextMut<'_, HostState>, (function, args): (String, String)| {
            Box::new(async move {
                let started = store.data_mut().functions().start_handle(&function, &args);
                let rep = match started {
                    Ok(rep) => rep,
                    Err(e) => {
                        return Ok((Err(store.data_mut().functions().convert_error(e)?),));
                    }
                };
                let got = get_call(&mut store, rep).await;
                store
                    .data_mut()
                    .table
                    .delete(Resource::<CallHandle>::new_own(rep))?;
                Ok((got?,))
            }) as Wait<'_, (Result<String, WitError>,)>
        },
    )?;
    inst.func_wrap_async(
        "[method]call.get",
        |mut store: StoreContextMut<'_, HostState>, (call,): (Resource<CallHandle>,)| {
            Box::new(async move { Ok((get_call(&mut store, call.rep()).await?,)) })
                as Wait<'_, (Result<String, WitError>,)>
        },
    )?;
    Ok(())
}
