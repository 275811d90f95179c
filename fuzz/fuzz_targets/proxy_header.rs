//! The PROXY protocol header parser (`ktcpvs_net::proxy_protocol::parse`)
//! on arbitrary bytes: it never panics; a complete header never claims
//! more bytes than it was given or than `MAX_HEADER`; every proper prefix
//! of a complete header is "need more", never a different answer; and the
//! addresses it reads, encoded again in either version, parse back equal.
#![no_main]

use ktcpvs_core::model::ProxyVersion;
use ktcpvs_net::proxy_protocol::{encode, parse, MAX_ENCODED, MAX_HEADER};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(header)) = parse(data) else {
        return;
    };
    assert!(header.len <= data.len() && header.len <= MAX_HEADER);
    for n in 0..header.len {
        assert_eq!(parse(&data[..n]), Ok(None), "prefix of {n} bytes");
    }
    assert_eq!(parse(&data[..header.len]), Ok(Some(header)));
    if let Some(a) = header.addresses {
        for version in [ProxyVersion::V1, ProxyVersion::V2] {
            let mut out = [0u8; MAX_ENCODED];
            let n = encode(version, a.source, a.destination, &mut out);
            let back = parse(&out[..n]).expect("own header").expect("complete");
            let b = back.addresses.expect("addresses");
            assert_eq!(
                (b.source.port(), b.destination.port()),
                (a.source.port(), a.destination.port())
            );
        }
    }
});
