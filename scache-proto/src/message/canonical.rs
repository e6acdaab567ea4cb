//! The server's fast path: requests in the shape Postfix's clients send,
//! read in place (see [`parse_canonical`]). Crate-internal; the benchmark
//! floor reaches it through the `testkit` feature.

use crate::attr::Limits;
use crate::message::{Request, MAX_TTL};

/// A message read by [`parse_canonical`]: the `dummy` sync message, or a
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canonical<'a> {
    /// A `dummy` message (one attribute, `dummy`, with any value).
    Dummy,
    /// A request with exactly its attributes, in order.
    Request(Request<'a>),
}

/// The server's fast path: `input` starts with a whole message in the shape
/// Postfix's clients send (`dummy`, or `save_endp`, `find_endp`,
/// `save_dest` or `find_dest` with exactly their attributes, in order, a
/// TTL of plain digits, within `limits`). Returns the bytes it takes and
/// what it is. Any other input (cut short, over a limit, malformed, another
/// request, an extra attribute, a TTL such as `+5`) gives `None` and nothing
/// else: the caller then takes the general way, [`crate::attr::Decoder`]
/// and [`parse_request`](crate::message::parse_request), which says what is wrong or serves the rare
/// shape. Where both apply they agree (tests in this module check it on
/// every request shape, on every cut, and on random edits).
///
/// Each message starts with a fixed run of names and values
/// (`request\0find_endp\0label\0`), compared in one piece; only labels
/// and properties are searched for their end.
pub fn parse_canonical<'a>(input: &'a [u8], limits: &Limits) -> Option<(usize, Canonical<'a>)> {
    // Every name and request value below fits these limits; tighter ones
    // (tests, odd configurations) take the general way.
    if limits.max_name_len < 8 || limits.max_attrs < 5 || limits.max_value_len < 10 {
        return None;
    }
    let mut r = CanonicalReader {
        input,
        pos: 0,
        max_value_len: limits.max_value_len,
    };
    if r.fixed(b"dummy\0") {
        r.value()?;
        return r.end(Canonical::Dummy);
    }
    let request = if r.fixed(b"request\0save_endp\0ttl\0") {
        let ttl = r.ttl()?;
        r.expect(b"label\0")?;
        let endp = r.value()?;
        r.expect(b"property\0")?;
        let endp_prop = r.value()?;
        Request::SaveEndp {
            ttl,
            endp,
            endp_prop,
        }
    } else if r.fixed(b"request\0find_endp\0label\0") {
        Request::FindEndp { endp: r.value()? }
    } else if r.fixed(b"request\0save_dest\0ttl\0") {
        let ttl = r.ttl()?;
        r.expect(b"label\0")?;
        let dest = r.value()?;
        r.expect(b"property\0")?;
        let dest_prop = r.value()?;
        r.expect(b"label\0")?;
        let endp = r.value()?;
        Request::SaveDest {
            ttl,
            dest,
            dest_prop,
            endp,
        }
    } else if r.fixed(b"request\0find_dest\0label\0") {
        Request::FindDest { dest: r.value()? }
    } else {
        return None;
    };
    r.end(Canonical::Request(request))
}

/// The cursor of [`parse_canonical`].
struct CanonicalReader<'a> {
    input: &'a [u8],
    pos: usize,
    max_value_len: usize,
}

impl<'a> CanonicalReader<'a> {
    /// Takes `bytes` if they come next.
    #[inline(always)]
    fn fixed(&mut self, bytes: &[u8]) -> bool {
        let found = self.input[self.pos..].starts_with(bytes);
        if found {
            self.pos += bytes.len();
        }
        found
    }

    /// [`fixed`](Self::fixed), as an `Option` for `?`.
    #[inline(always)]
    fn expect(&mut self, bytes: &[u8]) -> Option<()> {
        self.fixed(bytes).then_some(())
    }

    /// Takes a value and its NUL (within the limit).
    #[inline(always)]
    fn value(&mut self) -> Option<&'a [u8]> {
        let rest = &self.input[self.pos..];
        let len = crate::attr::find_nul(rest)?;
        if len > self.max_value_len {
            return None;
        }
        self.pos += len + 1;
        Some(&rest[..len])
    }

    /// Takes a TTL of 1 to 10 plain digits and its NUL, 1 ..= [`MAX_TTL`].
    #[inline(always)]
    fn ttl(&mut self) -> Option<u32> {
        let mut ttl: u64 = 0;
        for (i, &b) in self.input[self.pos..].iter().enumerate().take(11) {
            if b == 0 {
                if i == 0 || ttl == 0 || ttl > u64::from(MAX_TTL) {
                    return None;
                }
                self.pos += i + 1;
                return Some(ttl as u32);
            }
            if !b.is_ascii_digit() {
                return None;
            }
            ttl = ttl * 10 + u64::from(b - b'0');
        }
        None
    }

    /// Takes the terminator (an empty name), ending the message with
    /// `what`.
    #[inline(always)]
    fn end(self, what: Canonical<'a>) -> Option<(usize, Canonical<'a>)> {
        (self.input.get(self.pos) == Some(&0)).then_some((self.pos + 1, what))
    }
}

/// The fast path agrees with the general way wherever it applies.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::{put_attr, put_end, Printable};
    use crate::attr::{Decoded, Decoder};
    use crate::message::{is_dummy, parse_request};
    use proptest::prelude::*;

    /// What the general way makes of the message at the start of `input`
    /// (bytes used, and `Canonical`'s debug text), if a whole, valid one
    /// comes first. A dummy counts whatever follows its first attribute,
    /// a request only without extra attributes.
    fn general(input: &[u8], limits: Limits) -> Option<(usize, String)> {
        let mut decoder = Decoder::new(limits);
        let Decoded::Complete { used, message } = decoder.decode(input) else {
            return None;
        };
        if is_dummy(&message) {
            return Some((used, format!("{:?}", Canonical::Dummy)));
        }
        let parsed = parse_request(&message).ok()?;
        parsed
            .extra
            .is_none()
            .then(|| (used, format!("{:?}", Canonical::Request(parsed.request))))
    }

    fn fast(input: &[u8], limits: Limits) -> Option<(usize, String)> {
        parse_canonical(input, &limits).map(|(n, c)| (n, format!("{c:?}")))
    }

    fn wire(attrs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in attrs {
            put_attr(&mut out, name, value);
        }
        put_end(&mut out);
        out
    }

    /// What Postfix's clients send: every shape is taken by the fast path,
    /// with the same result as the general way, and no cut of it is.
    #[test]
    fn client_shapes_take_the_fast_path() {
        let label: &[u8] = b"smtp\n10.0.0.1\n25\nmay\n0\n*\n";
        let prop: &[u8] = b"tls_level=may\nreuse_count=1\n";
        let shapes: Vec<Vec<u8>> = vec![
            wire(&[(b"dummy", b"")]),
            wire(&[
                (b"request", b"save_endp"),
                (b"ttl", b"3600"),
                (b"label", label),
                (b"property", prop),
            ]),
            wire(&[(b"request", b"find_endp"), (b"label", label)]),
            wire(&[
                (b"request", b"save_dest"),
                (b"ttl", b"1"),
                (b"label", b"smtp:example.com:1:25"),
                (b"property", b"10.0.0.1"),
                (b"label", label),
            ]),
            wire(&[
                (b"request", b"find_dest"),
                (b"label", b"smtp:example.com:1:25"),
            ]),
        ];
        let limits = Limits::default();
        for shape in &shapes {
            let mut with_next = shape.clone();
            with_next.extend_from_slice(b"dummy\0\0\0");
            for input in [shape, &with_next] {
                let got = fast(input, limits);
                assert!(got.is_some(), "not taken: {:?}", Printable(input));
                assert_eq!(got, general(input, limits));
                assert_eq!(got.unwrap().0, shape.len());
            }
            for cut in 0..shape.len() {
                assert_eq!(fast(&shape[..cut], limits), None, "cut at {cut}");
            }
        }
    }

    #[test]
    fn limits_send_it_the_general_way() {
        let msg = wire(&[(b"request", b"find_endp"), (b"label", b"0123456789ab")]);
        let tight = |max_name_len, max_value_len, max_attrs| Limits {
            max_name_len,
            max_value_len,
            max_attrs,
        };
        assert!(fast(&msg, tight(8, 12, 5)).is_some());
        assert_eq!(fast(&msg, tight(7, 12, 5)), None, "names over");
        assert_eq!(fast(&msg, tight(8, 11, 5)), None, "value over");
        assert_eq!(fast(&msg, tight(8, 12, 4)), None, "attributes over");
    }

    #[test]
    fn ttl_forms() {
        let save = |ttl: &[u8]| {
            wire(&[
                (b"request", b"save_endp"),
                (b"ttl", ttl),
                (b"label", b"e"),
                (b"property", b"p"),
            ])
        };
        let limits = Limits::default();
        for ttl in [&b"1"[..], b"2147483647", b"0000000300"] {
            let msg = save(ttl);
            assert!(fast(&msg, limits).is_some(), "{:?}", Printable(ttl));
            assert_eq!(fast(&msg, limits), general(&msg, limits));
        }
        // Out of range, or another syntax: the general way decides.
        for ttl in [
            &b""[..],
            b"0",
            b"2147483648",
            b"99999999999",
            b"+5",
            b" 5",
            b"5x",
        ] {
            assert_eq!(fast(&save(ttl), limits), None, "{:?}", Printable(ttl));
        }
    }

    fn part() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"request".to_vec()),
            Just(b"dummy".to_vec()),
            Just(b"ttl".to_vec()),
            Just(b"label".to_vec()),
            Just(b"property".to_vec()),
            Just(b"limit".to_vec()),
            Just(b"save_endp".to_vec()),
            Just(b"find_endp".to_vec()),
            Just(b"save_dest".to_vec()),
            Just(b"find_dest".to_vec()),
            Just(b"stats".to_vec()),
            Just(b"3600".to_vec()),
            Just(b"0".to_vec()),
            Just(b" +7".to_vec()),
            Just(b"4294967296".to_vec()),
            Just(b"2147483647".to_vec()),
            Just(b"2147483648".to_vec()),
            Just(b"007".to_vec()),
            Just(Vec::new()),
            proptest::collection::vec(1u8..=255, 0..24),
        ]
    }

    proptest! {
        // Cheap cases; enough of them that edits hit every slot.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Strings from the protocol's vocabulary, NUL-separated, cut
        /// anywhere, under random limits: whenever the fast path takes a
        /// message, the general way takes the same bytes as the same thing.
        #[test]
        fn agrees_with_the_general_way(
            shape in 0usize..6,
            values in proptest::collection::vec("[a-z]{0,20}", 4),
            ttl in prop_oneof![
                Just("3600"), Just("1"), Just("0"), Just("007"), Just("2147483647"),
                Just("2147483648"), Just("99999999999"), Just("+5"), Just(" 5"), Just(""),
            ],
            edits in proptest::collection::vec((0usize..3, any::<prop::sample::Index>(), part()), 0..3),
            extra_nul in any::<bool>(),
            cut in proptest::option::of(any::<prop::sample::Index>()),
            max_name_len in 6usize..10,
            max_value_len in 8usize..16,
            max_attrs in 3usize..7,
        ) {
            // A client's shape (or random parts), with random values, then
            // a few edits: a part replaced, inserted or removed.
            let [a, p, d, v] = [0, 1, 2, 3].map(|i| values[i].as_bytes());
            let ttl = ttl.as_bytes();
            let shapes: [&[&[u8]]; 5] = [
                &[b"dummy", v],
                &[b"request", b"save_endp", b"ttl", ttl, b"label", a, b"property", p],
                &[b"request", b"find_endp", b"label", a],
                &[b"request", b"save_dest", b"ttl", ttl, b"label", d, b"property", p, b"label", a],
                &[b"request", b"find_dest", b"label", d],
            ];
            let mut parts: Vec<Vec<u8>> = match shapes.get(shape) {
                Some(s) => s.iter().map(|p| p.to_vec()).collect(),
                None => edits.iter().map(|(_, _, p)| p.clone()).collect(),
            };
            for (op, at, p) in edits {
                let i = at.index(parts.len() + 1);
                match op {
                    0 if i < parts.len() => parts[i] = p,
                    1 => parts.insert(i, p),
                    _ if i < parts.len() => { parts.remove(i); }
                    _ => {}
                }
            }
            parts.push(Vec::new());
            let mut input = Vec::new();
            for p in &parts {
                input.extend_from_slice(p);
                input.push(0);
            }
            if extra_nul {
                input.push(0);
            }
            let input = match cut {
                Some(cut) => &input[..cut.index(input.len() + 1)],
                None => &input[..],
            };
            let limits = Limits { max_name_len, max_value_len, max_attrs };
            if let Some(got) = fast(input, limits) {
                prop_assert_eq!(Some(got), general(input, limits));
            }
        }
    }
}
