//! Misuses of `#[cachier]` are compile errors that name the option or argument
//! at fault. The expected messages are in `tests/ui/*.stderr`.

/// rustc's list of `Serialize` types in one message depends on which features
/// are on, so the messages are recorded with the test command's `--all-features`.
#[test]
#[cfg_attr(
    not(feature = "mongo"),
    ignore = "the expected messages are recorded with --all-features"
)]
fn misuses_are_spanned_compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
