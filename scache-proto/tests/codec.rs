//! Property tests of the attr0 codec and the request/reply layer: round
//! trips of arbitrary byte strings (anything but NUL, newlines included),
//! arbitrary chunking, pipelining, limits and resynchronisation.

use proptest::prelude::*;
use scache_proto::attr::{put_attr, put_end, DecodeError, Decoded, Decoder, Limits};
use scache_proto::message::{
    encode_request, parse_request, parse_ttl, parse_unsigned, Request, MAX_TTL,
};

type Msg = Vec<(Vec<u8>, Vec<u8>)>;

/// Any byte but NUL, with newlines and high bytes well represented.
fn non_nul() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => 1u8..=255,
        1 => Just(b'\n'),
        1 => Just(b'*'),
    ]
}

fn string(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(non_nul(), 0..max)
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(non_nul(), 1..12)
}

fn message() -> impl Strategy<Value = Msg> {
    prop::collection::vec((name(), string(40)), 0..8)
}

fn encode(msgs: &[Msg]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        for (n, v) in m {
            put_attr(&mut out, n, v);
        }
        put_end(&mut out);
    }
    out
}

/// One `decode` call as (bytes consumed, outcome once a message ended).
fn decode_step(dec: &mut Decoder, input: &[u8]) -> (usize, Option<Result<(), DecodeError>>) {
    match dec.decode(input) {
        Decoded::Partial => (input.len(), None),
        Decoded::Complete { used, .. } => (used, Some(Ok(()))),
        Decoded::Rejected { used, error } => (used, Some(Err(error))),
    }
}

/// Decodes `input` split at `cuts` (sorted offsets), returning every
/// outcome and whether a partial message remains.
fn decode_split(
    limits: Limits,
    input: &[u8],
    cuts: &[usize],
) -> (Vec<Result<Msg, DecodeError>>, bool) {
    let mut dec = Decoder::new(limits);
    let mut out = Vec::new();
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    bounds.sort_unstable();
    bounds.push(input.len());
    for end in bounds {
        let mut piece = &input[start..end.max(start)];
        start = end.max(start);
        while !piece.is_empty() {
            let (used, done) = decode_step(&mut dec, piece);
            piece = &piece[used..];
            match done {
                None => assert!(piece.is_empty()),
                Some(Ok(())) => out.push(Ok(dec
                    .message()
                    .expect("complete")
                    .iter()
                    .map(|(n, v)| (n.to_vec(), v.to_vec()))
                    .collect())),
                Some(Err(e)) => out.push(Err(e)),
            }
        }
    }
    (out, dec.in_message())
}

fn generous() -> Limits {
    Limits {
        max_name_len: 64,
        max_value_len: 64,
        max_attrs: 16,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_any_chunking(msgs in prop::collection::vec(message(), 1..6),
                               cuts in prop::collection::vec(0usize..2000, 0..12)) {
        let wire = encode(&msgs);
        let (got, partial) = decode_split(generous(), &wire, &cuts);
        prop_assert!(!partial);
        let want: Vec<Result<Msg, DecodeError>> = msgs.iter().cloned().map(Ok).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn round_trip_one_byte_at_a_time(msgs in prop::collection::vec(message(), 1..4)) {
        let wire = encode(&msgs);
        let cuts: Vec<usize> = (1..wire.len()).collect();
        let (got, partial) = decode_split(generous(), &wire, &cuts);
        prop_assert!(!partial);
        prop_assert_eq!(got, msgs.into_iter().map(Ok).collect::<Vec<_>>());
    }

    #[test]
    fn truncated_input_is_partial(msg in message(), cut in 0usize..400) {
        let wire = encode(std::slice::from_ref(&msg));
        let cut = cut % wire.len();
        let (got, partial) = decode_split(generous(), &wire[..cut], &[]);
        prop_assert!(got.is_empty());
        prop_assert_eq!(partial, cut > 0);
    }

    #[test]
    fn limits_reject_whole_message_and_stay_in_sync(
        msgs in prop::collection::vec(
            prop::collection::vec((prop::collection::vec(non_nul(), 1..10), string(12)), 0..6), 1..6),
        max_name_len in 1usize..10, max_value_len in 0usize..12, max_attrs in 0usize..6,
        cuts in prop::collection::vec(0usize..500, 0..6),
    ) {
        let limits = Limits { max_name_len, max_value_len, max_attrs };
        let wire = encode(&msgs);
        let (got, partial) = decode_split(limits, &wire, &cuts);
        prop_assert!(!partial);
        prop_assert_eq!(got.len(), msgs.len());
        for (g, m) in got.iter().zip(&msgs) {
            // The first violation in stream order is reported.
            let mut want: Result<Msg, DecodeError> = Ok(m.clone());
            for (i, (n, v)) in m.iter().enumerate() {
                if n.len() > max_name_len {
                    want = Err(DecodeError::NameTooLong { limit: max_name_len });
                } else if i >= max_attrs {
                    want = Err(DecodeError::TooManyAttributes { limit: max_attrs });
                } else if v.len() > max_value_len {
                    want = Err(DecodeError::ValueTooLong { limit: max_value_len });
                } else {
                    continue;
                }
                break;
            }
            prop_assert_eq!(g, &want);
        }
    }

    #[test]
    fn request_round_trip(ttl in 1u32..=MAX_TTL, a in string(300), b in string(300),
                          c in string(300), which in 0u8..5) {
        let request = match which {
            0 => Request::SaveEndp { ttl, endp: &a, endp_prop: &b },
            1 => Request::FindEndp { endp: &a },
            2 => Request::SaveDest { ttl, dest: &a, dest_prop: &b, endp: &c },
            3 => Request::FindDest { dest: &a },
            _ => Request::Stats,
        };
        let mut wire = Vec::new();
        encode_request(&mut wire, &request).unwrap();
        let mut dec = Decoder::new(Limits::default());
        let (used, done) = decode_step(&mut dec, &wire);
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(done, Some(Ok(())));
        let parsed = parse_request(&dec.message().expect("complete")).unwrap();
        prop_assert_eq!(parsed.request, request);
        prop_assert_eq!(parsed.extra, None);
    }

    #[test]
    fn ttl_accepts_exactly_positive_31_bit(n in any::<u64>(), ws in "[ \t\n\x0b\x0c\r]{0,3}", plus in any::<bool>()) {
        let text = format!("{ws}{}{n}", if plus { "+" } else { "" });
        let want = (1..=u64::from(MAX_TTL)).contains(&n).then_some(n as u32);
        prop_assert_eq!(parse_ttl(text.as_bytes()), want);
        let want = u32::try_from(n).ok();
        prop_assert_eq!(parse_unsigned(text.as_bytes()), want);
        // Trailing anything and a minus sign are always rejected.
        prop_assert_eq!(parse_ttl(format!("{text} ").as_bytes()), None);
        prop_assert_eq!(parse_ttl(format!("-{n}").as_bytes()), None);
    }

    #[test]
    fn decoder_never_panics_and_progresses(input in prop::collection::vec(any::<u8>(), 0..600),
                                           max_name_len in 0usize..8, max_value_len in 0usize..8,
                                           max_attrs in 0usize..4) {
        let limits = Limits { max_name_len, max_value_len, max_attrs };
        let mut dec = Decoder::new(limits);
        let mut rest = &input[..];
        while !rest.is_empty() {
            let (used, done) = decode_step(&mut dec, rest);
            prop_assert!(used <= rest.len());
            if done.is_some() { prop_assert!(used > 0); } else { prop_assert_eq!(used, rest.len()); }
            rest = &rest[used..];
        }
    }
}

#[test]
fn nul_flood_is_a_stream_of_empty_messages() {
    let mut dec = Decoder::new(Limits::default());
    let input = vec![0u8; 10_000];
    let mut rest = &input[..];
    let mut n = 0;
    while !rest.is_empty() {
        let (used, done) = decode_step(&mut dec, rest);
        assert_eq!(used, 1);
        assert_eq!(done, Some(Ok(())));
        assert!(dec.message().expect("complete").is_empty());
        rest = &rest[used..];
        n += 1;
    }
    assert_eq!(n, 10_000);
}

#[test]
fn oversized_value_is_not_buffered() {
    // 10 MiB value against a 64 KiB limit, fed in 4 KiB reads: the decoder
    // never holds more than the limit.
    let mut dec = Decoder::new(Limits::default());
    let mut total = 0usize;
    assert_eq!(
        decode_step(&mut dec, b"request\0save_endp\0ttl\x002\0label\0"),
        (30, None)
    );
    let chunk = vec![b'x'; 4096];
    for _ in 0..(10 << 20) / 4096 {
        let (used, done) = decode_step(&mut dec, &chunk);
        assert_eq!((used, done), (4096, None));
        assert!(
            dec.buffered_len() <= 64 * 1024 + 100,
            "{}",
            dec.buffered_len()
        );
        total += used;
    }
    assert!(total >= 10 << 20);
    let (used, done) = decode_step(
        &mut dec,
        b"\0property\0p\0\0request\0find_endp\0label\0e\0\0",
    );
    assert_eq!(used, 13);
    assert_eq!(
        done,
        Some(Err(DecodeError::ValueTooLong { limit: 64 * 1024 }))
    );
    let (_, done) = decode_step(&mut dec, b"request\0find_endp\0label\0e\0\0");
    assert_eq!(done, Some(Ok(())));
    assert_eq!(
        parse_request(&dec.message().expect("complete"))
            .unwrap()
            .request,
        Request::FindEndp { endp: b"e" }
    );
}

#[test]
fn many_attributes_are_skipped_not_buffered() {
    let mut dec = Decoder::new(Limits::default());
    let mut wire = Vec::new();
    for i in 0..100_000 {
        put_attr(&mut wire, b"a", format!("{i}").as_bytes());
    }
    put_end(&mut wire);
    let (used, done) = decode_step(&mut dec, &wire);
    assert_eq!(used, wire.len());
    assert_eq!(
        done,
        Some(Err(DecodeError::TooManyAttributes { limit: 32 }))
    );
}
