//! A bounded, per-worker pool of fixed-size byte buffers.
//!
//! A connection takes a [`Buffer`] only while it has bytes to hold (a
//! request head being read, a chunk of body in flight) and gives it back as
//! soon as the buffer is empty, so an idle keep-alive connection holds no
//! buffer at all. The pool is owned by one worker thread: no lock, no
//! atomic. Buffers are allocated lazily up to `max`; once the pool has
//! warmed up, checking out and giving back allocate nothing.
//!
//! [`BufferPool::checkout`] returns `None` when `max` buffers are out: that
//! is backpressure (the caller stops reading until a buffer comes back),
//! never a panic.

/// Size of every pooled buffer, in bytes. A request or response head must
/// fit in one buffer, so this also caps `max_header_size` in practice.
pub const BUFFER_SIZE: usize = 32 * 1024;

/// A fixed-size byte buffer with a read cursor and a write cursor.
///
/// Cursor invariants (always `start <= end <= data.len()`):
/// * `data[start..end]` holds bytes received and not yet consumed (the
///   *filled* region, [`filled`](Buffer::filled));
/// * `data[end..]` is free space to read into ([`spare`](Buffer::spare));
/// * `data[..start]` is dead space, reclaimed when the buffer empties (both
///   cursors go back to 0) or by [`compact`](Buffer::compact).
#[derive(Debug)]
pub struct Buffer {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buffer {
    fn new(data: Box<[u8]>) -> Self {
        Buffer {
            data,
            start: 0,
            end: 0,
        }
    }

    /// The bytes held and not yet consumed.
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Whether there is no free space after the filled region.
    pub fn is_full(&self) -> bool {
        self.end == self.data.len()
    }

    /// Free space to read into. When the buffer is empty both cursors are
    /// reset first, so the whole buffer is offered.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        &mut self.data[self.end..]
    }

    /// Marks `n` bytes of [`spare`](Self::spare) as filled.
    pub fn commit(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.data.len());
        self.end = (self.end + n).min(self.data.len());
    }

    /// Marks the first `n` filled bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves the filled region to the front so that all free space is
    /// contiguous after it (used while a head is still incomplete).
    pub fn compact(&mut self) {
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
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

/// A bounded pool of [`Buffer`]s, owned by one worker thread.
#[derive(Debug)]
pub struct BufferPool {
    free: Vec<Box<[u8]>>,
    size: usize,
    max: usize,
    out: usize,
}

impl BufferPool {
    /// A pool of at most `max` buffers of `size` bytes each, none allocated yet.
    pub fn new(size: usize, max: usize) -> Self {
        BufferPool {
            free: Vec::with_capacity(max.min(4096)),
            size,
            max,
            out: 0,
        }
    }

    /// Takes an empty buffer, or `None` when `max` buffers are already out.
    pub fn checkout(&mut self) -> Option<Buffer> {
        if let Some(data) = self.free.pop() {
            self.out += 1;
            return Some(Buffer::new(data));
        }
        if self.out >= self.max {
            return None;
        }
        self.out += 1;
        Some(Buffer::new(vec![0u8; self.size].into_boxed_slice()))
    }

    /// Gives a buffer back; its contents are discarded.
    pub fn give_back(&mut self, buffer: Buffer) {
        self.out = self.out.saturating_sub(1);
        self.free.push(buffer.data);
    }

    /// Gives back the buffer in `slot` if it holds no bytes.
    pub fn release_if_empty(&mut self, slot: &mut Option<Buffer>) {
        if slot.as_ref().is_some_and(Buffer::is_empty) {
            if let Some(b) = slot.take() {
                self.give_back(b);
            }
        }
    }

    /// Gives back the buffer in `slot`, if any, whatever it holds.
    pub fn release(&mut self, slot: &mut Option<Buffer>) {
        if let Some(b) = slot.take() {
            self.give_back(b);
        }
    }

    /// Buffers currently checked out.
    pub fn in_use(&self) -> usize {
        self.out
    }

    /// Whether a checkout would succeed now.
    pub fn has_available(&self) -> bool {
        !self.free.is_empty() || self.out < self.max
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
        pool.give_back(a);
        assert_eq!(pool.in_use(), 1);
        let c = pool.checkout().unwrap();
        assert!(c.is_empty(), "a returned buffer comes back empty");
        pool.give_back(b);
        pool.give_back(c);
        assert_eq!(pool.in_use(), 0);
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
        pool.release_if_empty(&mut slot);
        assert!(slot.is_some());
        slot.as_mut().unwrap().consume(1);
        pool.release_if_empty(&mut slot);
        assert!(slot.is_none());
        assert_eq!(pool.in_use(), 0);
    }
}
