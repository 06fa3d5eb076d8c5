//! Checks that span several options, or options and the signature, and the
//! one error accumulator every check reports to, so that a single compile shows
//! every mistake at once (an unknown option and an unsupported signature alike).

use proc_macro2::Span;
use syn::Type;

use crate::attrs::{Attrs, Backend};
use crate::signature::{Returns, Signature};

/// Collects several errors so that one compile reports them all.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn record<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// `Err` with every error recorded, if there is any; else `value`, which
    /// is there whenever nothing was recorded.
    pub fn finish_with<T>(self, value: Option<T>) -> syn::Result<T> {
        match (self.0, value) {
            (Some(errors), _) => Err(errors),
            (None, Some(value)) => Ok(value),
            (None, None) => Err(syn::Error::new(
                Span::call_site(),
                "cachier: the function could not be read",
            )),
        }
    }
}

fn error(span: Span, message: &str) -> syn::Error {
    syn::Error::new(span, format!("cachier: {message}"))
}

/// Options that make no sense together.
pub fn options(attrs: &Attrs, errors: &mut Errors) {
    let backend = attrs.backend.as_ref().map(|b| b.value);
    if let (Some(core), Some(_)) = (&attrs.core, backend) {
        errors.push(error(core.span, "give either `core` or `backend`, not both"));
    }
    let file_only = [
        ("cache_dir", attrs.cache_dir.as_ref().map(|d| d.span)),
        ("segments", attrs.segments.as_ref().map(|s| s.span)),
    ];
    for (name, span) in file_only {
        let Some(span) = span else { continue };
        if attrs.core.is_some() {
            errors.push(error(
                span,
                &format!("`{name}` is for the file backend; a custom `core` keeps its own storage"),
            ));
        }
        if backend.is_some_and(|b| b != Backend::File) {
            errors.push(error(
                span,
                &format!("`{name}` only applies to `backend = \"file\"`"),
            ));
        }
    }
    let getters = [
        ("mongetter", &attrs.mongetter, Backend::Mongo, "mongo"),
        ("redis_client", &attrs.redis_client, Backend::Redis, "redis"),
    ];
    for (name, getter, its_backend, its_name) in getters {
        let Some(getter) = getter else { continue };
        if attrs.core.is_some() {
            errors.push(error(
                getter.span,
                &format!("give either `core` or `{name}`, not both"),
            ));
        }
        if backend.is_some_and(|b| b != its_backend) {
            errors.push(error(
                getter.span,
                &format!("`{name}` only applies to `backend = \"{its_name}\"`"),
            ));
        }
    }
    let budgets = [
        ("max_entries", &attrs.max_entries),
        ("max_bytes", &attrs.max_bytes),
    ];
    for (name, budget) in budgets {
        if let Some(budget) = budget
            && backend.is_some_and(|b| !matches!(b, Backend::File | Backend::Memory))
        {
            errors.push(error(
                budget.span,
                &format!(
                    "`{name}` applies to the file and memory backends, which record when entries are used; \
                     bound a server's store with `stale_after` and `cleanup_stale = true`, or with the \
                     server's own limits (Redis: `maxmemory` and `maxmemory-policy allkeys-lru`)"
                ),
            ));
        }
    }
    if let (Some(_), Some(body_changes)) = (&attrs.version, &attrs.body_changes) {
        errors.push(error(
            body_changes.span,
            "give either `version` (which replaces the body digest) or `body_changes`, not both",
        ));
    }
    if let Some(interval) = &attrs.cleanup_interval
        && !attrs.cleanup_stale.as_ref().is_some_and(|c| c.value)
    {
        errors.push(error(
            interval.span,
            "`cleanup_interval` has no effect without `cleanup_stale = true`",
        ));
    }
}

/// `#[cachier::track]` takes only the options about code.
pub fn track_options(attrs: &Attrs, errors: &mut Errors) {
    const ABOUT_CODE: [&str; 4] = ["deps", "version", "body_changes", "crate"];
    for (name, span) in attrs
        .given
        .iter()
        .filter(|(name, _)| !ABOUT_CODE.contains(&name.as_str()))
    {
        errors.push(error(
            *span,
            &format!(
                "`{name}` is a caching option, for `#[cachier]`: \
                 `#[cachier::track]` takes only `deps`, `version`, `body_changes` and `crate`"
            ),
        ));
    }
}

/// Options that depend on the function's signature.
pub fn against_signature(attrs: &Attrs, sig: &Signature, errors: &mut Errors) {
    if let Some(ignore) = &attrs.ignore {
        if let Some(hash_func) = &attrs.hash_func {
            errors.push(error(
                hash_func.span,
                "give either `hash_func` (which keys the call itself) or `ignore`, not both",
            ));
        }
        for name in ignore
            .value
            .iter()
            .filter(|name| !sig.args.iter().any(|arg| arg.name == **name))
        {
            errors.push(syn::Error::new_spanned(
                name,
                format!("cachier: `ignore` names `{name}`, which is not an argument of this function"),
            ));
        }
    }
    if let Some(local) = attrs.local.as_ref().filter(|l| l.value) {
        if !sig.is_async {
            errors.push(error(
                local.span,
                "`local` is for an `async fn` whose future is not `Send`; a sync function has no future",
            ));
        } else if sig.is_inline() {
            errors.push(error(
                local.span,
                "`local` is for free functions: a method's or generic function's future is `Send` \
                 exactly when its body's is, without it",
            ));
        }
    }
    if let Some(allow_none) = &attrs.allow_none
        && sig.returns != Returns::Option
    {
        errors.push(error(
            allow_none.span,
            "`allow_none` only applies to functions returning `Option`",
        ));
    }
    if let Some(next_time) = attrs.next_time.as_ref().filter(|n| n.value)
        && let Some(arg) = sig
            .args
            .iter()
            .find(|a| matches!(&a.ty, Type::Reference(r) if r.mutability.is_some()))
    {
        errors.push(error(
            next_time.span,
            "`next_time` refreshes in the background, which needs owned copies of the arguments",
        ));
        errors.push(syn::Error::new_spanned(
            &arg.ty,
            "cachier: a `&mut` argument cannot be copied for `next_time`",
        ));
    }
}
