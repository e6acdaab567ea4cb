//! scache-proto: the wire protocol (skeleton; the protocol work fills it in).
