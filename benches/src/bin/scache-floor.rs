//! `scache-floor`: the floor server (see `scache_benches::floor`). Started
//! like Postfix's daemon: `scache-floor -l -t unix -n scache [-o floor_io=epoll|threads]`
//! with the listener on fd 6 and the status channel on fd 5.

fn main() {
    scache_benches::floor::main()
}
