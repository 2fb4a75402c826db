//! libFuzzer entry for [`signup_verify_fuzz::sigv4_verify`]: the input and the properties are described there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signup_verify_fuzz::sigv4_verify::check(data));
