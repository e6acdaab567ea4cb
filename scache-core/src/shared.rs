//! A [`MultiCache`] that many threads and async tasks share.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cache::{CacheSize, ConnectionCache, FoundDest, FoundEndp};
use crate::clock::{Clock, MonotonicClock};
use crate::departure::{Departure, Liveness};
use crate::error::CacheError;
use crate::limits::Limits;
use crate::multi::MultiCache;
use crate::stats::Stats;

/// The departure hook of a [`SharedCache`].
type Hook<F> = Arc<dyn Fn(Departure<F>) + Send + Sync>;

/// The longest the background expiry thread sleeps between two looks at
/// the cache, whatever the clock says: a session is dropped at most this
/// long after its deadline (plus the time to take the lock).
const MAX_EXPIRY_WAIT: Duration = Duration::from_millis(50);

struct Inner<F, C> {
    cache: MultiCache<F, C>,
}

/// A connection cache for many threads and tasks at once: a [`MultiCache`]
/// (Postfix's multi-session semantics, bounds, counters) behind one lock,
/// with `&self` methods.
///
/// It is `Send + Sync` when `F: Send` and `C: Send`; share it with an
/// [`Arc`]. Every operation holds the lock for one cache operation (about
/// 100 ns: a hash lookup and a few list links), never across I/O. The
/// departure hook, if any, runs after the lock is released.
///
/// Optional, each one line of setup:
/// - [`expire_in_background`](SharedCache::expire_in_background): a thread
///   that drops expired sessions within 50 ms even when no operation comes;
/// - [`check_liveness`](SharedCache::check_liveness): a session whose peer
///   hung up or sent an unsolicited `421` is never handed out;
/// - [`set_departure_hook`](SharedCache::set_departure_hook): sessions that
///   leave without being found come to you (to send `QUIT`) instead of
///   being dropped.
///
/// Keys are opaque bytes. Put into them everything that must match for a
/// connection to be reusable: for SMTP the transport, the server address
/// and port, and the security state the connection was made under (TLS
/// policy level, SNI or verified name, client certificate, source address,
/// HELO name), so that a less secure connection never serves a stricter
/// delivery.
///
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use scache_core::{MonotonicClock, SharedCache};
///
/// let cache: Arc<SharedCache<TcpStream>> = Arc::new(SharedCache::new(MonotonicClock::new()));
/// let _expiry = cache.expire_in_background(); // stops when dropped
/// cache.check_liveness();
///
/// let server = TcpListener::bind("127.0.0.1:0")?;
/// let conn = TcpStream::connect(server.local_addr()?)?;
/// let _accepted = server.accept()?;
/// let key = format!("smtp\n{}\nverify-tls\n", server.local_addr()?);
///
/// let worker = {
///     let cache = Arc::clone(&cache);
///     let key = key.clone();
///     std::thread::spawn(move || {
///         // ... a delivery finished with `conn`: cache it instead of QUIT.
///         cache.save_endp(Duration::from_secs(2), key.as_bytes(), b"", conn).unwrap();
///     })
/// };
/// worker.join().unwrap();
/// let found = cache.find_endp(key.as_bytes())?.expect("cached by the other thread");
/// assert_eq!(found.fd.peer_addr()?, server.local_addr()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedCache<F, C = MonotonicClock> {
    inner: Mutex<Inner<F, C>>,
    /// Wakes background expiry threads (to stop them).
    wake: Condvar,
    hook: RwLock<Option<Hook<F>>>,
    /// Whether a hook is set (checked without taking `hook`'s lock).
    has_hook: AtomicBool,
}

impl<F, C> fmt::Debug for SharedCache<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SharedCache");
        match self.inner.try_lock() {
            Ok(inner) => d.field("cache", &inner.cache),
            Err(_) => d.field("cache", &"<locked>"),
        };
        d.field("has_hook", &self.has_hook.load(Ordering::Relaxed))
            .finish()
    }
}

impl<F, C: Clock> SharedCache<F, C> {
    /// An empty cache without bounds, reading time from `clock`.
    pub fn new(clock: C) -> SharedCache<F, C> {
        SharedCache::with_limits(clock, Limits::NONE)
    }

    /// An empty cache with the given bounds (see [`Limits`] for the
    /// eviction policy).
    pub fn with_limits(clock: C, limits: Limits) -> SharedCache<F, C> {
        SharedCache {
            inner: Mutex::new(Inner {
                cache: MultiCache::with_limits(clock, limits),
            }),
            wake: Condvar::new(),
            hook: RwLock::new(None),
            has_hook: AtomicBool::new(false),
        }
    }

    /// Caches `fd` as a new session under `endp` for `ttl` (see
    /// [`MultiCache::save_endp`]). A refused session is dropped.
    pub fn save_endp(
        &self,
        ttl: Duration,
        endp: &[u8],
        endp_prop: &[u8],
        fd: F,
    ) -> Result<(), CacheError> {
        self.with_cache(|c| ConnectionCache::save_endp(c, ttl, endp, endp_prop, fd))
    }

    /// Takes the oldest session cached under `endp` (see
    /// [`MultiCache::take_endp`]).
    pub fn find_endp(&self, endp: &[u8]) -> Result<Option<FoundEndp<F>>, CacheError> {
        self.with_cache(|c| ConnectionCache::find_endp(c, endp))
    }

    /// Binds destination `dest` to endpoint `endp` for `ttl` (see
    /// [`MultiCache::save_dest`]).
    pub fn save_dest(
        &self,
        ttl: Duration,
        dest: &[u8],
        dest_prop: &[u8],
        endp: &[u8],
    ) -> Result<(), CacheError> {
        self.with_cache(|c| ConnectionCache::save_dest(c, ttl, dest, dest_prop, endp))
    }

    /// Takes a session for destination `dest` through its bindings (see
    /// [`MultiCache::take_dest`]).
    pub fn find_dest(&self, dest: &[u8]) -> Result<Option<FoundDest<F>>, CacheError> {
        self.with_cache(|c| ConnectionCache::find_dest(c, dest))
    }

    /// Current sizes (always known for an in-process cache).
    pub fn size(&self) -> Option<CacheSize> {
        Some(self.lock().cache.size())
    }

    /// The counters, with current sizes.
    pub fn stats(&self) -> Stats {
        self.lock().cache.stats()
    }

    /// The bounds in force.
    pub fn limits(&self) -> Limits {
        self.lock().cache.limits()
    }

    /// Changes the bounds for later saves (nothing is evicted now).
    pub fn set_limits(&self, limits: Limits) {
        self.lock().cache.set_limits(limits);
    }

    /// Expires what is due now; returns how many sessions and bindings
    /// expired. Every operation does this first anyway; call it yourself
    /// to drive expiry in virtual time, or see
    /// [`expire_in_background`](SharedCache::expire_in_background).
    pub fn expire_due(&self) -> usize {
        self.with_cache(|c| c.expire_due())
    }

    /// Closes every session (or hands it to the departure hook, cause
    /// [`DepartureCause::Shutdown`](crate::DepartureCause::Shutdown)) and
    /// forgets every binding.
    pub fn clear(&self) {
        self.with_cache(|c| c.clear());
    }

    /// Hands every session that leaves without being found (expired,
    /// evicted, found dead at checkout, still cached at [`clear`] or drop)
    /// to `hook` with its cause, instead of dropping it. The hook runs on
    /// the thread whose operation made the session leave (the background
    /// expiry thread for expirations, when it runs), after the cache's lock
    /// is released; it may take time, but it delays that caller. In async
    /// code, send the session to a task (for example over an unbounded
    /// channel) rather than block.
    ///
    /// [`clear`]: SharedCache::clear
    pub fn set_departure_hook(&self, hook: impl Fn(Departure<F>) + Send + Sync + 'static) {
        *self.hook.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(hook));
        self.has_hook.store(true, Ordering::Release);
        self.lock().cache.queue_departures();
    }

    /// Goes back to dropping departing sessions.
    pub fn remove_departure_hook(&self) {
        let departed = {
            let mut inner = self.lock();
            let departed = inner.cache.take_departures();
            inner.cache.remove_departure_hook();
            departed
        };
        self.has_hook.store(false, Ordering::Release);
        *self.hook.write().unwrap_or_else(PoisonError::into_inner) = None;
        drop(departed);
    }

    /// Checks each session with `probe` before a lookup hands it out (see
    /// [`MultiCache::set_liveness_probe`]). The probe runs under the lock:
    /// it must not block.
    pub fn set_liveness_probe(&self, probe: impl Fn(&F) -> Liveness + Send + 'static) {
        self.lock().cache.set_liveness_probe(probe);
    }

    /// Checks each session's descriptor with one non-blocking `poll(2)`
    /// before a lookup hands it out: a session whose peer closed, or sent
    /// data nobody asked for (an SMTP `421`), is evicted and the next one
    /// is tried (see [`MultiCache::check_liveness`]).
    pub fn check_liveness(&self)
    where
        F: std::os::fd::AsFd + 'static,
    {
        self.lock().cache.check_liveness();
    }

    fn lock(&self) -> MutexGuard<'_, Inner<F, C>> {
        // A panic elsewhere while the lock was held leaves the cache
        // consistent (every operation completes its links before anything
        // that could panic), so keep serving.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `op` under the lock, then hands departed sessions to the hook.
    fn with_cache<R>(&self, op: impl FnOnce(&mut MultiCache<F, C>) -> R) -> R {
        let (result, departed) = {
            let mut inner = self.lock();
            let result = op(&mut inner.cache);
            (result, inner.cache.take_departures())
        };
        self.depart(departed);
        result
    }

    fn depart(&self, departed: Vec<Departure<F>>) {
        if departed.is_empty() {
            return;
        }
        let hook = if self.has_hook.load(Ordering::Acquire) {
            self.hook
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        } else {
            None
        };
        match hook {
            Some(hook) => departed.into_iter().for_each(|d| hook(d)),
            None => drop(departed),
        }
    }
}

impl<F: Send + 'static, C: Clock + Send + 'static> SharedCache<F, C> {
    /// Starts a thread that expires sessions and bindings when they are
    /// due, so that an expired session is dropped (or handed to the
    /// departure hook) within about 50 ms of its deadline even when no
    /// other operation comes. The thread stops when the returned guard is
    /// dropped; until then it keeps the cache alive.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use scache_core::{MonotonicClock, SharedCache};
    ///
    /// let cache = Arc::new(SharedCache::<u32>::new(MonotonicClock::new()));
    /// let _expiry = cache.expire_in_background();
    /// cache.save_endp(Duration::from_millis(20), b"e", b"", 7)?;
    /// std::thread::sleep(Duration::from_millis(200));
    /// assert_eq!(cache.stats().sess_count, 0); // gone with no lookup
    /// # Ok::<(), scache_core::CacheError>(())
    /// ```
    pub fn expire_in_background(self: &Arc<Self>) -> BackgroundExpiry {
        let cache = Arc::clone(self);
        let stopped = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stopped);
        let thread = std::thread::Builder::new()
            .name("scache-expiry".into())
            .spawn(move || cache.run_expiry(&stop_flag))
            .ok();
        BackgroundExpiry {
            stopper: Arc::clone(self) as Arc<dyn StopExpiry>,
            stopped,
            thread,
        }
    }

    fn run_expiry(&self, stopped: &AtomicBool) {
        let mut inner = self.lock();
        loop {
            if stopped.load(Ordering::Acquire) {
                return;
            }
            inner.cache.expire_due();
            let departed = inner.cache.take_departures();
            if !departed.is_empty() {
                drop(inner);
                self.depart(departed);
                inner = self.lock();
                continue;
            }
            let now = inner.cache.clock().now();
            let wait = inner
                .cache
                .next_deadline()
                .map_or(MAX_EXPIRY_WAIT, |due| due.saturating_duration_since(now))
                .clamp(Duration::from_millis(1), MAX_EXPIRY_WAIT);
            inner = self
                .wake
                .wait_timeout(inner, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl<F, C> Drop for SharedCache<F, C> {
    fn drop(&mut self) {
        // Sessions still cached go to the hook (cause Shutdown).
        let inner = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        inner.cache.clear();
        let departed = inner.cache.take_departures();
        if departed.is_empty() {
            return;
        }
        if let Some(hook) = self
            .hook
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            departed.into_iter().for_each(|d| hook(d));
        }
    }
}

/// Stops the background expiry thread of a [`SharedCache`] when dropped
/// (see [`SharedCache::expire_in_background`]).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use scache_core::{MonotonicClock, SharedCache};
///
/// let cache = Arc::new(SharedCache::<u32>::new(MonotonicClock::new()));
/// let expiry = cache.expire_in_background();
/// assert!(expiry.is_running());
/// drop(expiry); // the thread stops; expiry happens at the next operation again
/// cache.save_endp(Duration::from_millis(1), b"e", b"", 1)?;
/// std::thread::sleep(Duration::from_millis(20));
/// assert_eq!(cache.stats().sess_count, 1); // nobody looked yet
/// assert_eq!(cache.expire_due(), 1);
/// # Ok::<(), scache_core::CacheError>(())
/// ```
#[must_use = "the background expiry stops when this guard is dropped"]
pub struct BackgroundExpiry {
    stopper: Arc<dyn StopExpiry>,
    stopped: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundExpiry {
    /// Whether the thread is running (false if it could not be started).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl fmt::Debug for BackgroundExpiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundExpiry")
            .field("running", &self.is_running())
            .finish()
    }
}

impl Drop for BackgroundExpiry {
    fn drop(&mut self) {
        self.stopper.stop_expiry(&self.stopped);
        if let Some(thread) = self.thread.take() {
            // Dropped from the hook on the expiry thread itself: it sees
            // the flag when the hook returns.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// Type-erased access to a cache's expiry thread (the guard does not name
/// the cache's types).
trait StopExpiry: Send + Sync {
    fn stop_expiry(&self, stopped: &AtomicBool);
}

impl<F: Send, C: Send> StopExpiry for SharedCache<F, C> {
    fn stop_expiry(&self, stopped: &AtomicBool) {
        // Under the lock, so the thread cannot miss the wake-up between
        // its check and its wait.
        let _inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        stopped.store(true, Ordering::Release);
        self.wake.notify_all();
    }
}

impl<F, C: Clock> ConnectionCache for SharedCache<F, C> {
    type Fd = F;
    type Error = CacheError;

    fn save_endp(
        &mut self,
        ttl: Duration,
        endp: &[u8],
        endp_prop: &[u8],
        fd: F,
    ) -> Result<(), CacheError> {
        SharedCache::save_endp(self, ttl, endp, endp_prop, fd)
    }

    fn find_endp(&mut self, endp: &[u8]) -> Result<Option<FoundEndp<F>>, CacheError> {
        SharedCache::find_endp(self, endp)
    }

    fn save_dest(
        &mut self,
        ttl: Duration,
        dest: &[u8],
        dest_prop: &[u8],
        endp: &[u8],
    ) -> Result<(), CacheError> {
        SharedCache::save_dest(self, ttl, dest, dest_prop, endp)
    }

    fn find_dest(&mut self, dest: &[u8]) -> Result<Option<FoundDest<F>>, CacheError> {
        SharedCache::find_dest(self, dest)
    }

    fn size(&self) -> Option<CacheSize> {
        SharedCache::size(self)
    }
}
