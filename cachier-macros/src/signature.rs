//! Checking that `#[cachier]` can wrap a function, and describing its arguments
//! and return type for code generation.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, Ident, ItemFn, Lifetime, Pat, ReturnType, Type, TypePath, WherePredicate};

use syn::visit_mut::VisitMut;

use crate::check::Errors;

/// One argument, `name: Type` (a `mut` stays on the body's own signature).
/// A method's receiver is an argument named `self`, of type `&Self`, `Self`
/// or the type written (`self: Box<Self>`).
pub struct Arg {
    pub name: Ident,
    pub ty: Type,
}

/// Which of a function's results are cached, by the shape of its return type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// Anything else: every result.
    Plain,
    /// `Result<T, E>`: `Ok` values only.
    Result,
    /// `Option<T>`: `Some` values, and `None` with `allow_none`.
    Option,
}

pub struct Signature {
    /// An `async fn`.
    pub is_async: bool,
    /// The receiver first, for a method.
    pub args: Vec<Arg>,
    /// A method: it has a receiver.
    pub is_method: bool,
    /// The type and const parameters, whose values are part of each key.
    pub type_params: Vec<Ident>,
    pub const_params: Vec<Ident>,
    pub returns: Returns,
    /// The return type (`()` when none is written).
    pub output: Type,
    /// The type that is stored: the `T` of `Result<T, E>` and `Option<T>`, or
    /// the return type (`None` where it cannot be read off the syntax).
    pub stored: Option<Type>,
    /// The function's lifetime parameters, to quantify over in its pointer type.
    pub lifetimes: Vec<Lifetime>,
    /// The argument and return types, whitespace removed: part of the function's
    /// identity, so that changing the signature starts a fresh cache.
    pub fingerprint: String,
}

impl Signature {
    /// Describes `item`, or reports everything about its signature that
    /// `#[cachier]` cannot wrap, all at once.
    pub fn of(item: &ItemFn) -> syn::Result<Signature> {
        let sig = &item.sig;
        let mut errors = Errors::default();
        let mut unsupported = |tokens: &dyn ToTokens, what: &str| {
            errors.push(syn::Error::new_spanned(
                tokens,
                format!("cachier: {what} cannot be cached"),
            ));
        };
        if let Some(token) = &sig.constness {
            unsupported(token, "a `const fn`");
        }
        if let Some(token) = &sig.unsafety {
            unsupported(token, "an `unsafe fn`");
        }
        if let Some(abi) = &sig.abi {
            unsupported(abi, "a function with an explicit ABI");
        }
        if let Some(variadic) = &sig.variadic {
            unsupported(variadic, "a variadic function");
        }
        let output = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) => (**ty).clone(),
        };
        if let Type::ImplTrait(_) = output {
            unsupported(&output, "a function returning `impl Trait`");
        }
        let (mut lifetimes, mut type_params, mut const_params) = (Vec::new(), Vec::new(), Vec::new());
        for param in &sig.generics.params {
            match param {
                GenericParam::Lifetime(def) => lifetimes.push(def),
                GenericParam::Type(def) => type_params.push(def.ident.clone()),
                GenericParam::Const(def) => const_params.push(def.ident.clone()),
            }
        }
        let args: Vec<Arg> = sig
            .inputs
            .iter()
            .filter_map(|input| errors.record(arg(input)))
            .collect();
        let is_method = sig.receiver().is_some();
        // A free function without type parameters is a constant pointing to
        // a function: a pointer type names no bounded lifetime, nor the
        // lifetimes of an async function's future.
        let is_pointer = !is_method && type_params.is_empty() && const_params.is_empty();
        if is_pointer {
            let predicates = sig.generics.where_clause.iter().flat_map(|w| &w.predicates);
            let bounded = lifetimes.iter().filter(|def| !def.bounds.is_empty());
            for tokens in bounded.map(|def| def as &dyn ToTokens).chain(
                predicates
                    .filter(|p| matches!(p, WherePredicate::Lifetime(_)))
                    .map(|p| p as &dyn ToTokens),
            ) {
                errors.push(syn::Error::new_spanned(
                    tokens,
                    "cachier: lifetime bounds (`'a: 'b`) are not supported on cached free functions",
                ));
            }
            if sig.asyncness.is_some()
                && let Some(def) = lifetimes.first()
            {
                errors.push(syn::Error::new_spanned(
                    def,
                    "cachier: an `async fn` with named lifetimes cannot be cached yet: \
                     write its references with elided lifetimes (`&str`)",
                ));
            }
        }
        let arg_types = args.iter().map(|a| &a.ty);
        let fingerprint = quote!(fn(#(#arg_types),*) -> #output)
            .to_string()
            .split_whitespace()
            .collect();
        errors.finish_with(Some(Signature {
            is_async: sig.asyncness.is_some(),
            returns: returns(&output),
            stored: stored(&output),
            output,
            args,
            is_method,
            type_params,
            const_params,
            lifetimes: lifetimes.into_iter().map(|def| def.lifetime.clone()).collect(),
            fingerprint,
        }))
    }

    /// Whether the function is emitted as itself, its cache inside it (a
    /// method or a generic function), rather than as a constant.
    pub fn is_inline(&self) -> bool {
        self.is_method || !self.type_params.is_empty() || !self.const_params.is_empty()
    }
}

fn arg(input: &FnArg) -> syn::Result<Arg> {
    let typed = match input {
        FnArg::Receiver(receiver) => return receiver_arg(receiver),
        FnArg::Typed(typed) => typed,
    };
    let Pat::Ident(pat) = &*typed.pat else {
        return Err(syn::Error::new_spanned(
            &typed.pat,
            "cachier: arguments must be plain names (`name: Type`); destructure inside the body",
        ));
    };
    if let Some((_, sub)) = &pat.subpat {
        return Err(syn::Error::new(
            sub.span(),
            "cachier: arguments must be plain names (`name: Type`)",
        ));
    }
    if pat.by_ref.is_some() {
        return Err(syn::Error::new_spanned(
            pat,
            "cachier: `ref` arguments are not supported",
        ));
    }
    if pat.ident.to_string().starts_with("__cachier") {
        return Err(syn::Error::new_spanned(
            &pat.ident,
            "cachier: names starting with `__cachier` are reserved for generated code",
        ));
    }
    let ty = (*typed.ty).clone();
    let behind_ref = match &ty {
        Type::Reference(reference) => &*reference.elem,
        other => other,
    };
    if let Type::ImplTrait(_) = behind_ref {
        return Err(syn::Error::new_spanned(
            &ty,
            "cachier: `impl Trait` arguments are generic, which is not supported: use a concrete type",
        ));
    }
    Ok(Arg {
        name: pat.ident.clone(),
        ty,
    })
}

/// The receiver as an argument named `self`; `&mut self` is refused, since
/// a call served from the cache would not run the body that mutates it.
fn receiver_arg(receiver: &syn::Receiver) -> syn::Result<Arg> {
    if matches!(&*receiver.ty, Type::Reference(r) if r.mutability.is_some()) {
        return Err(syn::Error::new_spanned(
            receiver,
            "cachier: a method taking `&mut self` cannot be cached: a call served from the cache \
             would not run the body, so its changes to `self` would happen only sometimes. \
             Take `&self` (with interior mutability if needed), or cache a function the method calls",
        ));
    }
    Ok(Arg {
        name: Ident::new("self", receiver.self_token.span),
        ty: (*receiver.ty).clone(),
    })
}

/// Classifies by the last path segment, so aliases such as `io::Result<T>` count.
fn returns(output: &Type) -> Returns {
    let Type::Path(TypePath { qself: None, path }) = output else {
        return Returns::Plain;
    };
    match path.segments.last().map(|s| s.ident.to_string()).as_deref() {
        Some("Result") => Returns::Result,
        Some("Option") => Returns::Option,
        _ => Returns::Plain,
    }
}

/// What `returns` says is stored of `output`: its first type argument for
/// `Result` and `Option`, else the type itself.
fn stored(output: &Type) -> Option<Type> {
    if returns(output) == Returns::Plain {
        return Some(output.clone());
    }
    let Type::Path(TypePath { path, .. }) = output else {
        return None;
    };
    let syn::PathArguments::AngleBracketed(args) = &path.segments.last()?.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        syn::GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    })
}

impl Arg {
    /// `name: Type` without `mut`, for generated signatures.
    pub fn declaration(&self) -> TokenStream {
        let (name, ty) = (&self.name, &self.ty);
        quote!(#name: #ty)
    }

    /// The type with every elided lifetime (`&T`, `'_`) named `lifetime`, and
    /// whether it had any.
    pub fn type_with_lifetime(&self, lifetime: &Lifetime) -> (Type, bool) {
        struct Name<'a>(&'a Lifetime, bool);
        impl VisitMut for Name<'_> {
            fn visit_type_reference_mut(&mut self, reference: &mut syn::TypeReference) {
                if reference.lifetime.is_none() {
                    reference.lifetime = Some(self.0.clone());
                    self.1 = true;
                }
                syn::visit_mut::visit_type_reference_mut(self, reference);
            }
            fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
                if lifetime.ident == "_" {
                    *lifetime = self.0.clone();
                    self.1 = true;
                }
            }
        }
        let mut ty = self.ty.clone();
        let mut name = Name(lifetime, false);
        name.visit_type_mut(&mut ty);
        (ty, name.1)
    }
}
