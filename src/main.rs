use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned};
use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};

/// mimalloc, asked for alignment only when a type needs more than a word.
///
/// The `mimalloc` crate calls `mi_malloc_aligned` for every allocation. In
/// mimalloc 3 that call falls to a slow, over-allocating path whenever the
/// size class has no free block at hand, which in a short run that mostly
/// allocates is one allocation in five: 5 M of the 80 M instructions of
/// `list` of 1,000 services. Every block of `mi_malloc` is aligned to a word
/// (and to 16 bytes from 16 bytes on), as std's own `System` relies on for
/// `malloc`.
struct MiMalloc;

/// The alignment every `mi_malloc` block has.
const WORD: usize = std::mem::size_of::<usize>();

fn plain(align: usize, size: usize) -> bool {
    align <= WORD && align <= size
}

// SAFETY: each method hands the request to mimalloc, which returns blocks of
// at least `size` bytes aligned as asked (by `plain`'s rule or explicitly),
// and frees any of its blocks with `mi_free`.
unsafe impl GlobalAlloc for MiMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            mi_malloc(layout.size()) as *mut u8
        } else {
            mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            mi_zalloc(layout.size()) as *mut u8
        } else {
            mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi_free(ptr as *mut c_void)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain(layout.align(), new_size) {
            mi_realloc(ptr as *mut c_void, new_size) as *mut u8
        } else {
            mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
        }
    }
}

// Only the binary picks the allocator: build scripts using the library keep theirs.
#[global_allocator]
static ALLOC: MiMalloc = MiMalloc;

fn main() {
    std::process::exit(cargo_hsm::cli::main());
}
