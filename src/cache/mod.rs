//! The content-addressed cache: keys, hashes, the store, locks, verify and gc.

mod folder;
pub mod gc;
pub mod hash;
pub mod index;
pub mod key;
pub mod lock;
pub mod record;
pub mod statcache;
pub mod store;
pub mod verify;
pub mod work;

pub use key::{CacheKey, InputKey};
pub use record::Record;
pub use store::Store;
