//! A `#[global_allocator]` that counts allocations per thread, so a bench can tell how many
//! allocations one request costs on the client's thread.
//!
//! The counters are plain thread-local cells: counting costs about a nanosecond and never
//! touches a cache line another thread writes, so the throughput figures measured in the same
//! process are not skewed by it. The loopback server runs on its own thread, so its
//! allocations are not counted against the client.
//!
//! # Example
//!
//! ```
//! use keel_bench::alloc_counter::{thread_allocations, CountingAlloc};
//!
//! // In a binary: `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;`
//! let before = thread_allocations();
//! let work = vec![1u8; 64];
//! let used = thread_allocations().since(before);
//! // With `CountingAlloc` installed, `used.allocs` is 1 here (this doc test runs without it).
//! # drop(work);
//! # let _ = (used, CountingAlloc);
//! ```
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static REALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting `alloc`/`alloc_zeroed` and `realloc` calls per thread.
///
/// Install it in a binary with
/// `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;`.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAlloc;

/// Allocator calls made by the current thread since it started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AllocCount {
    /// `alloc` and `alloc_zeroed` calls.
    pub allocs: u64,
    /// `realloc` calls (a growing `Vec`, `String` or buffer).
    pub reallocs: u64,
}

impl AllocCount {
    /// The calls made between `earlier` and `self`.
    pub fn since(self, earlier: AllocCount) -> AllocCount {
        AllocCount {
            allocs: self.allocs - earlier.allocs,
            reallocs: self.reallocs - earlier.reallocs,
        }
    }
}

/// The allocator calls made so far by the calling thread (zero unless [`CountingAlloc`] is
/// the global allocator).
pub fn thread_allocations() -> AllocCount {
    AllocCount {
        allocs: ALLOCS.with(Cell::get),
        reallocs: REALLOCS.with(Cell::get),
    }
}

fn bump(counter: &'static std::thread::LocalKey<Cell<u64>>) {
    // NOTE: const-initialised, drop-free thread locals never allocate and stay accessible
    // during thread teardown, so using them inside the allocator cannot recurse or fail.
    counter.with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counting touches only thread-local integers.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS);
        // SAFETY: forwarded contract of `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS);
        // SAFETY: forwarded contract of `GlobalAlloc::alloc_zeroed`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract of `GlobalAlloc::dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump(&REALLOCS);
        // SAFETY: forwarded contract of `GlobalAlloc::realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
