//! Cancel-aware synchronization primitives.
//!
//! Every wait takes `&Cx` and returns `Err` when the waiting task is
//! cancelled; waiters are served FIFO; a cancelled waiter leaves the queue
//! without disturbing the others (see `waiters`, rules WQ1–WQ4, and the
//! intrusive queue's WL1–WL6: a waiter's node lives in its future).

pub(crate) mod atomic_waker;
pub(crate) mod waiters;

pub mod barrier;
pub mod mutex;
pub mod notify;
pub mod once_cell;
pub mod pool;
pub mod rwlock;
pub mod semaphore;

pub use barrier::{Barrier, BarrierWait, BarrierWaitResult};
pub use mutex::{LockError, Mutex, MutexGuard, OwnedMutexGuard, TryLockError};
pub use notify::{Notified, Notify};
pub use once_cell::{InitError, OnceCell, SetError};
pub use pool::{Pool, PoolBuilder, PoolError, PoolStatus, Pooled};
pub use rwlock::{
    OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
pub use semaphore::{
    AcquireError, OwnedSemaphorePermit, Semaphore, SemaphorePermit, TryAcquireError,
};
