//! The production drivers, the watchdog that turns a hang into a test
//! failure, and the two ways to run a scenario on both drivers.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::time::Duration;

use asupersync::{Runtime, RuntimeBuilder};

use super::panic_message;

/// How long one scenario may run before the watchdog declares a hang:
/// minutes, so that only a true hang reaches it (never a slow run on a
/// loaded machine).
pub const WATCHDOG: Duration = Duration::from_secs(180);

/// The limit for [`yield_until`](super::yield_until) and
/// [`DropObserver::wait_dropped`](super::DropObserver::wait_dropped): a
/// hang detector (a lost wakeup), long enough that no slow run on a loaded
/// machine reaches it, and shorter than [`WATCHDOG`] so that it names what
/// never happened.
pub const SOON: Duration = Duration::from_secs(90);

/// Which production driver a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// `RuntimeBuilder::current_thread()`.
    CurrentThread,
    /// `RuntimeBuilder::new().worker_threads(2)`.
    MultiThread,
}

/// Both production drivers, in the order [`for_each_driver`] runs them.
pub const DRIVERS: [Driver; 2] = [Driver::CurrentThread, Driver::MultiThread];

impl Driver {
    /// A short name for failure messages.
    pub fn name(self) -> &'static str {
        match self {
            Driver::CurrentThread => "current_thread",
            Driver::MultiThread => "multi_thread(2)",
        }
    }

    /// A builder for this driver, to customise (grace, leak policy, ...).
    pub fn builder(self) -> RuntimeBuilder {
        match self {
            Driver::CurrentThread => RuntimeBuilder::current_thread(),
            Driver::MultiThread => RuntimeBuilder::new().worker_threads(2),
        }
    }

    /// A runtime for this driver with default settings.
    pub fn rt(self) -> Runtime {
        self.builder().build().expect("runtime builds")
    }

    /// A runtime for this driver with a short cleanup grace period.
    pub fn rt_with_grace(self, grace: Duration) -> Runtime {
        self.builder()
            .cleanup_grace(grace)
            .build()
            .expect("runtime builds")
    }
}

/// Runs `f` on a fresh thread named `label` and fails (instead of hanging
/// the suite) if it does not finish within [`WATCHDOG`]. A panic in `f` is
/// resumed on the caller's thread with its original payload.
pub fn with_watchdog<T: Send + 'static>(label: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(label.to_string())
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(f));
            let _ = tx.send(r);
        })
        .expect("spawn watchdog thread");
    match rx.recv_timeout(WATCHDOG) {
        Ok(r) => {
            let _ = handle.join();
            r.unwrap_or_else(|payload| resume_unwind(payload))
        }
        Err(_) => panic!(
            "[{label}] did not finish within {WATCHDOG:?}; the runtime appears to hang \
             (a region that never closes, a lost wakeup, or a task that is never dropped)"
        ),
    }
}

/// Runs `f(driver_name, runtime)` on both drivers in one test, each on a
/// fresh runtime under the watchdog. Both drivers always run; if either
/// fails, the test fails with every driver's failure message. (For one test
/// per driver, use [`on_both_drivers!`](crate::on_both_drivers).)
pub fn for_each_driver<F>(f: F)
where
    F: Fn(&'static str, Runtime) + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let mut failures = Vec::new();
    for d in DRIVERS {
        let f = f.clone();
        let name = d.name();
        let r = catch_unwind(AssertUnwindSafe(|| {
            with_watchdog(name, move || f(name, d.rt()))
        }));
        if let Err(payload) = r {
            failures.push(format!("[{name}] {}", panic_message(&*payload)));
        }
    }
    if !failures.is_empty() {
        panic!("{}", failures.join("\n"));
    }
}

/// `fn name(d: Driver) { .. }` → module `name` with one test per driver,
/// `on_current_thread` and `on_multi_thread`, each under the watchdog.
#[macro_export]
macro_rules! on_both_drivers {
    ($( $(#[doc = $doc:literal])* fn $name:ident($d:ident : Driver) $body:block )*) => {
        $(
            $(#[doc = $doc])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                fn run($d: $crate::support::Driver) $body

                #[test]
                fn on_current_thread() {
                    $crate::support::with_watchdog(
                        concat!(stringify!($name), "::on_current_thread"),
                        || run($crate::support::Driver::CurrentThread),
                    );
                }

                #[test]
                fn on_multi_thread() {
                    $crate::support::with_watchdog(
                        concat!(stringify!($name), "::on_multi_thread"),
                        || run($crate::support::Driver::MultiThread),
                    );
                }
            }
        )*
    };
}

/// Post-conditions every `block_on` must leave behind: nothing live.
pub fn assert_quiescent(rt: &Runtime) {
    assert_eq!(rt.live_tasks(), 0, "tasks outlived block_on");
    assert_eq!(rt.live_regions(), 0, "regions outlived block_on");
    assert_eq!(
        rt.pending_obligations(),
        0,
        "obligations still pending after block_on"
    );
    assert_eq!(
        rt.pending_timers(),
        0,
        "timers still registered after block_on"
    );
    assert_eq!(
        rt.pending_cancellations(),
        0,
        "cancellations still counted after block_on (rule A2's gauge)"
    );
    let s = rt.stats();
    assert_eq!(
        s.tasks_spawned, s.tasks_completed,
        "every spawned task must complete: {s:?}"
    );
    assert_eq!(
        s.regions_created, s.regions_closed,
        "every region must close: {s:?}"
    );
}
