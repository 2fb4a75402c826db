//! libFuzzer entry for [`signup_verify_fuzz::dns_answer`]: the input and the properties are described there.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signup_verify_fuzz::dns_answer::check(data));
