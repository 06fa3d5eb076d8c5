//! The `#[cachier]` attribute. Use it through the `cachier` crate, which documents it.
//!
//! The macro is thin: [`attrs`] parses and validates the options, [`signature`]
//! checks the function, [`expand`] emits a shim that hands each call to
//! `cachier::FunctionCache`, where all caching logic lives.

mod attrs;
mod expand;
mod signature;
mod units;

use proc_macro::TokenStream;

/// Gives a function a persistent, stale-aware cache. See the `cachier` crate.
#[proc_macro_attribute]
pub fn cachier(args: TokenStream, item: TokenStream) -> TokenStream {
    let expanded = attrs::Attrs::parse(args.into()).and_then(|attrs| {
        let item = syn::parse::<syn::ItemFn>(item.clone())?;
        expand::expand(&attrs, item)
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
