//! The PROXY protocol parser and encoder against the specification's
//! examples, every field, truncations and malformations.

use super::*;

fn v1(line: &str) -> Result<Option<Header>, ProxyError> {
    parse(line.as_bytes())
}

fn addrs(h: Header) -> (String, String) {
    let a = h.addresses.expect("addresses");
    (a.source.to_string(), a.destination.to_string())
}

#[test]
fn v1_tcp4_and_tcp6_every_field() {
    let h = v1("PROXY TCP4 255.255.255.255 10.0.0.1 65535 0\r\nrest")
        .unwrap()
        .unwrap();
    assert_eq!(h.version, ProxyVersion::V1);
    assert_eq!(
        h.len,
        "PROXY TCP4 255.255.255.255 10.0.0.1 65535 0\r\n".len()
    );
    assert_eq!(
        addrs(h),
        ("255.255.255.255:65535".into(), "10.0.0.1:0".into())
    );
    let h = v1("PROXY TCP6 2001:db8::1 ::1 1 443\r\n").unwrap().unwrap();
    assert_eq!(addrs(h), ("[2001:db8::1]:1".into(), "[::1]:443".into()));
    let h = v1("PROXY UNKNOWN\r\n").unwrap().unwrap();
    assert_eq!((h.len, h.addresses), (15, None));
    let h = v1("PROXY UNKNOWN ffff::1 ::2 1 2\r\n").unwrap().unwrap();
    assert_eq!(h.addresses, None);
}

#[test]
fn v1_longest_line_is_accepted() {
    let line = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(line.len(), 104);
    assert!(v1(line).unwrap().is_some());
    // UNKNOWN with padding up to exactly 107 bytes.
    let mut line = String::from("PROXY UNKNOWN ");
    line.push_str(&"x".repeat(V1_MAX - line.len() - 2));
    line.push_str("\r\n");
    assert_eq!(line.len(), V1_MAX);
    assert_eq!(v1(&line).unwrap().unwrap().len, V1_MAX);
    // A CR as the 107th byte leaves no room for the LF.
    let mut cr_last = String::from("PROXY UNKNOWN ");
    cr_last.push_str(&"x".repeat(V1_MAX - cr_last.len() - 1));
    cr_last.push('\r');
    assert_eq!(cr_last.len(), V1_MAX);
    assert_eq!(v1(&cr_last), Err(ProxyError::V1TooLong));
    assert_eq!(v1(&format!("{cr_last}\n")), Err(ProxyError::V1TooLong));
    let longer = line.replacen("UNKNOWN ", "UNKNOWN xx", 1);
    assert_eq!(v1(&longer), Err(ProxyError::V1TooLong));
}

#[test]
fn v1_truncated_is_partial_at_every_length() {
    let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    for n in 0..line.len() {
        assert_eq!(parse(&line[..n]), Ok(None), "{n} bytes");
    }
    assert!(parse(line).unwrap().is_some());
}

#[test]
fn v1_malformed_lines_are_refused() {
    for (line, want) in [
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            ProxyError::V1("line end"),
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx",
            ProxyError::V1("line end"),
        ),
        (
            "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            ProxyError::V1("protocol"),
        ),
        (
            "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            ProxyError::V1("protocol"),
        ),
        ("PROXY UNKNOWNX\r\n", ProxyError::V1("protocol")),
        ("PROXY UNKNOWN 0h\n\r\n", ProxyError::V1("line end")),
        (
            "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            ProxyError::V1("source address"),
        ),
        (
            "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
            ProxyError::V1("source address"),
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7 1 2\r\n",
            ProxyError::V1("destination address"),
        ),
        (
            "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            ProxyError::V1("source address"),
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            ProxyError::V1("source port"),
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            ProxyError::V1("source port"),
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            ProxyError::V1("source port"),
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n",
            ProxyError::V1("destination port"),
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            ProxyError::V1("destination port"),
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            ProxyError::V1("trailing field"),
        ),
        (
            "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            ProxyError::V1("source address"),
        ),
        (
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            ProxyError::V1("trailing field"),
        ),
        ("PROXY\r\n", ProxyError::NotProxy),
        ("PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n", ProxyError::NotProxy),
        ("GET / HTTP/1.1\r\n", ProxyError::NotProxy),
        ("\x16\x03\x01\x02\x00", ProxyError::NotProxy),
    ] {
        assert_eq!(v1(line), Err(want), "{line:?}");
    }
    let long = format!("PROXY TCP4 {}", "1".repeat(200));
    assert_eq!(v1(&long), Err(ProxyError::V1TooLong));
}

/// A v2 header: signature, version/command, family, length, block.
fn v2(ver_cmd: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(ver_cmd);
    out.push(family);
    out.extend_from_slice(&(block.len() as u16).to_be_bytes());
    out.extend_from_slice(block);
    out
}

#[test]
fn v2_inet_inet6_local_unspec_and_tlvs() {
    let block = [192, 0, 2, 1, 198, 51, 100, 2, 0x13, 0x88, 0, 80];
    let h = parse(&v2(0x21, 0x11, &block)).unwrap().unwrap();
    assert_eq!((h.len, h.version), (28, ProxyVersion::V2));
    assert_eq!(
        addrs(h),
        ("192.0.2.1:5000".into(), "198.51.100.2:80".into())
    );
    // TLVs after the addresses are skipped with the block.
    let mut with_tlv = block.to_vec();
    with_tlv.extend_from_slice(&[0x05, 0x00, 0x03, b'a', b'b', b'c']);
    let mut bytes = v2(0x21, 0x11, &with_tlv);
    bytes.extend_from_slice(b"GET /");
    let h = parse(&bytes).unwrap().unwrap();
    assert_eq!(h.len, 16 + with_tlv.len());
    let mut block6 = [0u8; 36];
    block6[15] = 1;
    block6[16] = 0x20;
    block6[17] = 0x01;
    block6[31] = 2;
    block6[32..36].copy_from_slice(&[0, 1, 1, 187]);
    let h = parse(&v2(0x21, 0x21, &block6)).unwrap().unwrap();
    assert_eq!(addrs(h), ("[::1]:1".into(), "[2001::2]:443".into()));
    // LOCAL: the connection's own addresses, whatever the family says.
    let h = parse(&v2(0x20, 0x11, &block)).unwrap().unwrap();
    assert_eq!((h.len, h.addresses), (28, None));
    let h = parse(&v2(0x20, 0x00, &[])).unwrap().unwrap();
    assert_eq!((h.len, h.addresses), (16, None));
    // PROXY with UNSPEC or a UNIX socket: no usable addresses.
    assert_eq!(
        parse(&v2(0x21, 0x00, &[])).unwrap().unwrap().addresses,
        None
    );
    assert_eq!(
        parse(&v2(0x21, 0x31, &[0; 216]))
            .unwrap()
            .unwrap()
            .addresses,
        None
    );
}

#[test]
fn v2_truncated_is_partial_at_every_length() {
    let bytes = v2(0x21, 0x11, &[10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2]);
    for n in 0..bytes.len() {
        assert_eq!(parse(&bytes[..n]), Ok(None), "{n} bytes");
    }
}

#[test]
fn v2_malformed_headers_are_refused() {
    let block = [10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2];
    assert_eq!(
        parse(&v2(0x11, 0x11, &block)),
        Err(ProxyError::V2Version(1))
    );
    assert_eq!(
        parse(&v2(0x31, 0x11, &block)),
        Err(ProxyError::V2Version(3))
    );
    assert_eq!(
        parse(&v2(0x22, 0x11, &block)),
        Err(ProxyError::V2Command(2))
    );
    assert_eq!(
        parse(&v2(0x21, 0x12, &block)),
        Err(ProxyError::V2Family(0x12))
    );
    assert_eq!(
        parse(&v2(0x21, 0x41, &block)),
        Err(ProxyError::V2Family(0x41))
    );
    assert_eq!(
        parse(&v2(0x21, 0x11, &block[..11])),
        Err(ProxyError::V2Short(11))
    );
    assert_eq!(
        parse(&v2(0x21, 0x21, &[0; 35])),
        Err(ProxyError::V2Short(35))
    );
    // Refused as soon as the length is known, before the block arrives.
    let mut huge = v2(0x21, 0x11, &block);
    huge[14..16].copy_from_slice(&5000u16.to_be_bytes());
    assert_eq!(parse(&huge[..16]), Err(ProxyError::V2TooLong(5016)));
    let mut sig = V2_SIGNATURE.to_vec();
    sig[11] = b'X';
    assert_eq!(parse(&sig), Err(ProxyError::NotProxy));
    assert_eq!(parse(b"\r\n\r\nGET"), Err(ProxyError::NotProxy));
}

#[test]
fn encode_then_parse_gives_the_same_addresses() {
    let cases = [
        ("192.0.2.1:5000", "198.51.100.2:80"),
        ("[2001:db8::7]:65535", "[::1]:443"),
        ("192.0.2.1:1", "[2001:db8::1]:2"),
        ("[::ffff:10.0.0.1]:3", "10.0.0.2:4"),
    ];
    for (src, dst) in cases {
        let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        for version in [ProxyVersion::V1, ProxyVersion::V2] {
            let mut out = [0u8; MAX_ENCODED];
            let n = encode(version, src, dst, &mut out);
            let h = parse(&out[..n]).unwrap().unwrap();
            assert_eq!((h.len, h.version), (n, version));
            let a = h.addresses.unwrap();
            let (ws, wd) = same_family(src.ip(), dst.ip());
            assert_eq!(a.source, SocketAddr::new(ws, src.port()));
            assert_eq!(a.destination, SocketAddr::new(wd, dst.port()));
        }
    }
}
