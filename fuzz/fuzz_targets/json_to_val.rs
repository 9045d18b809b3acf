//! `cargo fuzz run json_to_val`: see `vessel_fuzz::json_to_val`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vessel_fuzz::json_to_val(data));
