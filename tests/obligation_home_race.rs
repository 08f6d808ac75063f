//! Rules OB1–OB5 (`kernel::obligation`) on the multi-thread runtime:
//! obligations resolved by non-holders (a plain thread) and transferred to
//! another task race the completion of the task that reserved them. Each
//! obligation must end exactly once — committed, aborted or leaked — so the
//! runtime's three counters add up to the number reserved, whatever the
//! interleaving, and nothing stays pending.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, mpsc};

use asupersync::obligation::{LeakPolicy, Obligation};
use asupersync::{Cx, RuntimeBuilder, yield_now};

const ROUNDS: usize = 40;
const PER_ROUND: usize = 24;

#[test]
fn every_obligation_ends_exactly_once_when_non_holders_race_the_holders_completion() {
    let rt = RuntimeBuilder::new()
        .worker_threads(2)
        .obligation_leak_policy(LeakPolicy::Log)
        .build()
        .expect("runtime builds");
    rt.block_on(|cx: Cx| async move {
        for _ in 0..ROUNDS {
            // A plain thread commits or aborts what it is sent.
            let (tx, rx) = mpsc::channel::<Obligation>();
            let resolver = std::thread::spawn(move || {
                for (i, o) in rx.into_iter().enumerate() {
                    if i % 2 == 0 { o.commit() } else { o.abort() }
                }
            });
            // A task takes obligations over and commits them (or drops one
            // whose transfer failed: it was leaked already).
            let queue: Arc<Mutex<Vec<Obligation>>> = Arc::default();
            let expected = PER_ROUND / 3;
            let q = queue.clone();
            let receiver = cx
                .spawn(move |c| async move {
                    let mut seen = 0;
                    while seen < expected {
                        let batch: Vec<Obligation> = std::mem::take(&mut *q.lock().unwrap());
                        for mut o in batch {
                            seen += 1;
                            if o.transfer(&c).is_ok() {
                                o.commit();
                            }
                        }
                        yield_now().await;
                    }
                })
                .unwrap();
            // The holder hands out two thirds of its obligations and
            // returns at once, racing the thread and the receiver.
            let holder = cx
                .spawn(move |c| async move {
                    for i in 0..PER_ROUND {
                        let o = c.reserve_obligation("race").unwrap();
                        match i % 3 {
                            0 => tx.send(o).unwrap(),
                            1 => queue.lock().unwrap().push(o),
                            _ => o.abort(),
                        }
                    }
                })
                .unwrap();
            holder
                .join(&cx)
                .await
                .expect("the log policy keeps the outcome");
            receiver.join(&cx).await.unwrap();
            resolver.join().unwrap();
        }
    });
    let s = rt.stats();
    let total = (ROUNDS * PER_ROUND) as u64;

    assert_eq!(
        s.obligations_committed + s.obligations_aborted + s.obligations_leaked,
        total,
        "each obligation ends exactly once: {s:?}"
    );
    let leaked: BTreeSet<_> = s.leaks.iter().map(|l| l.obligation).collect();
    assert_eq!(leaked.len(), s.leaks.len(), "no obligation leaks twice");
    assert!(
        s.leaks
            .iter()
            .all(|l| l.kind == "race" && l.to_string().contains("obligation leak"))
    );
    assert_eq!(rt.pending_obligations(), 0);
}
