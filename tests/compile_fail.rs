//! Misuses of `#[cachier]` are compile errors that name the option or argument
//! at fault. The expected messages are in `tests/ui/*.stderr`.

#[test]
fn misuses_are_spanned_compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
