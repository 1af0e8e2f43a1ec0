//! The journal a restarted gateway replays. Any bytes replay without panicking to the
//! state of a valid prefix, and compaction keeps that state: a snapshot of the first
//! entries followed by the rest replays to what the whole prefix does.
#![no_main]

use gateway::ledger::journal::{replay, snapshot, Entry, State};
use libfuzzer_sys::fuzz_target;

/// `state` with its accepted ids sorted: a snapshot lists them in another order.
fn normal(mut state: State) -> State {
    state.accepted.sort_unstable();
    state
}

fuzz_target!(|data: &[u8]| {
    let (state, valid) = replay(data);
    assert!(valid <= data.len());
    let (again, again_valid) = replay(&data[..valid]);
    assert_eq!(again_valid, valid);
    assert_eq!(again, state);

    // The entry boundaries of the valid prefix; compact at the middle one.
    let mut bounds = vec![0];
    while let Some((_, len)) = Entry::decode(&data[*bounds.last().unwrap()..valid]) {
        bounds.push(bounds.last().unwrap() + len);
    }
    assert_eq!(*bounds.last().unwrap(), valid);
    let cut = bounds[bounds.len() / 2];
    let (head, _) = replay(&data[..cut]);
    let mut compacted = Vec::new();
    snapshot(&head, &mut compacted);
    let snap_len = compacted.len();
    compacted.extend_from_slice(&data[cut..valid]);
    let (after, after_valid) = replay(&compacted);
    assert_eq!(after_valid, compacted.len());
    assert!(snap_len <= compacted.len());
    assert_eq!(normal(after), normal(state));
});
