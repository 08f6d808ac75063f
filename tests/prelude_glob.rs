//! `use asupersync::prelude::*;` next to plain `#[test]` functions compiles
//! and the standard test attribute is the one used (the prelude re-exports
//! no attribute macro; `use asupersync::*` would make `#[test]` ambiguous).
//! That this file builds is most of the test.

use asupersync::prelude::*;

#[test]
fn the_prelude_names_are_usable_next_to_a_plain_test_attribute() {
    let rt = RuntimeBuilder::current_thread().build().unwrap();
    let out: Result<(u32, Time), Error> = rt.block_on(|cx: Cx| async move {
        let budget: Budget = cx.budget();
        assert_eq!(budget, Budget::INFINITE);
        let h: TaskHandle<u32> = cx.spawn(|_| async { 21 })?;
        let abort: AbortHandle = h.abort_handle();
        yield_now().await;
        let v = h.join(&cx).await?;
        assert!(abort.is_finished());
        let outcome: Outcome<u32, Error> = Outcome::Ok(v * 2);
        let cancelled = Cancelled::new(CancelReason::new(CancelKind::User));
        let as_error: Error = cancelled.into();
        assert_eq!(as_error.kind(), ErrorKind::Cancelled);
        let _never: Option<JoinError> = None;
        let _also: Option<SpawnError> = None;
        let _elapsed: Option<Elapsed> = None;
        let _rt_type: Option<Runtime> = None;
        Ok((
            outcome
                .into_result()
                .map_err(|e| Error::other(e.to_string()))?,
            cx.now(),
        ))
    });
    assert_eq!(out.unwrap().0, 42);
}

mod nested {
    use asupersync::prelude::*;

    #[test]
    fn a_nested_module_with_the_glob_and_a_plain_test() {
        assert_eq!(Time::from_millis(1).as_nanos(), 1_000_000);
        let e = Error::other("plain");
        assert_eq!(e.kind(), ErrorKind::Other);
    }
}
