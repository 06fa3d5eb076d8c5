//! The `#[cachier]` attribute. Use it through the `cachier` crate, which documents it.
//!
//! Also `#[cachier::track]`, which makes a helper usable in `deps`.
//!
//! The macro is thin: `attrs` parses the options, `signature` describes the
//! function, `check` holds the checks that span both and the one error
//! accumulator (every mistake of a use is reported by one compile), `identity`
//! digests the body, and `expand` emits a shim that hands each call to
//! `cachier::FunctionCache`, where all caching logic lives.

mod attrs;
mod check;
mod expand;
mod identity;
mod signature;
mod units;

use proc_macro::TokenStream;

/// Gives a function a persistent, stale-aware cache. See the `cachier` crate.
#[proc_macro_attribute]
pub fn cachier(args: TokenStream, item: TokenStream) -> TokenStream {
    or_item(expanded(args.into(), item.clone().into()), item)
}

/// Makes a plain function usable in the `deps` of cached functions: a
/// change of its body then starts their caches afresh. See the `cachier` crate.
#[proc_macro_attribute]
pub fn track(args: TokenStream, item: TokenStream) -> TokenStream {
    or_item(tracked(args.into(), item.clone().into()), item)
}

/// The expansion, or the errors followed by the function itself, so that
/// one bad option does not cascade into "cannot find function" errors at
/// every call site.
fn or_item(expansion: syn::Result<proc_macro2::TokenStream>, item: TokenStream) -> TokenStream {
    match expansion {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let mut tokens: TokenStream = error.to_compile_error().into();
            tokens.extend(item);
            tokens
        }
    }
}

fn tracked(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut errors = check::Errors::default();
    let attrs = attrs::Attrs::parse(args, &mut errors);
    check::track_options(&attrs, &mut errors);
    let body = item.clone().into_iter().last().into_iter().collect();
    let function = errors.record(syn::parse2::<syn::ItemFn>(item));
    let function = errors.finish_with(function)?;
    Ok(expand::track(&attrs, &function, body))
}

fn expanded(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut errors = check::Errors::default();
    let attrs = attrs::Attrs::parse(args, &mut errors);
    check::options(&attrs, &mut errors);
    // A function's last token is its body, as written (not as syn prints it back).
    let body = item.clone().into_iter().last().into_iter().collect();
    let function = syn::parse2::<syn::ItemFn>(item)
        .and_then(|function| Ok((signature::Signature::of(&function)?, function)));
    let function = errors.record(function);
    if let Some((sig, _)) = &function {
        check::against_signature(&attrs, sig, &mut errors);
    }
    let (sig, function) = errors.finish_with(function)?;
    Ok(expand::expand(&attrs, function, &sig, body))
}
