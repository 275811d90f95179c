//! A bounded, per-worker pool of fixed-size byte buffers.
//!
//! A connection takes a [`Buffer`] only while it has bytes to hold (a
//! request head being read, a chunk of body in flight) and lets it go as
//! soon as the buffer is empty, so an idle keep-alive connection holds no
//! buffer at all. A buffer returns its memory to the pool when it is
//! dropped, wherever that happens, so no path can lose a pool slot. The
//! pool belongs to one worker thread (an `Rc`, not `Arc`: no lock, no
//! atomic). Buffers are allocated lazily up to `max`; once the pool has
//! warmed up, checking out and dropping allocate nothing.
//!
//! [`BufferPool::checkout`] returns `None` when `max` buffers are out: that
//! is backpressure (the caller stops reading until a buffer comes back),
//! never a panic.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Size of every pooled buffer, in bytes. A request or response head must
/// fit in one buffer, so this also caps `max_header_size` in practice.
pub(crate) const BUFFER_SIZE: usize = 32 * 1024;

/// A fixed-size byte buffer with a read cursor and a write cursor, on loan
/// from a [`BufferPool`] until dropped.
///
/// Cursor invariants (always `start <= end <= data.len()`; the cursors are
/// `u32`, as a pooled buffer is far smaller than 4 GiB, so a buffer stays
/// four words):
/// * `data[start..end]` holds bytes received and not yet consumed (the
///   *filled* region, [`filled`](Buffer::filled));
/// * `data[end..]` is free space to read into ([`spare`](Buffer::spare));
/// * `data[..start]` is dead space, reclaimed when the buffer empties (both
///   cursors go back to 0) or by [`compact`](Buffer::compact).
pub(crate) struct Buffer {
    /// Its memory; taken back by the pool on drop.
    data: Box<[u8]>,
    start: u32,
    end: u32,
    /// The pool it returns to.
    home: Rc<Shared>,
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("capacity", &self.data.len())
            .finish()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        self.home.out.set(self.home.out.get().saturating_sub(1));
        self.home.free.borrow_mut().push(data);
    }
}

impl Buffer {
    /// The bytes held and not yet consumed.
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start as usize..self.end as usize]
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether there is no free space after the filled region.
    pub fn is_full(&self) -> bool {
        self.end as usize == self.data.len()
    }

    /// Free space to read into. When the buffer is empty both cursors are
    /// reset first, so the whole buffer is offered.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        &mut self.data[self.end as usize..]
    }

    /// Marks `n` bytes of [`spare`](Self::spare) as filled.
    pub fn commit(&mut self, n: usize) {
        debug_assert!(self.end as usize + n <= self.data.len());
        // At most the capacity, which `checkout` made fit in a u32.
        self.end = (self.end as usize + n).min(self.data.len()) as u32;
    }

    /// Marks the first `n` filled bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        // At most `end`, a u32.
        self.start = (self.start as usize + n).min(self.end as usize) as u32;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves the filled region to the front so that all free space is
    /// contiguous after it (used while a head is still incomplete).
    pub fn compact(&mut self) {
        if self.start > 0 {
            self.data
                .copy_within(self.start as usize..self.end as usize, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Whether the filled region starts at offset 0 and the buffer has no
    /// room left: a head that does not fit cannot grow further.
    pub fn is_exhausted(&self) -> bool {
        self.start == 0 && self.is_full()
    }

    /// Total capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.data.len()
    }
}

/// Lets the buffer in `slot` go if it holds no bytes (it returns to its
/// pool), so that a connection holds a buffer only while bytes wait in it.
pub(crate) fn release_if_empty(slot: &mut Option<Buffer>) {
    if slot.as_ref().is_some_and(Buffer::is_empty) {
        *slot = None;
    }
}

/// What a pool and its buffers on loan share.
#[derive(Debug)]
struct Shared {
    /// Memory of buffers not on loan.
    free: RefCell<Vec<Box<[u8]>>>,
    /// Buffers on loan.
    out: Cell<usize>,
}

/// A bounded pool of [`Buffer`]s, owned by one worker thread.
#[derive(Debug)]
pub(crate) struct BufferPool {
    shared: Rc<Shared>,
    size: usize,
    max: usize,
}

impl BufferPool {
    /// A pool of at most `max` buffers of `size` bytes each, none allocated yet.
    pub fn new(size: usize, max: usize) -> Self {
        // The cursors are u32.
        let size = size.min(u32::MAX as usize);
        BufferPool {
            shared: Rc::new(Shared {
                free: RefCell::new(Vec::with_capacity(max.min(4096))),
                out: Cell::new(0),
            }),
            size,
            max,
        }
    }

    /// Takes an empty buffer, or `None` when `max` buffers are already out.
    pub fn checkout(&mut self) -> Option<Buffer> {
        let reused = self.shared.free.borrow_mut().pop();
        let data = match reused {
            Some(data) => data,
            None if self.shared.out.get() >= self.max => return None,
            None => vec![0u8; self.size].into_boxed_slice(),
        };
        self.shared.out.set(self.shared.out.get() + 1);
        Some(Buffer {
            data,
            start: 0,
            end: 0,
            home: Rc::clone(&self.shared),
        })
    }

    /// Buffers currently on loan.
    pub fn in_use(&self) -> usize {
        self.shared.out.get()
    }

    /// Whether a checkout would succeed now.
    pub fn has_available(&self) -> bool {
        !self.shared.free.borrow().is_empty() || self.shared.out.get() < self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_is_bounded_and_none_is_backpressure() {
        let mut pool = BufferPool::new(16, 2);
        let a = pool.checkout().unwrap();
        let b = pool.checkout().unwrap();
        assert!(pool.checkout().is_none());
        assert!(!pool.has_available());
        drop(a);
        assert_eq!(pool.in_use(), 1);
        let c = pool.checkout().unwrap();
        assert!(c.is_empty(), "a returned buffer comes back empty");
        drop(b);
        drop(c);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_buffer_dropped_anywhere_returns_to_its_pool() {
        let mut pool = BufferPool::new(8, 1);
        let held: Vec<Option<Buffer>> = vec![pool.checkout()];
        assert!(pool.checkout().is_none());
        drop(held);
        assert_eq!(pool.in_use(), 0);
        assert!(pool.checkout().is_some(), "the slot came back");
    }

    #[test]
    fn cursors_follow_their_invariants() {
        let mut pool = BufferPool::new(8, 1);
        let mut buf = pool.checkout().unwrap();
        buf.spare()[..5].copy_from_slice(b"hello");
        buf.commit(5);
        assert_eq!(buf.filled(), b"hello");
        buf.consume(2);
        assert_eq!(buf.filled(), b"llo");
        assert_eq!(buf.spare().len(), 3);
        buf.compact();
        assert_eq!(buf.filled(), b"llo");
        assert_eq!(buf.spare().len(), 5);
        buf.consume(3);
        assert!(buf.is_empty());
        assert_eq!(buf.spare().len(), 8, "an empty buffer offers all its space");
    }

    #[test]
    fn release_if_empty_keeps_held_bytes() {
        let mut pool = BufferPool::new(8, 1);
        let mut slot = pool.checkout();
        slot.as_mut().unwrap().spare()[0] = b'x';
        slot.as_mut().unwrap().commit(1);
        release_if_empty(&mut slot);
        assert!(slot.is_some());
        slot.as_mut().unwrap().consume(1);
        release_if_empty(&mut slot);
        assert!(slot.is_none());
        assert_eq!(pool.in_use(), 0);
    }
}
