//! The HTTP/2 frame layer's parsers on any bytes: the input read as a
//! sequence of frames (`http2::frame`: heads, padding, priority fields,
//! SETTINGS payloads) whose header blocks go through one HPACK decoder
//! (`http2::hpack`), as the session does. Nothing may panic, and every
//! decoded field is bounded by its block (or by the dynamic table). The
//! Huffman code is checked both ways: what the decoder accepts has exactly
//! one encoding, the input itself; and whatever is encoded decodes back.
#![no_main]

use ktcpvs_net::http2::frame::{self, kind, FrameHead, HEAD_LEN};
use ktcpvs_net::http2::hpack::{huffman_decode, huffman_encode, Decoder, TABLE_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut plain = Vec::new();
    if huffman_decode(data, &mut plain).is_ok() {
        let mut again = Vec::new();
        huffman_encode(&plain, &mut again);
        assert_eq!(again, data, "a Huffman string has one encoding");
    }
    let mut coded = Vec::new();
    huffman_encode(data, &mut coded);
    let mut back = Vec::new();
    huffman_decode(&coded, &mut back).expect("an encoded string decodes");
    assert_eq!(back, data);

    let mut decoder = Decoder::new();
    let mut at = 0;
    while let Some(head) = FrameHead::parse(&data[at..]) {
        let end = at + HEAD_LEN + head.len as usize;
        let Some(payload) = data.get(at + HEAD_LEN..end) else {
            break;
        };
        match head.kind {
            kind::HEADERS | kind::CONTINUATION => {
                let block = if head.kind == kind::HEADERS {
                    frame::header_block(head.flags, payload)
                } else {
                    Ok(payload)
                };
                if let Ok(block) = block {
                    let bound = (block.len() * 8 / 5 + 1).max(TABLE_SIZE);
                    let _ = decoder.decode(block, |name, value| {
                        assert!(name.len() <= bound && value.len() <= bound);
                    });
                }
            }
            kind::DATA => {
                if let Ok(data) = frame::unpad(head.flags, payload) {
                    assert!(data.len() < payload.len() || head.flags & frame::flag::PADDED == 0);
                }
            }
            kind::SETTINGS => {
                if let Ok(settings) = frame::settings(payload) {
                    assert_eq!(settings.count(), payload.len() / 6);
                }
            }
            _ => {}
        }
        at = end;
    }
});
