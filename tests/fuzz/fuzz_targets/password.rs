//! libFuzzer target: see `census_login_fuzz::password`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| census_login_fuzz::password(data));
