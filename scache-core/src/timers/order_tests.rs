//! The ordered map's representation: a sorted vector while small, a
//! BTreeMap past `Order::PROMOTE` entries (so that every operation stays
//! O(log k) with many TTLs or put-backs), and back below `Order::DEMOTE`.
//! Written to pin what cargo-mutants found untested (see docs/testing.md).

use super::*;

fn key(i: u64) -> Key {
    (Instant::from_millis(i), i)
}

#[test]
fn the_order_is_a_vector_until_it_outgrows_promote_then_a_tree_until_below_demote() {
    let mut order = Order::default();
    for i in 0..Order::PROMOTE as u64 {
        order.insert(key(i), Slot::Queue(i as u32));
        assert!(matches!(order, Order::Small(_)), "{} entries", i + 1);
    }
    order.insert(key(1_000), Slot::Queue(1_000));
    assert!(matches!(order, Order::Large(_)));
    assert_eq!(order.len(), Order::PROMOTE + 1);
    assert_eq!(order.first(), Some((&key(0), &Slot::Queue(0))));
    // Removing down to DEMOTE entries keeps the tree; one fewer demotes.
    let mut n = Order::PROMOTE as u64 + 1;
    for i in 0..Order::PROMOTE as u64 {
        if n == Order::DEMOTE as u64 {
            break;
        }
        order.remove(&key(i));
        n -= 1;
        let small = (n as usize) < Order::DEMOTE;
        assert_eq!(matches!(order, Order::Small(_)), small, "{n} entries");
    }
    order.remove(&key(Order::PROMOTE as u64 - Order::DEMOTE as u64 + 1));
    assert!(matches!(order, Order::Small(_)));
    assert_eq!(order.len(), Order::DEMOTE - 1);
}
