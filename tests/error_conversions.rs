//! `asupersync::Error`: every public error type is `Error + Send + Sync +
//! 'static` and converts into it (checked at compile time), kinds, messages
//! and cancel reasons survive, values come back (`downcast`), and `?` works
//! in a worker loop that meets many error types (both drivers).

mod support;

use std::cell::Cell;
use std::time::Duration;

use asupersync::channel::{broadcast, mpmc, mpsc, oneshot, watch};
use asupersync::sync::{Mutex, Semaphore};
use asupersync::time::{Elapsed, sleep, timeout};
use asupersync::types::CancelReason;
use asupersync::types::cancel::{CancelKind, Cancelled};
use asupersync::types::outcome::OutcomeError;
use asupersync::{Cx, Error, ErrorKind, JoinError};
use support::{Driver, Flag, Slot, until};

// ----- rule E1 at compile time ----------------------------------------------

const fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
fn converts<E: Into<Error>>() {}

/// Every public error type of the crate, with a `Send + Sync` parameter
/// where it has one.
const _: () = {
    is_error::<Error>();
    is_error::<Cancelled>();
    is_error::<JoinError>();
    is_error::<asupersync::SpawnError>();
    is_error::<asupersync::runtime::BuildError>();
    is_error::<asupersync::cx::DeferError>();
    is_error::<asupersync::obligation::TransferError>();
    is_error::<Elapsed>();
    is_error::<asupersync::lab::ReplayMismatch>();
    is_error::<OutcomeError<String>>();
    is_error::<mpsc::SendError<String>>();
    is_error::<mpsc::TrySendError<String>>();
    is_error::<mpsc::SendTimeoutError<String>>();
    is_error::<mpsc::RecvError>();
    is_error::<mpsc::TryRecvError>();
    is_error::<mpsc::ReserveError>();
    is_error::<mpsc::ReserveOwnedError<String>>();
    is_error::<oneshot::SendError<String>>();
    is_error::<oneshot::RecvError>();
    is_error::<mpmc::SendError<String>>();
    is_error::<broadcast::SendError<String>>();
    is_error::<broadcast::RecvError>();
    is_error::<broadcast::TryRecvError>();
    is_error::<broadcast::Lagged>();
    is_error::<watch::SendError<String>>();
    is_error::<watch::RecvError>();
    is_error::<asupersync::sync::AcquireError>();
    is_error::<asupersync::sync::TryAcquireError>();
    is_error::<asupersync::sync::LockError>();
    is_error::<asupersync::sync::TryLockError>();
    is_error::<asupersync::sync::InitError<String>>();
    is_error::<asupersync::sync::SetError<String>>();
    is_error::<asupersync::sync::PoolError<String>>();
};

#[test]
fn every_public_error_type_converts_into_error() {
    converts::<Cancelled>();
    converts::<JoinError>();
    converts::<asupersync::SpawnError>();
    converts::<asupersync::runtime::BuildError>();
    converts::<asupersync::cx::DeferError>();
    converts::<asupersync::obligation::TransferError>();
    converts::<Elapsed>();
    converts::<asupersync::lab::ReplayMismatch>();
    converts::<Box<asupersync::lab::ReplayMismatch>>();
    converts::<OutcomeError<String>>();
    converts::<std::io::Error>();
    // Value-carrying errors convert with any `Send` value, `Sync` or not.
    converts::<mpsc::SendError<Cell<u32>>>();
    converts::<mpsc::TrySendError<Cell<u32>>>();
    converts::<mpsc::SendTimeoutError<Cell<u32>>>();
    converts::<mpsc::RecvError>();
    converts::<mpsc::TryRecvError>();
    converts::<mpsc::ReserveError>();
    converts::<mpsc::ReserveOwnedError<Cell<u32>>>();
    converts::<broadcast::SendError<Cell<u32>>>();
    converts::<broadcast::RecvError>();
    converts::<broadcast::TryRecvError>();
    converts::<broadcast::Lagged>();
    converts::<watch::SendError<Cell<u32>>>();
    converts::<watch::RecvError>();
    converts::<asupersync::sync::AcquireError>();
    converts::<asupersync::sync::TryAcquireError>();
    converts::<asupersync::sync::LockError>();
    converts::<asupersync::sync::TryLockError>();
    converts::<asupersync::sync::InitError<String>>();
    converts::<asupersync::sync::SetError<Cell<u32>>>();
    converts::<asupersync::sync::PoolError<String>>();
}

// ----- kinds, messages, reasons, values -------------------------------------

#[test]
fn kinds_messages_and_reasons_survive_the_conversion() {
    let reason = CancelReason::timeout().with_message("too slow");
    let cases: Vec<(Error, ErrorKind, String)> = vec![
        (
            Cancelled::new(reason.clone()).into(),
            ErrorKind::Cancelled,
            Cancelled::new(reason.clone()).to_string(),
        ),
        (
            JoinError::Cancelled(reason.clone()).into(),
            ErrorKind::Cancelled,
            JoinError::Cancelled(reason.clone()).to_string(),
        ),
        (
            mpsc::RecvError::Disconnected.into(),
            ErrorKind::Disconnected,
            mpsc::RecvError::Disconnected.to_string(),
        ),
        (
            mpsc::TryRecvError::Empty.into(),
            ErrorKind::Empty,
            mpsc::TryRecvError::Empty.to_string(),
        ),
        (
            mpsc::TrySendError::Full(1u8).into(),
            ErrorKind::Full,
            mpsc::TrySendError::Full(1u8).to_string(),
        ),
        (
            mpsc::SendTimeoutError::Timeout(1u8).into(),
            ErrorKind::TimedOut,
            mpsc::SendTimeoutError::Timeout(1u8).to_string(),
        ),
        (
            broadcast::RecvError::Lagged(3).into(),
            ErrorKind::Lagged,
            broadcast::RecvError::Lagged(3).to_string(),
        ),
        (
            asupersync::sync::LockError::Poisoned.into(),
            ErrorKind::Poisoned,
            asupersync::sync::LockError::Poisoned.to_string(),
        ),
        (
            asupersync::sync::TryLockError::WouldBlock.into(),
            ErrorKind::WouldBlock,
            asupersync::sync::TryLockError::WouldBlock.to_string(),
        ),
        (
            asupersync::sync::AcquireError::Closed.into(),
            ErrorKind::Closed,
            asupersync::sync::AcquireError::Closed.to_string(),
        ),
        (
            asupersync::SpawnError::RuntimeShutdown.into(),
            ErrorKind::Spawn,
            asupersync::SpawnError::RuntimeShutdown.to_string(),
        ),
        (
            OutcomeError::<String>::Err("app".into()).into(),
            ErrorKind::Other,
            "app".to_string(),
        ),
        (
            std::io::Error::from(std::io::ErrorKind::TimedOut).into(),
            ErrorKind::TimedOut,
            std::io::Error::from(std::io::ErrorKind::TimedOut).to_string(),
        ),
    ];
    for (error, kind, message) in cases {
        assert_eq!(error.kind(), kind, "{error:?}");
        assert_eq!(error.to_string(), message);
        assert_eq!(error.is_cancelled(), kind == ErrorKind::Cancelled);
        if kind == ErrorKind::Cancelled {
            assert_eq!(error.cancel_reason(), Some(&reason), "rule E3");
        }
    }
}

#[test]
fn the_original_error_comes_back_value_included() {
    // A value that is Send but not Sync still comes back (rule E2).
    let e: Error = mpsc::SendError::Disconnected(Cell::new(7u32)).into();
    assert_eq!(e.kind(), ErrorKind::Disconnected);
    assert_eq!(e.to_string(), "sending on a disconnected channel");
    let e = e
        .downcast::<mpsc::TrySendError<Cell<u32>>>()
        .expect_err("a different type leaves the error as it was");
    match e.downcast::<mpsc::SendError<Cell<u32>>>() {
        Ok(mpsc::SendError::Disconnected(v)) => assert_eq!(v.get(), 7),
        other => panic!("expected the original error, got {other:?}"),
    }
    // Errors without a value are reachable by reference too.
    let e: Error = Elapsed::clone(&an_elapsed_error()).into();
    assert!(e.downcast_ref::<Elapsed>().is_some());
    assert_eq!(e.downcast::<Elapsed>().unwrap(), an_elapsed_error());
}

fn an_elapsed_error() -> Elapsed {
    let lab = asupersync::lab::LabRuntime::new(asupersync::lab::LabConfig::new(1));
    lab.block_on(|cx| async move {
        timeout(&cx, Duration::from_secs(1), std::future::pending::<()>())
            .await
            .unwrap_err()
    })
}

// ----- `?` in a worker loop -------------------------------------------------

enum Job {
    Double(u32),
    Panic,
    Slow,
    Stop,
}

/// A worker loop that meets nine error types; `?` converts every one.
async fn worker(
    cx: &Cx,
    jobs: &mpmc::Receiver<Job>,
    out: &mpsc::Sender<u32>,
    total: &Mutex<u64>,
    slots: &Semaphore,
) -> Result<u64, Error> {
    loop {
        cx.checkpoint()?; // Cancelled
        let job = jobs.recv(cx).await?; // mpmc RecvError
        let _slot = slots.acquire(cx, 1).await?; // AcquireError
        match job {
            Job::Double(x) => {
                let child = cx.spawn(move |_| async move { x * 2 })?; // SpawnError
                let y = child.join(cx).await?; // JoinError
                out.send(cx, y).await?; // mpsc SendError<u32>
                *total.lock(cx).await? += u64::from(y); // LockError
            }
            Job::Panic => {
                cx.spawn(|_| async { panic!("job failed") })?
                    .join(cx)
                    .await?;
            }
            Job::Slow => {
                timeout(
                    cx,
                    Duration::from_millis(1),
                    sleep(cx, Duration::from_secs(3600)),
                )
                .await??; // Elapsed, then Cancelled
            }
            Job::Stop => return Ok(*total.lock(cx).await?),
        }
    }
}

/// Runs the worker on `jobs` and returns its result plus what it sent.
fn run_worker(d: Driver, jobs: Vec<Job>, drop_out_rx: bool) -> (Result<u64, Error>, Vec<u32>) {
    let rt = d.rt();
    rt.block_on(|cx| async move {
        let (tx, rx) = mpmc::unbounded_channel();
        for j in jobs {
            tx.try_send(j).unwrap_or_else(|_| unreachable!());
        }
        drop(tx);
        let (out_tx, mut out_rx) = mpsc::unbounded_channel();
        if drop_out_rx {
            out_rx.close();
        }
        let total = Mutex::new(0);
        let slots = Semaphore::new(1);
        let r = worker(&cx, &rx, &out_tx, &total, &slots).await;
        let mut sent = Vec::new();
        while let Ok(v) = out_rx.try_recv() {
            sent.push(v);
        }
        (r, sent)
    })
}

on_both_drivers! {
    fn the_worker_loop_returns_ok_when_every_job_succeeds(d: Driver) {
        let (r, sent) = run_worker(d, vec![Job::Double(1), Job::Double(2), Job::Stop], false);
        assert_eq!(r.unwrap(), 6);
        assert_eq!(sent, [2, 4]);
    }

    fn a_panicking_child_surfaces_as_kind_panicked(d: Driver) {
        let (r, _) = run_worker(d, vec![Job::Double(1), Job::Panic, Job::Stop], false);
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert!(e.to_string().contains("job failed"), "{e}");
        assert!(matches!(e.downcast_ref::<JoinError>(), Some(JoinError::Panicked(_))));
    }

    fn an_elapsed_timeout_surfaces_as_kind_timed_out(d: Driver) {
        let (r, _) = run_worker(d, vec![Job::Slow, Job::Stop], false);
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
        assert!(e.downcast_ref::<Elapsed>().is_some());
    }

    fn a_drained_queue_surfaces_as_kind_disconnected(d: Driver) {
        let (r, _) = run_worker(d, vec![Job::Double(5)], false);
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected);
        assert!(e.downcast_ref::<mpsc::RecvError>().is_some());
    }

    fn an_undelivered_result_comes_back_from_the_error(d: Driver) {
        let (r, _) = run_worker(d, vec![Job::Double(21), Job::Stop], true);
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Disconnected);
        match e.downcast::<mpsc::SendError<u32>>() {
            Ok(mpsc::SendError::Disconnected(42)) => {}
            other => panic!("expected the unsent 42 back, got {other:?}"),
        }
    }

    fn a_cancelled_worker_surfaces_as_kind_cancelled_with_its_reason(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx| async move {
            let (tx, rx) = mpmc::channel::<Job>(1);
            let result = Slot::new();
            let started = Flag::new();
            let task = {
                let (result, started) = (result.clone(), started.clone());
                cx.spawn(move |cx| async move {
                    let (out, _out_rx) = mpsc::unbounded_channel();
                    let (total, slots) = (Mutex::new(0), Semaphore::new(1));
                    started.set();
                    result.set(worker(&cx, &rx, &out, &total, &slots).await);
                })
                .unwrap()
            };
            until(|| started.is_set()).await;
            task.abort_with(CancelReason::user("stop working"));
            let _ = task.join(&cx).await;
            drop(tx);
            let e = result.take().expect("the worker stored its result").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Cancelled);
            let reason = e.cancel_reason().expect("the reason is kept");
            assert_eq!(reason.kind, CancelKind::User);
            assert_eq!(reason.message.as_deref(), Some("stop working"));
        });
    }
}
