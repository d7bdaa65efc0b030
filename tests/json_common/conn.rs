//! One TCP connection of a replayed scenario: a reader thread turns the byte stream into frames,
//! heartbeats and end of stream on a channel, so that waiting for a message never sleeps.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Wait for one expected message (or end of stream).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Wait for one expected game frame (several MiB through a relay on a loaded machine).
pub const GAME_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound of one blocking write of a small frame.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames at or above this size are written by a helper thread, so that a relay with
/// back-pressure can deliver them while the replayer reads the other side.
const BACKGROUND_WRITE: usize = 64 * 1024;
/// A received frame larger than this is an error (the protocol's own cap is 64 MiB).
const MAX_FRAME: usize = 80 * 1024 * 1024;

pub enum Event {
    Frame(Vec<u8>),
    Heartbeat,
    Closed(String),
}

pub struct Conn {
    stream: TcpStream,
    pub events: Receiver<Event>,
    pub opened: Instant,
    pub heartbeats: usize,
    /// A large frame still being written by a helper thread.
    writer: Option<JoinHandle<std::io::Result<()>>>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect_timeout(&addr, STEP_TIMEOUT)
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let mut reader = stream
            .try_clone()
            .map_err(|e| format!("cannot clone socket: {e}"))?;
        let (tx, events) = mpsc::channel();
        thread::spawn(move || loop {
            let mut header = [0u8; 4];
            let ev = match reader.read_exact(&mut header) {
                Err(e) => Event::Closed(end_reason(&e)),
                Ok(()) => {
                    let size = u32::from_le_bytes(header) as usize;
                    if size == 0 {
                        Event::Heartbeat
                    } else if size > MAX_FRAME {
                        Event::Closed(format!("frame of {size} bytes announced"))
                    } else {
                        let mut payload = vec![0u8; size];
                        match reader.read_exact(&mut payload) {
                            Ok(()) => Event::Frame(payload),
                            Err(e) => Event::Closed(format!("inside a frame: {}", end_reason(&e))),
                        }
                    }
                }
            };
            let last = matches!(ev, Event::Closed(_));
            if tx.send(ev).is_err() || last {
                break;
            }
        });
        Ok(Conn {
            stream,
            events,
            opened: Instant::now(),
            heartbeats: 0,
            writer: None,
        })
    }

    fn finish_write(&mut self) -> Result<(), String> {
        if let Some(w) = self.writer.take() {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("background write failed: {e}")),
                Err(_) => return Err("background writer panicked".into()),
            }
        }
        Ok(())
    }

    pub fn write(&mut self, data: Vec<u8>) -> Result<(), String> {
        self.finish_write()?;
        if data.len() >= BACKGROUND_WRITE {
            let mut s = self
                .stream
                .try_clone()
                .map_err(|e| format!("cannot clone socket: {e}"))?;
            let _ = s.set_write_timeout(Some(GAME_TIMEOUT));
            self.writer = Some(thread::spawn(move || s.write_all(&data)));
            Ok(())
        } else {
            self.stream
                .write_all(&data)
                .map_err(|e| format!("write failed: {e}"))
        }
    }

    /// The next event other than a heartbeat.
    pub fn next(&mut self, timeout: Duration) -> Result<Event, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Heartbeat) => self.heartbeats += 1,
                Ok(ev) => return Ok(ev),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("nothing received within {timeout:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Ok(Event::Closed("reader ended".into()))
                }
            }
        }
    }

    pub fn shutdown(mut self) {
        let _ = self.finish_write();
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

fn end_reason(e: &std::io::Error) -> String {
    if e.kind() == ErrorKind::UnexpectedEof {
        "end of stream".into()
    } else {
        format!("{e}")
    }
}
