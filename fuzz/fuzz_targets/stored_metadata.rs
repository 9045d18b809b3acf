//! `cargo fuzz run stored_metadata`: see `vessel_fuzz::stored_metadata`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vessel_fuzz::stored_metadata(data));
