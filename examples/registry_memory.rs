//! Bytes per person of the memory store's registry: upserts N random people
//! (default 2,000,000) through the Store trait and reports what the global
//! allocator holds afterwards minus before (a counting allocator: exact, no
//! RSS noise). Run by tests/load/registry-scale.sh:
//!
//!     cargo run --release --example registry_memory -- 2000000

use census_login::keys::PeselKey;
use census_login::store::memory::MemoryStore;
use census_login::store::{RegistryRecord, Store};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_add(new_size, Ordering::Relaxed);
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = MemoryStore::new();
    let before = HELD.load(Ordering::Relaxed);
    // Random keys as the keyed hash gives them; the rows of one batch are
    // made and dropped outside the measured difference.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut done = 0;
    while done < n {
        let batch: Vec<RegistryRecord> = (0..(n - done).min(4000))
            .map(|_| {
                let mut key = [0u8; 16];
                key[..8].copy_from_slice(&next().to_le_bytes());
                key[8..].copy_from_slice(&next().to_le_bytes());
                RegistryRecord {
                    key: PeselKey::from_bytes(key),
                    maiden_tag: next().to_le_bytes(),
                    reserved: next() % 100 == 0,
                }
            })
            .collect();
        done += batch.len();
        runtime
            .block_on(store.upsert_registry(&batch))
            .expect("memory store");
    }
    let held = HELD.load(Ordering::Relaxed) - before;
    println!(
        "{{\"people\": {n}, \"bytes\": {held}, \"bytesPerPerson\": {:.1}}}",
        held as f64 / n as f64
    );
}
