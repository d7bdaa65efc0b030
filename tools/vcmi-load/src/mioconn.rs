//! Non-blocking lobby connection for the mio-driven modes (`lobby`, `idle`), where one thread
//! handles thousands of sockets.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

pub struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    out_pos: usize,
    pub connected: bool,
    /// Whether WRITABLE interest is currently registered (avoids a syscall per flush).
    writable_registered: bool,
}

impl Conn {
    /// Starts a non-blocking connect, from `source` when given (see `--sources`). Errors here are
    /// local (EMFILE, EADDRNOTAVAIL, …); remote failures show up later through
    /// [`Conn::check_connected`].
    pub fn open(
        addr: SocketAddr,
        source: Option<IpAddr>,
        registry: &Registry,
        token: Token,
    ) -> io::Result<Conn> {
        let mut stream: TcpStream = crate::net::connect_from(addr, source)?;
        // WRITABLE signals completion of the connect.
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Conn {
            stream,
            out: Vec::new(),
            out_pos: 0,
            connected: false,
            writable_registered: true,
        })
    }

    pub fn queue(&mut self, data: &[u8]) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.out.extend_from_slice(data);
    }

    /// Finishes connect detection (mio's documented procedure: `take_error`, then `peer_addr`).
    /// Returns `Ok(true)` exactly once, when the connection is found established.
    pub fn check_connected(&mut self) -> io::Result<bool> {
        if self.connected {
            return Ok(false);
        }
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connected = true;
                let _ = self.stream.set_nodelay(true);
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes queued bytes until the socket would block and keeps WRITABLE interest registered
    /// only while something is pending.
    pub fn flush(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        if !self.connected {
            return Ok(());
        }
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let pending = self.out_pos < self.out.len();
        if !pending {
            self.out.clear();
            self.out_pos = 0;
        }
        if pending != self.writable_registered {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(&mut self.stream, token, interest)?;
            self.writable_registered = pending;
        }
        Ok(())
    }

    /// Reads until the socket would block (mio is edge-triggered), handing each chunk to `f`.
    /// Returns `Ok(true)` at end of stream.
    pub fn read_all(&mut self, rbuf: &mut [u8], mut f: impl FnMut(&[u8])) -> io::Result<bool> {
        loop {
            match self.stream.read(rbuf) {
                Ok(0) => return Ok(true),
                Ok(n) => f(&rbuf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub fn close(mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.stream);
    }
}
