//! The `scache` daemon.
fn main() {
    eprintln!("scache: not yet");
}
