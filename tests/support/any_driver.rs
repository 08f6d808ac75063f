//! The three drivers behind one type, for scenarios that must hold on the
//! current-thread runtime, the multi-thread runtime and the lab alike:
//! [`AnyRt`] and [`on_all_drivers!`] (one test per driver, each under the
//! watchdog).

use std::future::Future;

use asupersync::lab::{LabConfig, LabRuntime};
use asupersync::{Cx, Runtime};

use super::{Driver, assert_quiescent};

/// One of the three drivers.
pub enum AnyRt {
    Rt(Runtime),
    Lab(Box<LabRuntime>),
}

/// Which driver [`AnyRt::new`] builds.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    CurrentThread,
    MultiThread,
    Lab,
}

impl AnyRt {
    pub fn new(kind: Kind) -> Self {
        match kind {
            Kind::CurrentThread => AnyRt::Rt(Driver::CurrentThread.rt()),
            Kind::MultiThread => AnyRt::Rt(Driver::MultiThread.rt()),
            Kind::Lab => AnyRt::Lab(Box::new(LabRuntime::new(LabConfig::new(11)))),
        }
    }

    pub fn block_on<F, Fut>(&self, f: F) -> Fut::Output
    where
        F: FnOnce(Cx) -> Fut,
        Fut: Future,
    {
        match self {
            AnyRt::Rt(rt) => rt.block_on(f),
            AnyRt::Lab(lab) => lab.block_on(f),
        }
    }

    /// Nothing is left live and every task and region ended.
    pub fn assert_quiescent(&self) {
        match self {
            AnyRt::Rt(rt) => assert_quiescent(rt),
            AnyRt::Lab(lab) => {
                assert!(lab.live_tasks().is_empty(), "tasks outlived block_on");
                assert!(lab.live_regions().is_empty(), "regions outlived block_on");
                let s = lab.stats();
                assert_eq!(s.tasks_spawned, s.tasks_completed, "{s:?}");
                assert_eq!(s.regions_created, s.regions_closed, "{s:?}");
            }
        }
    }
}

/// `fn name(rt: &AnyRt) { .. }` → module `name` with the tests
/// `on_current_thread`, `on_multi_thread` and `on_lab`, each on a fresh
/// runtime under the watchdog, followed by `$after(&rt)`.
#[macro_export]
macro_rules! on_all_drivers {
    (after = $after:path; $( $(#[doc = $doc:literal])* fn $name:ident($rt:ident : &AnyRt) $body:block )*) => {
        $(
            $(#[doc = $doc])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                fn run($rt: &$crate::support::AnyRt) $body

                fn check(kind: $crate::support::Kind, label: &'static str) {
                    $crate::support::with_watchdog(label, move || {
                        let rt = $crate::support::AnyRt::new(kind);
                        run(&rt);
                        $after(&rt);
                    });
                }

                #[test]
                fn on_current_thread() {
                    check($crate::support::Kind::CurrentThread, concat!(stringify!($name), "::on_current_thread"));
                }

                #[test]
                fn on_multi_thread() {
                    check($crate::support::Kind::MultiThread, concat!(stringify!($name), "::on_multi_thread"));
                }

                #[test]
                fn on_lab() {
                    check($crate::support::Kind::Lab, concat!(stringify!($name), "::on_lab"));
                }
            }
        )*
    };
}
