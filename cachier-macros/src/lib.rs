//! The `#[cachier]` attribute. Use it through the `cachier` crate, which documents it.
//!
//! The macro is thin: `attrs` parses and validates the options, `signature`
//! checks the function, `identity` digests its body, `expand` emits a shim
//! that hands each call to `cachier::FunctionCache`, where all caching logic
//! lives.

mod attrs;
mod expand;
mod identity;
mod signature;
mod units;

use proc_macro::TokenStream;

/// Gives a function a persistent, stale-aware cache. See the `cachier` crate.
#[proc_macro_attribute]
pub fn cachier(args: TokenStream, item: TokenStream) -> TokenStream {
    let expanded = attrs::Attrs::parse(args.into()).and_then(|attrs| {
        let tokens = proc_macro2::TokenStream::from(item.clone());
        // A function's last token is its body, as written (not as syn prints it back).
        let body = tokens.clone().into_iter().last().into_iter().collect();
        expand::expand(&attrs, syn::parse2::<syn::ItemFn>(tokens)?, body)
    });
    match expanded {
        Ok(tokens) => tokens.into(),
        // Keep the function itself, so one bad option does not cascade into
        // "cannot find function" errors at every call site.
        Err(error) => {
            let mut tokens: TokenStream = error.to_compile_error().into();
            tokens.extend(item);
            tokens
        }
    }
}
