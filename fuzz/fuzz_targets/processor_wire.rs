//! What a processor answers: the health check body and a payment lookup. Any bytes are
//! read without panicking, and a lookup's amount is a valid one.
#![no_main]

use domain::money::MAX_AMOUNT_CENTS;
use gateway::upstream::api::{parse_lookup, Lookup};
use gateway::upstream::health::poll::parse_health;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_health(data);
    if let Lookup::Found {
        cents: Some(cents), ..
    } = parse_lookup(data)
    {
        assert!((1..=MAX_AMOUNT_CENTS).contains(&cents));
    }
});
