//! Code generation: the shim that hands a call to the runtime engine, in one
//! of two shapes.
//!
//! - A free function without type parameters becomes a constant that derefs
//!   to the cached function and carries the cache controls
//!   (`foo.clear_cache()`): see [`constant`].
//! - A method or a generic function stays itself, with the shim as its body
//!   and its cache a registered static inside: see [`inline`]. Its controls
//!   are reached with `cache_of!` and per-call options with `with_options`.

use proc_macro2::{Group, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, ItemFn, Type};

use crate::attrs::{Attrs, Backend};
use crate::identity;
use crate::signature::{Arg, Returns, Signature};

/// The code replacing `item`, whose options and signature passed every check.
pub fn expand(attrs: &Attrs, item: ItemFn, sig: &Signature, body: TokenStream) -> TokenStream {
    let code = identity::code(attrs, body, &attrs.crate_path());
    match sig.is_inline() {
        true => inline(attrs, item, sig, &code),
        false => constant(attrs, item, sig, &code),
    }
}

/// `#[cachier::track]`: the function as it is, and beside it the constant
/// holding its `Code`, for the `deps` of others.
pub fn track(attrs: &Attrs, item: &ItemFn, body: TokenStream) -> TokenStream {
    let krate = attrs.crate_path();
    let code = identity::code(attrs, body, &krate);
    let code_const = code_const(item, &krate, &code);
    quote!(#item #code_const)
}

/// `const __cachier_code_foo: Code = ..;`, as visible as `foo` and under its `cfg`s.
fn code_const(item: &ItemFn, krate: &TokenStream, code: &TokenStream) -> TokenStream {
    let (vis, name) = (&item.vis, identity::code_name(&item.sig.ident));
    let cfgs = item.attrs.iter().filter(|attr| attr.path().is_ident("cfg"));
    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #vis const #name: #krate::Code = #code;
    }
}

/// What both shapes share: the call's key, and the call itself, given how to
/// reach the function's `FunctionCache` and its body.
struct Shim<'a> {
    attrs: &'a Attrs,
    sig: &'a Signature,
    krate: TokenStream,
    /// An expression of type `&FunctionCache`.
    cache: TokenStream,
    /// The body, as a callable path.
    body: TokenStream,
}

impl Shim<'_> {
    /// The statements of one call, with `__cachier_options` in scope.
    fn call(&self) -> TokenStream {
        let (krate, sig, cache, body) = (&self.krate, self.sig, &self.cache, &self.body);
        let names: Vec<_> = sig.args.iter().map(|a| &a.name).collect();
        let (wrapper, _) = self.wrapper();
        // A clear error at the return type when what is stored cannot be.
        let stored_check = sig
            .stored
            .as_ref()
            .map(|stored| quote_spanned!(stored.span()=> #krate::__private::stored::<#stored>();));
        let key = self.key();
        let call = if self.attrs.next_time.as_ref().is_some_and(|n| n.value) {
            self.refreshable_call()
        } else if sig.is_async {
            quote! {
                #cache.call_async(__cachier_options, __cachier_key, async move {
                    #wrapper(#body(#(#names),*).await)
                }).await.0
            }
        } else {
            quote!(#cache.call(__cachier_options, __cachier_key, move || #wrapper(#body(#(#names),*))).0)
        };
        quote! {
            #stored_check
            let __cachier_key = #key;
            #call
        }
    }

    /// How results are classified: every one, `Ok` only, or `Some` only; as
    /// a constructor and as a type.
    fn wrapper(&self) -> (TokenStream, TokenStream) {
        let krate = &self.krate;
        match self.sig.returns {
            Returns::Plain => (quote!(#krate::Plain), quote!(#krate::Plain<_>)),
            Returns::Result => (quote!(#krate::OkOnly), quote!(#krate::OkOnly<_, _>)),
            Returns::Option => (quote!(#krate::SomeOnly), quote!(#krate::SomeOnly<_>)),
        }
    }

    /// The expression computing this call's `Result<Key>`: from the arguments
    /// not ignored, or from `hash_func` applied to references to all of them;
    /// for a method or generic function, also from the names of `Self` and of
    /// the type parameters, and the values of the const parameters.
    fn key(&self) -> TokenStream {
        let (krate, sig, cache) = (&self.krate, self.sig, &self.cache);
        let mut parts = Vec::new();
        if sig.is_method {
            parts.push(quote!(::core::any::type_name::<Self>()));
        }
        parts.extend(
            sig.type_params
                .iter()
                .map(|t| quote!(::core::any::type_name::<#t>())),
        );
        parts.extend(
            sig.const_params
                .iter()
                .map(|c| quote!(#krate::__private::key_arg(&#c))),
        );
        if let Some(hash_func) = &self.attrs.hash_func {
            let hash_func = &hash_func.value;
            let references = sig.args.iter().map(reference);
            parts.push(quote_spanned!(hash_func.span()=> (#hash_func)(#(#references),*)));
        } else {
            let ignored = |arg: &&Arg| {
                self.attrs
                    .ignore
                    .as_ref()
                    .is_some_and(|i| i.value.contains(&arg.name))
            };
            parts.extend(sig.args.iter().filter(|arg| !ignored(arg)).map(|arg| {
                let reference = reference(arg);
                match arg.name == "self" {
                    true => quote_spanned!(arg.name.span()=> #krate::__private::key_self(#reference)),
                    false => quote_spanned!(arg.ty.span()=> #krate::__private::key_arg(#reference)),
                }
            }));
        }
        quote!(#cache.key(&(#(#parts,)*)))
    }

    /// The `next_time` call: a closure that copies reference arguments into
    /// owned values and returns a job running the body on them.
    fn refreshable_call(&self) -> TokenStream {
        let (krate, sig, cache, body) = (&self.krate, self.sig, &self.cache, &self.body);
        let (wrapper, wrapper_type) = self.wrapper();
        let mut copies = Vec::new();
        let mut passes = Vec::new();
        for arg in &sig.args {
            let name = &arg.name;
            match &arg.ty {
                Type::Reference(reference) => {
                    let (elem, copy) = (&reference.elem, format_ident!("__cachier_owned_{}", name));
                    copies.push(quote_spanned!(elem.span()=> let #copy = <#elem as ::std::borrow::ToOwned>::to_owned(#name);));
                    passes.push(quote!(::core::borrow::Borrow::borrow(&#copy)));
                }
                _ => passes.push(quote!(#name)),
            }
        }
        if sig.is_async {
            return quote! {
                #cache.call_refreshable_async(__cachier_options, __cachier_key, move || -> #krate::TaskJob<#wrapper_type> {
                    #(#copies)*
                    ::std::boxed::Box::pin(async move { #wrapper(#body(#(#passes),*).await) })
                }).await.0
            };
        }
        quote! {
            #cache.call_refreshable(__cachier_options, __cachier_key, move || -> #krate::Job<#wrapper_type> {
                #(#copies)*
                ::std::boxed::Box::new(move || #wrapper(#body(#(#passes),*)))
            }).0
        }
    }
}

/// A reference to the argument, as the key and `hash_func` take it: the
/// receiver as `&Self` whatever its type (`&Self`, `Self`, `Box<Self>`).
fn reference(arg: &Arg) -> TokenStream {
    let name = &arg.name;
    // Spanned at the argument, where rustc then reports a missing `Serialize`.
    match name == "self" {
        true => quote_spanned!(name.span()=> ::core::borrow::Borrow::<Self>::borrow(&#name)),
        false => quote_spanned!(name.span()=> &#name),
    }
}

/// A method or a generic function, emitted as itself: its cache is a
/// `Site`, a static in its body registered at start-up (for `cache_of!`),
/// and its body a closure it calls through the cache. Nothing is emitted
/// beside it, which a trait impl would refuse.
fn inline(attrs: &Attrs, mut item: ItemFn, sig: &Signature, code: &TokenStream) -> TokenStream {
    let krate = attrs.crate_path();
    let builder = builder(
        attrs,
        sig,
        &krate,
        &quote!(__cachier_function),
        &quote!(__CACHIER_CODE),
    );
    let shim = Shim {
        attrs,
        sig,
        cache: quote!(__CACHIER_SITE.cache()),
        body: quote!(__cachier_body),
        krate: krate.clone(),
    };
    let call = shim.call();
    let asyncness = &item.sig.asyncness;
    let output = &sig.output;
    // The body sees the receiver as an argument, so that `next_time` can
    // hand it an owned copy.
    let inputs = item.sig.inputs.iter().map(|input| match input {
        syn::FnArg::Receiver(receiver) => {
            let (mutability, ty) = (
                receiver
                    .reference
                    .is_none()
                    .then_some(receiver.mutability)
                    .flatten(),
                &receiver.ty,
            );
            quote!(#mutability __cachier_self: #ty)
        }
        syn::FnArg::Typed(typed) => typed.to_token_stream(),
    });
    let block = without_self(item.block.to_token_stream());
    let shim_block = quote! {{
        #[allow(non_camel_case_types)]
        struct __cachier_site;
        const __CACHIER_CODE: #krate::Code = #code;
        static __CACHIER_SITE: #krate::site::Site = #krate::site::Site::new(
            || ::core::any::type_name::<__cachier_site>(),
            |__cachier_function| #builder,
        );
        #krate::__private::inventory::submit!(#krate::site::Registered(&__CACHIER_SITE));
        #[allow(clippy::ptr_arg)] // the argument types are the user's
        let __cachier_body = #asyncness |#(#inputs),*| -> #output #block;
        let __cachier_options = &#krate::CallOptions::DEFAULT;
        #call
    }};
    item.block = Box::new(syn::parse_quote!(#shim_block));
    item.into_token_stream()
}

/// `tokens` with every `self` that is not a path prefix (`self::module`)
/// renamed `__cachier_self`, the body closure's name for the receiver.
fn without_self(tokens: TokenStream) -> TokenStream {
    let mut out = Vec::new();
    let mut trees = tokens.into_iter().peekable();
    while let Some(tree) = trees.next() {
        out.push(match tree {
            TokenTree::Ident(ident) if ident == "self" => {
                let path_prefix = matches!(trees.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                match path_prefix {
                    true => TokenTree::Ident(ident),
                    false => TokenTree::Ident(syn::Ident::new("__cachier_self", ident.span())),
                }
            }
            TokenTree::Group(group) => {
                let mut renamed = Group::new(group.delimiter(), without_self(group.stream()));
                renamed.set_span(group.span());
                TokenTree::Group(renamed)
            }
            other => other,
        });
    }
    out.into_iter().collect()
}

/// A free function without type parameters, emitted as a constant: for
/// `fn foo(a: A) -> R`, two items take its place:
///
/// - `struct __cachier_fn_foo`, holding as associated items the original body,
///   the cached entry point, the function's `FunctionCache` (a static inside a
///   method) and the cache controls (`clear_cache`, `ignore_cache`, ...);
/// - `const foo: __cachier_fn_foo`, which derefs to a pointer to the cached
///   entry point, so `foo(a)` calls through the cache and `foo.clear_cache()`
///   reaches the controls.
///
/// For an `async fn` the same items are made, with the body and the per-call
/// controls `async`; the entry point returns the call's future boxed, `Send`
/// (a pointer type cannot name the future itself), and `foo.call_with(..)`
/// awaits it unboxed, with no `Send` bound.
fn constant(attrs: &Attrs, item: ItemFn, sig: &Signature, code: &TokenStream) -> TokenStream {
    let krate = attrs.crate_path();

    let name = &item.sig.ident;
    let vis = &item.vis;
    let holder = format_ident!("__cachier_fn_{}", name);
    let (docs, cfgs, others) = split_attrs(&item.attrs);
    let generics = &item.sig.generics;
    let where_clause = &item.sig.generics.where_clause;
    let output = &sig.output;
    let body_inputs = &item.sig.inputs;
    let block = &item.block;

    let names: Vec<_> = sig.args.iter().map(|a| &a.name).collect();
    let decls: Vec<_> = sig.args.iter().map(|a| a.declaration()).collect();
    let name_str = name.to_string();
    let function_name = quote!(::core::concat!(::core::module_path!(), "::", #name_str));
    let code_name = identity::code_name(name);
    let builder = builder(attrs, sig, &krate, &function_name, &quote!(#code_name));
    let code_const = code_const(&item, &krate, code);
    let shim = Shim {
        attrs,
        sig,
        cache: quote!(Self::__cachier_cache()),
        body: quote!(Self::__cachier_body),
        krate: krate.clone(),
    };
    let call = shim.call();
    let key = shim.key();
    let (wrapper, _) = shim.wrapper();
    let (asyncness, dot_await) = match sig.is_async {
        true => (quote!(async), quote!(.await)),
        false => (quote!(), quote!()),
    };
    let local = attrs.local.as_ref().is_some_and(|l| l.value);
    let (entry_point, pointer) = entry_point(sig, local, generics, &holder, &krate);
    let wait_for_background = match sig.is_async {
        true => quote!(Self::__cachier_cache().wait_for_background_async().await),
        false => quote!(Self::__cachier_cache().wait_for_background()),
    };

    quote! {
        #code_const

        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #holder;

        #(#cfgs)*
        #(#docs)*
        #[allow(non_upper_case_globals)]
        #vis const #name: #holder = #holder;

        #(#cfgs)*
        impl #holder {
            #(#others)*
            #asyncness fn __cachier_body #generics (#body_inputs) -> #output #where_clause #block

            #entry_point

            fn __cachier_cache() -> &'static #krate::FunctionCache {
                static __CACHIER_CACHE: #krate::__private::LazyLock<#krate::FunctionCache> =
                    #krate::__private::LazyLock::new(|| #builder);
                &__CACHIER_CACHE
            }

            /// Calls the function with per-call cache options.
            #[allow(clippy::ptr_arg)] // the argument types are the user's
            pub #asyncness fn call_with #generics (&self, __cachier_options: &#krate::CallOptions, #(#decls),*) -> #output #where_clause {
                #call
            }
            /// Runs the body; the cache is neither read nor written.
            #[allow(clippy::ptr_arg)] // the argument types are the user's
            pub #asyncness fn ignore_cache #generics (&self, #(#decls),*) -> #output #where_clause {
                self.call_with(&#krate::CallOptions::new().ignore_cache(true), #(#names),*) #dot_await
            }

            /// Runs the body and stores its result, replacing any entry.
            #[allow(clippy::ptr_arg)] // the argument types are the user's
            pub #asyncness fn overwrite_cache #generics (&self, #(#decls),*) -> #output #where_clause {
                self.call_with(&#krate::CallOptions::new().overwrite_cache(true), #(#names),*) #dot_await
            }

            /// A normal call that reports each cache decision through `tracing` and on stderr.
            #[allow(clippy::ptr_arg)] // the argument types are the user's
            pub #asyncness fn verbose_cache #generics (&self, #(#decls),*) -> #output #where_clause {
                self.call_with(&#krate::CallOptions::new().verbose(true), #(#names),*) #dot_await
            }

            /// Stores `value` as the result for these arguments without running the body.
            #[allow(unused_variables, clippy::ptr_arg)] // the arguments left out of the key; the user's types
            pub fn precache_value #generics (&self, #(#decls,)* __cachier_value: #output) -> #krate::Result<()> #where_clause {
                Self::__cachier_cache().precache(#key?, #wrapper(__cachier_value))
            }

            /// Removes every cached entry of this function.
            pub fn clear_cache(&self) -> #krate::Result<()> {
                Self::__cachier_cache().clear()
            }

            /// Drops every claim ('being calculated') on this function's keys.
            pub fn clear_being_calculated(&self) -> #krate::Result<()> {
                Self::__cachier_cache().clear_being_calculated()
            }

            /// The directory of the file core; `None` for other cores.
            #[must_use]
            pub fn cache_dpath(&self) -> ::core::option::Option<::std::path::PathBuf> {
                Self::__cachier_cache().dpath()
            }

            /// Hits, misses, stale hits, recalculations and cache errors since the process started.
            #[must_use]
            pub fn cache_info(&self) -> #krate::CacheInfo {
                Self::__cachier_cache().info()
            }

            /// Waits until this function's background work (`next_time` refreshes, cleanups) is done.
            pub #asyncness fn wait_for_background(&self) {
                #wait_for_background
            }

            /// The runtime cache behind this function.
            #[must_use]
            pub fn cache(&self) -> &'static #krate::FunctionCache {
                Self::__cachier_cache()
            }
        }

        #(#cfgs)*
        impl ::core::ops::Deref for #holder {
            type Target = #pointer;
            fn deref(&self) -> &Self::Target {
                const __CACHIER_FN: #pointer = #holder::__cachier_cached;
                &__CACHIER_FN
            }
        }
    }
}

/// `__cachier_cached`, the function `foo` derefs to, and the type of a pointer
/// to it: for a sync function its own signature; for an async one, its
/// arguments' elided lifetimes named `'__cachier` and its future boxed, `Send`
/// unless `local`.
fn entry_point(
    sig: &Signature,
    local: bool,
    generics: &syn::Generics,
    holder: &syn::Ident,
    krate: &TokenStream,
) -> (TokenStream, TokenStream) {
    let names: Vec<_> = sig.args.iter().map(|a| &a.name).collect();
    let output = &sig.output;
    let defaults = quote!(&#krate::CallOptions::DEFAULT);
    if sig.is_async {
        let named = syn::Lifetime::new("'__cachier", proc_macro2::Span::call_site());
        let (types, borrowed): (Vec<_>, Vec<_>) =
            sig.args.iter().map(|a| a.type_with_lifetime(&named)).unzip();
        // A future borrows the arguments; with none to borrow, it is 'static.
        let (lifetime, params, binder) = match borrowed.contains(&true) {
            true => (quote!(#named), quote!(<#named>), quote!(for<#named>)),
            false => (quote!('static), quote!(), quote!()),
        };
        let call = quote!(Self::call_with(&#holder, #defaults, #(#names),*));
        let (send, call) = match local {
            true => (quote!(), call),
            false => (
                quote!(+ ::core::marker::Send),
                quote!(#krate::__private::require_send_or_write_cachier_local(#call)),
            ),
        };
        let future = quote!(::core::pin::Pin<::std::boxed::Box<dyn ::core::future::Future<Output = #output> #send + #lifetime>>);
        let entry_point = quote! {
            #[allow(clippy::ptr_arg)]
            fn __cachier_cached #params (#(#names: #types),*) -> #future {
                ::std::boxed::Box::pin(#call)
            }
        };
        return (entry_point, quote!(#binder fn(#(#types),*) -> #future));
    }
    let types: Vec<_> = sig.args.iter().map(|a| &a.ty).collect();
    let binder = (!sig.lifetimes.is_empty()).then(|| {
        let lifetimes = &sig.lifetimes;
        quote!(for<#(#lifetimes),*>)
    });
    let where_clause = &generics.where_clause;
    let entry_point = quote! {
            #[allow(clippy::ptr_arg)]
        fn __cachier_cached #generics (#(#names: #types),*) -> #output #where_clause {
            #holder.call_with(#defaults, #(#names),*)
        }
    };
    (entry_point, quote!(#binder fn(#(#types),*) -> #output))
}

/// `FunctionCache::builder(..)...build()` for this function's options.
fn builder(
    attrs: &Attrs,
    sig: &Signature,
    krate: &TokenStream,
    name: &TokenStream,
    code: &TokenStream,
) -> TokenStream {
    let mut calls = Vec::new();
    if let Some(backend) = &attrs.backend {
        calls.push(match backend.value {
            Backend::File => quote!(.backend(#krate::Backend::File)),
            Backend::Memory => quote!(.backend(#krate::Backend::Memory)),
            // Needs the `mongo` feature of `cachier`, which defines this variant.
            Backend::Mongo => quote!(.backend(#krate::Backend::Mongo)),
            // Needs the `redis` feature.
            Backend::Redis => quote!(.backend(#krate::Backend::Redis)),
            // Needs the `sql` feature.
            Backend::Sql => quote!(.backend(#krate::Backend::Sql)),
        });
    }
    if let Some(dir) = &attrs.cache_dir {
        let dir = &dir.value;
        calls.push(quote_spanned!(dir.span()=> .cache_dir(#dir)));
    }
    if let Some(core) = &attrs.core {
        let core = &core.value;
        calls.push(quote_spanned!(core.span()=> .core(#core)));
    }
    if let Some(getter) = &attrs.mongetter {
        let getter = &getter.value;
        calls.push(quote_spanned!(getter.span()=> .mongetter(#getter)));
    }
    if let Some(getter) = &attrs.redis_client {
        let getter = &getter.value;
        calls.push(quote_spanned!(getter.span()=> .redis_client(#getter)));
    }
    let valued = [
        ("stale_after", attrs.stale_after.as_ref()),
        ("wait_for_calc_timeout", attrs.wait_for_calc_timeout.as_ref()),
        (
            "cleanup_interval",
            attrs.cleanup_interval.as_ref().map(|c| &c.value),
        ),
        ("entry_size_limit", attrs.entry_size_limit.as_ref()),
        ("max_entries", attrs.max_entries.as_ref().map(|m| &m.value)),
        ("max_bytes", attrs.max_bytes.as_ref().map(|m| &m.value)),
    ];
    for (method, value) in valued {
        if let Some(value) = value {
            let method = format_ident!("{}", method);
            calls.push(quote_spanned!(value.span()=> .#method(#value)));
        }
    }
    let flags = [
        ("next_time", &attrs.next_time),
        ("allow_none", &attrs.allow_none),
        ("cleanup_stale", &attrs.cleanup_stale),
        ("segments", &attrs.segments),
    ];
    for (method, flag) in flags {
        if let Some(flag) = flag {
            let (method, value) = (format_ident!("{}", method), flag.value);
            calls.push(quote!(.#method(#value)));
        }
    }
    let fingerprint = &sig.fingerprint;
    quote! {
        #krate::FunctionCache::builder(#name)
            .signature(#fingerprint)
            .code_version(#code.version())
            #(#calls)*
            .build()
    }
}

/// Splits the function's attributes into doc comments (for the constant), `cfg`s
/// (for every generated item) and the rest (for the body).
fn split_attrs(attrs: &[Attribute]) -> (Vec<&Attribute>, Vec<&Attribute>, Vec<&Attribute>) {
    let mut docs = Vec::new();
    let mut cfgs = Vec::new();
    let mut others = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("doc") {
            docs.push(attr);
        } else if attr.path().is_ident("cfg") {
            cfgs.push(attr);
        } else {
            others.push(attr);
        }
    }
    (docs, cfgs, others)
}
