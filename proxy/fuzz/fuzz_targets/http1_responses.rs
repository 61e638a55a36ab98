//! Arbitrary bytes as a server's responses on one pooled connection, read by the hand-written
//! HTTP/1 response side (head parsing, 1xx, framing, chunked decoding) in arbitrary reads, as
//! answers to GETs, HEADs or CONNECTs (a 2xx to CONNECT ends at its head).
//! Any panic is a bug: a parser assertion, a precheck that refuses what the decoder accepts,
//! or framing that depends on where the reads split the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: bit 0 HEAD, bit 1 CONNECT (wins); the read sizes (1..=16, from the next 4
    // bytes' nibbles).
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (cuts, stream) = rest.split_at(rest.len().min(4));
    let reads: Vec<usize> = cuts
        .iter()
        .flat_map(|b| [usize::from(b & 0x0f) + 1, usize::from(b >> 4) + 1])
        .collect();
    let reads = if reads.is_empty() { vec![1] } else { reads };
    if flags & 2 == 2 {
        proxy::fuzzing::http1_connect_responses(stream, &reads);
    } else {
        proxy::fuzzing::http1_responses(stream, &reads, flags & 1 == 1);
    }
});
