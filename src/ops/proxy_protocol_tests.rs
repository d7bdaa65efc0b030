//! Byte-exact PROXY protocol headers, after HAProxy's proxy-protocol.txt.

use super::*;
use proptest::prelude::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(ver_cmd);
    h.push(fam);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

/// 192.168.0.1:56324 -> 192.168.0.11:443, the spec's v1 example, in v2.
const V2_TCP4: [u8; 28] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // signature
    0x21, // version 2, PROXY
    0x11, // AF_INET, STREAM
    0x00, 0x0C, // 12 bytes of addresses
    0xC0, 0xA8, 0x00, 0x01, // 192.168.0.1
    0xC0, 0xA8, 0x00, 0x0B, // 192.168.0.11
    0xDC, 0x04, // 56324
    0x01, 0xBB, // 443
];

fn v2_tcp6_with_tlvs() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    body.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
    body.extend_from_slice(&[0x13, 0x88, 0x13, 0x8A]); // 5000 -> 5002
    body.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0]); // PP2_TYPE_NOOP, 3 bytes
    body.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']); // PP2_TYPE_ALPN "h2"
    let h = v2(0x21, 0x21, &body);
    assert_eq!(h.len(), 16 + 36 + 6 + 5);
    h
}

const V1_TCP4: &[u8] = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
const V1_TCP6: &[u8] = b"PROXY TCP6 2001:db8::1 2001:db8::2 5000 5002\r\n";
const V1_UNKNOWN_LONGEST: &[u8] = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

fn done(consumed: usize, source: Option<&str>) -> Parsed {
    Parsed::Done {
        consumed,
        source: source.map(sa),
    }
}

/// Every strict prefix needs more, the whole header is `want`, and the
/// client's bytes after it are left alone.
fn assert_split_byte_by_byte(header: &[u8], want: Parsed) {
    for k in 0..header.len() {
        assert_eq!(parse(&header[..k]), Parsed::NeedMore, "prefix of {k} bytes");
    }
    assert_eq!(parse(header), want);
    let mut with_data = header.to_vec();
    with_data.extend_from_slice(b"\x00\x00\x00\x10Aiya!\r\nPROXY TCP4 ");
    assert_eq!(parse(&with_data), want);
}

#[test]
fn v1_tcp4() {
    assert_split_byte_by_byte(V1_TCP4, done(V1_TCP4.len(), Some("192.168.0.1:56324")));
}

#[test]
fn v1_tcp6() {
    assert_split_byte_by_byte(V1_TCP6, done(V1_TCP6.len(), Some("[2001:db8::1]:5000")));
}

#[test]
fn v1_unknown_has_no_source() {
    assert_split_byte_by_byte(b"PROXY UNKNOWN\r\n", done(15, None));
    assert_eq!(V1_UNKNOWN_LONGEST.len(), MAX_V1_HEADER);
    assert_split_byte_by_byte(V1_UNKNOWN_LONGEST, done(MAX_V1_HEADER, None));
}

#[test]
fn v2_tcp4() {
    assert_split_byte_by_byte(&V2_TCP4, done(28, Some("192.168.0.1:56324")));
}

#[test]
fn v2_tcp6_skips_tlvs() {
    let h = v2_tcp6_with_tlvs();
    assert_split_byte_by_byte(&h, done(h.len(), Some("[2001:db8::1]:5000")));
}

#[test]
fn v2_local_and_unspec_keep_the_socket_peer() {
    // LOCAL: a health check from the balancer itself; family ignored
    let local = [&V2_SIGNATURE[..], &[0x20, 0x00, 0x00, 0x00]].concat();
    assert_split_byte_by_byte(&local, done(16, None));
    let local_with_addr = v2(0x20, 0x11, &V2_TCP4[16..]);
    assert_eq!(parse(&local_with_addr), done(28, None));
    // PROXY with AF_UNSPEC, and AF_UNIX (216 bytes of paths)
    assert_eq!(parse(&v2(0x21, 0x00, b"")), done(16, None));
    assert_eq!(parse(&v2(0x21, 0x31, &[0u8; 216])), done(232, None));
}

#[test]
fn v4_mapped_source_is_reported_as_sent() {
    // the glue canonicalises for limits; the parser reports the header
    let h = b"PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n";
    assert_eq!(parse(h), done(h.len(), Some("[::ffff:10.0.0.1]:1")));
}

/// Every prefix before byte `bad_at` needs more; from it on, invalid.
fn assert_invalid_from(header: &[u8], bad_at: usize) {
    for k in 0..bad_at {
        assert_eq!(parse(&header[..k]), Parsed::NeedMore, "prefix of {k} bytes");
    }
    for k in bad_at + 1..=header.len() {
        assert!(
            matches!(parse(&header[..k]), Parsed::Invalid(_)),
            "prefix of {k} bytes: {:?}",
            parse(&header[..k])
        );
    }
}

#[test]
fn v1_malformed() {
    // the game protocol's first frame is refused on its first byte
    assert_invalid_from(b"\x1a\x00\x00\x00<PROTOCOL>1", 0);
    assert_invalid_from(b"PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 4);
    assert_invalid_from(b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 9);
    assert_invalid_from(b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", 11);
    assert_invalid_from(b"PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n", 18);
    assert_invalid_from(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", 31);
    for bad in [
        &b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"[..],
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",
        b"PROXY TCP4\r\n",
        b"PROXY \r\n",
        b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
    ] {
        assert!(
            matches!(parse(bad), Parsed::Invalid(_)),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn v1_longer_than_107_bytes_is_invalid() {
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(MAX_V1_HEADER, b'x');
    assert!(matches!(
        parse(&long[..MAX_V1_HEADER - 1]),
        Parsed::NeedMore
    ));
    assert!(matches!(parse(&long), Parsed::Invalid(_)));
    long.extend_from_slice(b"\r\n");
    assert!(
        matches!(parse(&long), Parsed::Invalid(_)),
        "CRLF at 108 is too late"
    );
}

#[test]
fn v2_malformed() {
    let mut bad_sig = V2_TCP4;
    bad_sig[7] = b'q';
    assert_invalid_from(&bad_sig, 7);
    for (byte, value) in [
        (12, 0x11), // version 1
        (12, 0x31), // version 3
        (12, 0x22), // command 2
        (13, 0x41), // family 4
        (13, 0x13), // transport 3
        (13, 0x12), // UDP4
        (15, 0x0B), // 11 bytes: too short for AF_INET
    ] {
        let mut h = V2_TCP4;
        h[byte] = value;
        assert_invalid_from(&h, byte);
    }
    let short6 = v2(0x21, 0x21, &[0u8; 35]);
    assert_invalid_from(&short6, 15);
    let short_unix = v2(0x21, 0x31, &[0u8; 215]);
    assert_invalid_from(&short_unix, 15);
    // a length beyond the accepted bound is refused before its bytes arrive
    let mut huge = V2_TCP4.to_vec();
    huge[14] = 0xFF;
    huge[15] = 0xFF;
    assert_invalid_from(&huge[..16], 15);
    let at_bound = v2(0x21, 0x11, &vec![0u8; MAX_V2_HEADER - 16]);
    assert!(matches!(
        parse(&at_bound),
        Parsed::Done {
            consumed: MAX_V2_HEADER,
            ..
        }
    ));
    let over = v2(0x21, 0x11, &vec![0u8; MAX_V2_HEADER - 15]);
    assert!(matches!(parse(&over[..16]), Parsed::Invalid(_)));
}

#[test]
fn trusted_sources() {
    let t = TrustedSources::parse("10.0.0.0/8, 192.0.2.1,2001:db8::/32").unwrap();
    assert_eq!(t.networks().len(), 3);
    let yes = ["10.1.2.3", "::ffff:10.1.2.3", "192.0.2.1", "2001:db8::7"];
    let no = ["11.0.0.1", "192.0.2.2", "2001:db9::1", "::1", "127.0.0.1"];
    for ip in yes {
        assert!(t.contains(ip.parse().unwrap()), "{ip}");
    }
    for ip in no {
        assert!(!t.contains(ip.parse().unwrap()), "{ip}");
    }
    assert!(TrustedSources::default().is_empty());
    for bad in ["", "10.0.0.0/8,", "10.0.0.0/40", "lb.example"] {
        assert!(TrustedSources::parse(bad).is_err(), "{bad:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes never panic, a Done stays within the buffer and the
    /// bounds, and a verdict never changes as more bytes arrive.
    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300), cut in 0usize..300) {
        let whole = parse(&bytes);
        if let Parsed::Done { consumed, .. } = whole {
            prop_assert!(consumed <= bytes.len());
            prop_assert!(consumed <= MAX_V2_HEADER);
        }
        let cut = cut.min(bytes.len());
        match parse(&bytes[..cut]) {
            Parsed::NeedMore => {}
            early => prop_assert_eq!(early, whole),
        }
    }

    /// The same for inputs that start like a header, which random bytes
    /// almost never do.
    #[test]
    fn header_like_bytes(
        v2_head in any::<bool>(),
        tail in prop::collection::vec(any::<u8>(), 0..200),
        cut in 0usize..220,
    ) {
        let mut bytes = if v2_head { V2_SIGNATURE.to_vec() } else { b"PROXY TCP4 1".to_vec() };
        bytes.extend_from_slice(&tail);
        let whole = parse(&bytes);
        let cut = cut.min(bytes.len());
        match parse(&bytes[..cut]) {
            Parsed::NeedMore => {}
            early => prop_assert_eq!(early, whole),
        }
    }
}

/// A header HAProxy wrote (`send-proxy-v2`) in front of an HTTP request,
/// as captured with netcat: 172.19.0.1:42578 -> 172.19.0.3:80.
#[test]
fn v2_as_haproxy_sends_it() {
    let captured = [
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00,
        0x0c, 0xac, 0x13, 0x00, 0x01, 0xac, 0x13, 0x00, 0x03, 0xa6, 0x52, 0x00, 0x50, b'G', b'E',
        b'T', b' ', b'/',
    ];
    assert_eq!(parse(&captured), done(28, Some("172.19.0.1:42578")));
    assert_split_byte_by_byte(&captured[..28], done(28, Some("172.19.0.1:42578")));
}
