//! Sizes of the per-task structures (`bytes_per_task` in the `vs_tokio`
//! bench's allocation pass is mostly these): printed with `--nocapture`
//! and asserted, so a regression shows in the tests. At the top of the
//! crate (a test only): it builds a runtime and parks a task on a `Notify`
//! as the bench does, so it sits above every layer it measures.

use std::future::Future;
use std::sync::Arc;

use crate::exec::cancel_slot::CancelSlot;
use crate::exec::cx::Cx;
use crate::exec::join::JoinSlot;
use crate::exec::state::CellState;
use crate::exec::task_cell::TaskCell;

/// The heap block of a spawned task: the cell inside its `Arc`.
fn arc_cell_bytes<F: Future>(_: &F) -> usize {
    // An `ArcInner` is the two counts and the value.
    2 * std::mem::size_of::<usize>() + std::mem::size_of::<TaskCell<F>>()
}

#[test]
fn the_per_task_structures_stay_within_their_budgets() {
    let rt = crate::runtime::RuntimeBuilder::current_thread()
        .build()
        .expect("runtime");
    let (parked, trivial) = rt.block_on(|cx: Cx| async move {
        // The bench's parked task (`alloc_pass`): waits on a `Notify`
        // through its own `Cx`; spawned the same way, a closure's `async
        // move` block (an `async fn` would keep its arguments twice).
        let parked_task = |cx: Cx, notify: Arc<crate::sync::Notify>| async move {
            notify.notified(&cx).await.expect("not cancelled");
            1u64
        };
        // A trivial task (`spawn_many`).
        let trivial_task = |cx: Cx| async move {
            let _cx = cx;
            1u64
        };
        let notify = Arc::new(crate::sync::Notify::new());
        let parked = arc_cell_bytes(&parked_task(cx.clone(), notify));
        let trivial = arc_cell_bytes(&trivial_task(cx.clone()));
        (parked, trivial)
    });
    let sizes = [
        // CXH1: one home (a fat `Arc`), the task and region ids, the
        // capabilities and the own-region flag; the deadline is the home's.
        ("Cx", std::mem::size_of::<Cx>(), 40),
        ("CellState", std::mem::size_of::<CellState>(), 8),
        // Only the joiner's waker: the output lies in the cell's stage.
        ("JoinSlot<()>", std::mem::size_of::<JoinSlot<()>>(), 16),
        ("JoinSlot<u64>", std::mem::size_of::<JoinSlot<u64>>(), 16),
        (
            "Option<Stored<()>> (an output in the stage)",
            std::mem::size_of::<Option<crate::exec::join::Stored<()>>>(),
            24,
        ),
        // CS1, CS2: the reason word and the deadline word (its lock bit).
        ("CancelSlot", std::mem::size_of::<CancelSlot>(), 16),
        // OB10: the word and the pointer to the details, made on demand.
        (
            "ObligationHome",
            std::mem::size_of::<crate::kernel::ObligationHome>(),
            16,
        ),
        // The wait future with its intrusive waiter node (`sync::waiters`):
        // the lock, the links, the waker, the broadcast count and two flag
        // bytes, and the `&Cx`.
        (
            "Notified",
            std::mem::size_of::<crate::sync::Notified<'static>>(),
            56,
        ),
        // The cells' budgets are today's sizes: the fixed fields are 112
        // bytes (SW13 keeps two constants in the state word, CS3 the lane
        // deadline in the cancel slot).
        (
            "TaskCell<Ready<()>>",
            std::mem::size_of::<TaskCell<std::future::Ready<()>>>(),
            136,
        ),
        ("Arc<TaskCell> (spawn_many's task)", trivial, 184),
        // The parked task's future holds its `Notified`, whose waiter node
        // (links, waker, the broadcast count) is the intrusive queue's
        // (`sync::waiters`, WL1–WL6): 16 bytes more in the cell, and
        // nothing at all in the `Notify` (it was a 40-byte slab slot, ~66
        // bytes a task with the slab's growth).
        ("Arc<TaskCell> (alloc_pass's parked task)", parked, 248),
    ];
    for (name, size, _) in sizes {
        println!("{name}: {size} bytes");
    }
    for (name, size, budget) in sizes {
        assert!(
            size <= budget,
            "{name} grew to {size} bytes (budget {budget})"
        );
    }
}
