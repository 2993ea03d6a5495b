//! The counting allocator counts exactly the allocations of the thread that makes them.

use keel_bench::alloc_counter::{thread_allocations, CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn counts_each_allocation_and_reallocation_of_this_thread() {
    let before = thread_allocations();
    let boxed = std::hint::black_box(Box::new(7u64));
    let mut v: Vec<u8> = std::hint::black_box(Vec::with_capacity(8));
    v.reserve(1024);
    let used = thread_allocations().since(before);
    assert_eq!(used.allocs, 2, "one Box and one Vec buffer");
    assert_eq!(used.reallocs, 1, "the Vec grew once");
    drop((boxed, v));
}

#[test]
fn allocations_of_another_thread_are_not_counted_here() {
    let before = thread_allocations();
    let other = std::thread::spawn(|| {
        let start = thread_allocations();
        let v: Vec<Box<u32>> = (0..100).map(Box::new).collect();
        drop(std::hint::black_box(v));
        thread_allocations().since(start).allocs
    });
    let theirs = other.join().unwrap();
    let mine = thread_allocations().since(before).allocs;
    assert!(
        theirs >= 101,
        "the other thread made 101 allocations, counted {theirs}"
    );
    assert!(
        mine < 20,
        "spawning and joining made {mine} allocations here, not the other thread's 101"
    );
}
