//! The join hand-off through the task's state word (rules SW9–SW12 in
//! `exec::state`, J1–J4 in `exec::join`): the joiner's waker, the output and
//! the handle's drop racing the task's completion, on both drivers.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use asupersync::sync::Notify;
use asupersync::{Cx, Outcome, TaskHandle, yield_now};
use support::{SOON, assert_quiescent, counting_waker, wakes, yield_until};

/// A task's output that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `f` once with `waker`.
fn poll_with<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

on_both_drivers! {
    /// SW11, SW12: a join polled by one waker and then by another (a
    /// `select` loop moving between tasks) wakes only the waker stored last
    /// when the task completes, exactly once.
    fn a_replaced_join_waker_is_not_woken_and_the_stored_one_is_woken_once(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let notify = Arc::new(Notify::new());
            let n = notify.clone();
            let mut h = cx
                .spawn(move |cx| async move {
                    n.notified(&cx).await.expect("not cancelled");
                    7u64
                })
                .unwrap();
            let (first, w1) = counting_waker();
            let (second, w2) = counting_waker();
            {
                let mut join = h.join_mut(&cx);
                assert!(poll_with(&mut join, &w1).is_pending());
                assert!(poll_with(&mut join, &w2).is_pending());
                assert!(poll_with(&mut join, &w2).is_pending(), "the same waker again");
            }
            yield_until("the task to wait", SOON, || notify.waiters() == 1).await;
            notify.notify_one();
            yield_until("the task to finish", SOON, || h.is_finished()).await;
            yield_until("the wake", SOON, || wakes(&second) == 1).await;
            assert_eq!(wakes(&first), 0, "SW11: the replaced waker is not woken");
            assert_eq!(h.join(&cx).await.unwrap(), 7);
            assert_eq!(wakes(&second), 1, "woken exactly once");
        });
        assert_quiescent(&rt);
    }

    /// SW9: once `is_finished` says so, the output is there: a join returns
    /// it on its first poll, without storing a waker.
    fn once_is_finished_is_true_a_join_returns_on_its_first_poll(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            let mut h = cx.spawn(|_| async { 5u64 }).unwrap();
            yield_until("the task to finish", SOON, || h.is_finished()).await;
            let (counter, waker) = counting_waker();
            let mut join = h.join_mut(&cx);
            assert!(matches!(poll_with(&mut join, &waker), Poll::Ready(Ok(5))));
            drop(join);
            assert_eq!(wakes(&counter), 0);
            drop(h);
        });
        assert_quiescent(&rt);
    }

    /// An `AbortHandle` reads COMPLETE (set before the output is stored),
    /// so it never reports a task running that its `TaskHandle` reports
    /// finished; and a finished task's abort handle stays finished.
    fn an_abort_handle_reports_finished_no_later_than_the_task_handle(d: Driver) {
        let rt = d.rt();
        rt.block_on(|cx: Cx| async move {
            for i in 0..50u64 {
                let h = cx.spawn(move |_| async move { i }).unwrap();
                let abort = h.abort_handle();
                yield_until("the task to finish", SOON, || {
                    let task_handle_says = h.is_finished();
                    assert!(!task_handle_says || abort.is_finished(), "task {i}");
                    task_handle_says
                })
                .await;
                assert_eq!(h.join(&cx).await.unwrap(), i);
                assert!(abort.is_finished(), "the cell is gone: still finished");
            }
        });
        assert_quiescent(&rt);
    }

    /// SW9, SW10, J4: handles dropped while their tasks complete (on
    /// another worker, on the multi-thread runtime) and handles joined:
    /// every output is read or dropped, each exactly once.
    fn outputs_are_dropped_exactly_once_when_handle_drops_race_completions(d: Driver) {
        let rt = d.rt();
        for round in 0..20 {
            let drops = Arc::new(AtomicUsize::new(0));
            let d2 = drops.clone();
            let joined = rt.block_on(move |cx: Cx| async move {
                let mut kept = Vec::new();
                for i in 0..200u64 {
                    let drops = d2.clone();
                    let h: TaskHandle<(u64, Counted)> = cx
                        .spawn(move |_| async move {
                            if i % 3 == 0 {
                                yield_now().await;
                            }
                            (i, Counted(drops))
                        })
                        .unwrap();
                    if i % 2 == 0 {
                        kept.push(h);
                    } else {
                        if i % 4 == 1 {
                            yield_now().await;
                        }
                        drop(h);
                    }
                }
                let mut joined = 0;
                for h in kept {
                    let (i, value) = h.join(&cx).await.unwrap();
                    assert_eq!(i % 2, 0);
                    drop(value);
                    joined += 1;
                }
                joined
            });
            assert_eq!(joined, 100, "round {round}");
            assert_eq!(
                drops.load(Ordering::SeqCst),
                200,
                "round {round}: every output dropped exactly once"
            );
            assert_quiescent(&rt);
        }
    }

    /// J3 with SW10: a panicking task whose handle is dropped while it
    /// completes fails its region, whichever side of the drop the
    /// completion lands on.
    fn an_unjoined_panic_fails_the_region_when_the_handle_drop_races_it(d: Driver) {
        let rt = d.rt();
        for round in 0..50 {
            let out = rt.block_on(move |cx: Cx| async move {
                cx.region(move |rcx| async move {
                    let h = rcx
                        .spawn(move |_| async move {
                            if round % 2 == 0 {
                                yield_now().await;
                            }
                            panic!("raced")
                        })
                        .unwrap();
                    if round % 3 == 0 {
                        yield_now().await;
                    }
                    drop(h);
                    Ok::<_, ()>(())
                })
                .await
            });
            match out {
                Outcome::Panicked(p) => assert_eq!(p.message(), "raced", "round {round}"),
                other => panic!("round {round}: expected Panicked, got {other:?}"),
            }
            assert_quiescent(&rt);
        }
    }
}
