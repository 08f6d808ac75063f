//! A counting global allocator for the tests that count allocations:
//! `counting_allocator!()` at the top level of a test file installs it and
//! defines `allocations(f)`, the allocations `f` made on this thread
//! (other threads are never counted).

/// Installs the counting allocator in this test binary and defines
/// `fn allocations(f: impl FnOnce()) -> u64`.
#[macro_export]
macro_rules! counting_allocator {
    () => {
        struct Counting;

        thread_local! {
            static MEASURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
            static ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }

        fn count_one() {
            if MEASURING.with(std::cell::Cell::get) {
                ALLOCS.with(|a| a.set(a.get() + 1));
            }
        }

        // SAFETY: every call is forwarded unchanged to `System`; counting
        // touches only this thread's counters.
        unsafe impl std::alloc::GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
                count_one();
                // SAFETY: forwarded unchanged.
                unsafe { std::alloc::System.alloc(layout) }
            }

            unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
                // SAFETY: forwarded unchanged.
                unsafe { std::alloc::System.dealloc(ptr, layout) }
            }

            unsafe fn realloc(
                &self,
                ptr: *mut u8,
                layout: std::alloc::Layout,
                new_size: usize,
            ) -> *mut u8 {
                count_one();
                // SAFETY: forwarded unchanged.
                unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
            }
        }

        #[global_allocator]
        static GLOBAL: Counting = Counting;

        /// Allocations made on this thread by `f`.
        fn allocations(f: impl FnOnce()) -> u64 {
            ALLOCS.with(|a| a.set(0));
            MEASURING.with(|m| m.set(true));
            f();
            MEASURING.with(|m| m.set(false));
            ALLOCS.with(std::cell::Cell::get)
        }
    };
}
