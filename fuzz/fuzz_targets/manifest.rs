//! `cargo fuzz run manifest`: see `vessel_fuzz::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vessel_fuzz::manifest(data));
