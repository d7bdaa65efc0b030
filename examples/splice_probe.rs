//! Does splice(2) through a kernel pipe beat read/write for the relay's copy
//! path on this machine? Relays `--mib` MiB from a writer to a sink over
//! loopback once with read/write through a user buffer (what the server
//! does) and once with splice, and reports throughput and the relay thread's
//! CPU time per GiB (the steadier figure on a shared machine).
//!
//!     cargo run --release --example splice_probe -- 2048

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

const CHUNK: usize = 256 * 1024;

fn thread_cpu_secs() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn pair(
    total: usize,
) -> (
    TcpStream,
    TcpStream,
    std::thread::JoinHandle<()>,
    std::thread::JoinHandle<usize>,
) {
    let src_l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dst_l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let src_addr = src_l.local_addr().expect("addr");
    let dst_addr = dst_l.local_addr().expect("addr");
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(src_addr).expect("connect");
        let block = vec![0x5au8; CHUNK];
        let mut left = total;
        while left > 0 {
            let n = left.min(CHUNK);
            s.write_all(&block[..n]).expect("write");
            left -= n;
        }
    });
    let sink = std::thread::spawn(move || {
        let (mut s, _) = dst_l.accept().expect("accept");
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return got,
                Ok(n) => got += n,
            }
        }
    });
    let (src, _) = src_l.accept().expect("accept");
    let dst = TcpStream::connect(dst_addr).expect("connect");
    (src, dst, writer, sink)
}

fn copy(mut src: TcpStream, mut dst: TcpStream) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = src.read(&mut buf).expect("read");
        if n == 0 {
            return;
        }
        dst.write_all(&buf[..n]).expect("write");
    }
}

fn splice(src: TcpStream, dst: TcpStream) {
    let mut fds = [0i32; 2];
    // SAFETY: plain system calls on descriptors this function owns.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::fcntl(fds[1], libc::F_SETPIPE_SZ, CHUNK as libc::c_int);
        loop {
            let n = libc::splice(
                src.as_raw_fd(),
                std::ptr::null_mut(),
                fds[1],
                std::ptr::null_mut(),
                CHUNK,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE,
            );
            assert!(n >= 0, "splice in: {}", std::io::Error::last_os_error());
            if n == 0 {
                break;
            }
            let mut left = n;
            while left > 0 {
                let m = libc::splice(
                    fds[0],
                    std::ptr::null_mut(),
                    dst.as_raw_fd(),
                    std::ptr::null_mut(),
                    left as usize,
                    libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE,
                );
                assert!(m > 0, "splice out: {}", std::io::Error::last_os_error());
                left -= m;
            }
        }
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    drop(dst);
}

fn run(name: &str, total: usize, f: fn(TcpStream, TcpStream)) -> (f64, f64) {
    let (src, dst, writer, sink) = pair(total);
    let t0 = Instant::now();
    let c0 = thread_cpu_secs();
    f(src, dst);
    let cpu = thread_cpu_secs() - c0;
    writer.join().expect("writer");
    let got = sink.join().expect("sink");
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(got, total, "{name}: bytes lost");
    let mib = total as f64 / (1024.0 * 1024.0);
    let gib = mib / 1024.0;
    println!(
        "{name:>10}: {:8.1} MiB/s, relay CPU {:.3} s per GiB",
        mib / secs,
        cpu / gib
    );
    (mib / secs, cpu / gib)
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let total = mib * 1024 * 1024;
    for round in 1..=3 {
        println!("round {round}, {mib} MiB");
        run("read/write", total, copy);
        run("splice", total, splice);
    }
}
