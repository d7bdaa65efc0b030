//! The two output buffers every connection kind uses: [`OutQueue`] for whole
//! messages (shared `Bytes`, so a broadcast is one allocation) and
//! [`RelayBuf`] for a raw byte stream with a high-water mark (back-pressure).

use bytes::Bytes;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};

/// Bytes one relay direction may hold before the source stops being read.
/// 256 KiB keeps a fast loopback pair busy while bounding a stalled pair's
/// cost; reading resumes once a quarter of it is free again.
pub const RELAY_BUF: usize = 256 * 1024;
pub const RELAY_RESUME: usize = RELAY_BUF / 4;

/// Drained relay buffers kept for reuse, per thread (the event loop has one):
/// a busy pair that drains its buffer on every write takes it back at once
/// instead of allocating and zeroing 256 KiB again, while an idle pair holds
/// nothing. At most this many are kept (2 MiB).
const POOL_MAX: usize = 8;

thread_local! {
    static POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn pooled_buffer() -> Vec<u8> {
    POOL.with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| vec![0; RELAY_BUF])
}

fn return_buffer(data: Vec<u8>) {
    if data.len() != RELAY_BUF {
        return; // grown by a push: let it go
    }
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_MAX {
            p.push(data);
        }
    });
}

/// A bounded byte buffer for one relay direction: read straight from the
/// source socket into it, written straight from it to the destination.
/// It holds memory only while it holds bytes: drained, its buffer goes back
/// to a small pool (or is freed), so an idle pipe costs nothing.
#[derive(Debug, Default)]
pub struct RelayBuf {
    data: Vec<u8>,
    head: usize,
    tail: usize,
}

impl RelayBuf {
    pub fn len(&self) -> usize {
        self.tail - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Room left before the high-water mark.
    pub fn free(&self) -> usize {
        RELAY_BUF.saturating_sub(self.len())
    }

    /// Whether the source may be read again after a pause.
    pub fn can_resume(&self) -> bool {
        self.free() >= RELAY_RESUME
    }

    /// Bytes of memory it holds (for the memory budget).
    pub fn allocated(&self) -> usize {
        self.data.capacity()
    }

    /// Gives the buffer back once nothing is left in it.
    fn release_if_drained(&mut self) {
        if self.head == self.tail && !self.data.is_empty() {
            self.head = 0;
            self.tail = 0;
            return_buffer(std::mem::take(&mut self.data));
        }
    }

    /// Makes contiguous room at the end, allocating on first use so idle
    /// pipes hold no buffer.
    fn make_room(&mut self) {
        if self.data.is_empty() {
            self.data = pooled_buffer();
        }
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        } else if self.tail == self.data.len() && self.head > 0 {
            self.data.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
    }

    /// Appends bytes (a pipe's echo and the bytes held for it before pairing;
    /// may exceed the mark slightly).
    pub fn push(&mut self, bytes: &[u8]) {
        self.make_room();
        if self.data.len() - self.tail < bytes.len() {
            self.data.resize(self.tail + bytes.len(), 0);
        }
        self.data[self.tail..self.tail + bytes.len()].copy_from_slice(bytes);
        self.tail += bytes.len();
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.data[self.head..self.tail]
    }

    /// One read from `src` into the free space. `Ok(0)` is EOF.
    pub fn read_from(&mut self, src: &mut impl Read) -> io::Result<usize> {
        self.make_room();
        let end = (self.head + RELAY_BUF).min(self.data.len());
        if self.tail >= end {
            return Err(io::ErrorKind::WouldBlock.into()); // full: caller pauses
        }
        let r = src.read(&mut self.data[self.tail..end]);
        if let Ok(n) = r {
            self.tail += n;
        }
        // nothing came: do not keep a buffer for nothing
        self.release_if_drained();
        r
    }

    /// One write of buffered bytes to `dst`.
    pub fn write_to(&mut self, dst: &mut impl Write) -> io::Result<usize> {
        let n = dst.write(&self.data[self.head..self.tail])?;
        self.head += n;
        self.release_if_drained();
        Ok(n)
    }
}

/// Ordered queue of whole lobby messages. Messages are shared `Bytes`, so a
/// broadcast is one buffer referenced from every recipient's queue.
#[derive(Debug, Default)]
pub struct OutQueue {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl OutQueue {
    pub fn push(&mut self, b: Bytes) {
        self.len += b.len();
        self.chunks.push_back(b);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One vectored write of as many queued messages as fit.
    pub fn write_to(&mut self, dst: &mut impl Write) -> io::Result<usize> {
        let slices: Vec<IoSlice<'_>> = self
            .chunks
            .iter()
            .take(64)
            .map(|b| IoSlice::new(b))
            .collect();
        let mut n = dst.write_vectored(&slices)?;
        let written = n;
        self.len -= n;
        while n > 0 {
            let front = self.chunks.front_mut().expect("wrote no more than queued");
            if n >= front.len() {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                let _ = front.split_to(n);
                n = 0;
            }
        }
        // a burst's big queue is freed once drained; a small one is kept, so
        // a broadcast costs one shared buffer, not one queue allocation per
        // recipient (at ~128 bytes per idle connection)
        if self.chunks.is_empty() && self.chunks.capacity() > 8 {
            self.chunks = VecDeque::new();
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::would_block;

    #[test]
    fn relay_buf_is_bounded_and_ordered() {
        let mut b = RelayBuf::default();
        let mut src: &[u8] = &[7u8; RELAY_BUF + 10];
        let mut total = 0;
        loop {
            match b.read_from(&mut src) {
                Ok(n) => total += n,
                Err(e) if would_block(&e) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(total, RELAY_BUF);
        assert_eq!(b.free(), 0);
        let mut sink = Vec::new();
        b.write_to(&mut sink).unwrap();
        assert_eq!(sink.len(), RELAY_BUF);
        assert!(b.is_empty());
        assert_eq!(b.allocated(), 0, "a drained buffer is released");
        let mut nothing: &[u8] = &[];
        assert_eq!(b.read_from(&mut nothing).unwrap(), 0);
        assert_eq!(b.allocated(), 0, "a read of nothing keeps nothing");
        b.push(b"abc");
        b.push(b"def");
        assert_eq!(b.as_slice(), b"abcdef");
    }

    #[test]
    fn out_queue_partial_writes_keep_order() {
        struct Trickle(Vec<u8>);
        impl Write for Trickle {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(3);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b":>>A:1"));
        q.push(Bytes::from_static(b":>>B:2"));
        let mut t = Trickle(Vec::new());
        while !q.is_empty() {
            q.write_to(&mut t).unwrap();
        }
        assert_eq!(t.0, b":>>A:1:>>B:2");
    }
}
