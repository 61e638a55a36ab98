//! The global allocator: mimalloc, called through its plain entry points whenever they give
//! the alignment asked for.
//!
//! Why mimalloc at all: HTTP/2 keeps 32 streams in flight per connection, and glibc serves
//! the large and many same-size blocks they need (boxed request futures of about 1 KiB, past
//! its per-thread cache of 7 blocks per size) from its slower bins: about 1,400 of 35,200
//! instructions per HTTP/2 request (callgrind; README, Benchmarks). Built with `no_thp`:
//! mimalloc otherwise asks for transparent huge pages on its arenas, and each touched 2 MiB
//! region then counts whole in the RSS (22.8 against 13.0 MB at rest).
//!
//! Why not the `mimalloc` crate's allocator: it calls `mi_malloc_aligned` for every
//! allocation, whatever its alignment. mimalloc's aligned entry point takes its fast path
//! only while the size class's free list is non-empty; otherwise it goes through its generic
//! aligned path, which for a block size that is not a power of two over-allocates and
//! shifts. `mi_malloc` has no such detour. Every mimalloc block size is a multiple of the
//! word, so `mi_malloc` already gives what an alignment up to 8 (nearly every Rust type)
//! asks for, as the standard library's `System` allocator reasons about glibc's malloc.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// The largest alignment every block `mi_malloc` returns has: the word size (mimalloc's
/// size classes are whole words, its pages word-aligned).
const WORD_ALIGN: usize = std::mem::size_of::<usize>();

/// See the module's comment.
pub struct MiMalloc;

// SAFETY: each function passes the request to mimalloc, which returns a block of at least
// `size` bytes or null; the aligned entry points honour any power-of-two alignment, and the
// plain ones are used only for alignments up to the word, which all their blocks have.
// `mi_free` and the reallocations accept a block from any of these entry points.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD_ALIGN {
            mi_malloc(layout.size()).cast()
        } else {
            mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD_ALIGN {
            mi_zalloc(layout.size()).cast()
        } else {
            mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD_ALIGN {
            mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every alignment gets what it asked for, through both entry points, zeroed when asked,
    /// and keeps its contents and alignment through growing and shrinking.
    #[test]
    fn blocks_have_their_alignment_and_survive_realloc() {
        let a = MiMalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [1usize, 3, 8, 24, 40, 100, 1000, 1024, 5000, 70_000] {
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    continue;
                };
                // SAFETY: a non-zero size; every block is freed with the layout it has.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null(), "{size}/{align}");
                    assert_eq!(p as usize % align, 0, "{size}/{align}");
                    std::ptr::write_bytes(p, 0xa5, size);
                    let q = a.realloc(p, layout, size * 3);
                    assert!(!q.is_null(), "{size}/{align}");
                    assert_eq!(q as usize % align, 0, "realloc {size}/{align}");
                    assert!((0..size).all(|i| *q.add(i) == 0xa5), "{size}/{align}");
                    let bigger = Layout::from_size_align(size * 3, align).unwrap();
                    let r = a.realloc(q, bigger, size.div_ceil(2));
                    assert_eq!(r as usize % align, 0, "shrink {size}/{align}");
                    assert!((0..size.div_ceil(2)).all(|i| *r.add(i) == 0xa5));
                    let half = Layout::from_size_align(size.div_ceil(2), align).unwrap();
                    a.dealloc(r, half);
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zeroed {size}/{align}");
                    assert!((0..size).all(|i| *z.add(i) == 0), "{size}/{align}");
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
