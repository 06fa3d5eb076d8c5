//! Parsing and validating the options of `#[cachier(...)]`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned as _;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Path, Token};

use crate::check::Errors;
use crate::units;

/// Whether an edit of the body starts a fresh cache.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum BodyChanges {
    Invalidate,
    Keep,
}

/// The built-in backends a function can name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    File,
    Memory,
    Mongo,
    Redis,
    Sql,
}

/// An option's value, with the span of the whole `name = value` for errors.
pub struct Located<T> {
    pub value: T,
    pub span: Span,
}

/// The options of one `#[cachier(...)]`, validated one by one.
#[derive(Default)]
pub struct Attrs {
    pub backend: Option<Located<Backend>>,
    pub cache_dir: Option<Located<Expr>>,
    /// Whether the file core packs small entries into segments.
    pub segments: Option<Located<bool>>,
    pub core: Option<Located<Expr>>,
    /// A `fn() -> mongodb::sync::Collection<Document>` for the MongoDB core.
    pub mongetter: Option<Located<Expr>>,
    /// A `fn() -> redis::Client` for the Redis core.
    pub redis_client: Option<Located<Expr>>,
    /// Expressions of type `Duration`.
    pub stale_after: Option<TokenStream>,
    pub next_time: Option<Located<bool>>,
    pub wait_for_calc_timeout: Option<TokenStream>,
    pub allow_none: Option<Located<bool>>,
    pub hash_func: Option<Located<Expr>>,
    /// An expression of type `usize`.
    pub entry_size_limit: Option<TokenStream>,
    /// Expressions of type `u64`.
    pub max_entries: Option<Located<TokenStream>>,
    pub max_bytes: Option<Located<TokenStream>>,
    pub cleanup_stale: Option<Located<bool>>,
    pub cleanup_interval: Option<Located<TokenStream>>,
    /// Replaces the body digest in the function's identity.
    pub version: Option<Located<String>>,
    /// `"keep"`: the body digest is left out of the function's identity.
    pub body_changes: Option<Located<BodyChanges>>,
    /// Functions whose code is part of this one's identity.
    pub deps: Option<Located<Vec<Path>>>,
    /// An `async fn` whose future is not `Send`.
    pub local: Option<Located<bool>>,
    /// Arguments left out of the key.
    pub ignore: Option<Located<Vec<syn::Ident>>>,
    /// The path of the `cachier` crate, for users who renamed it.
    pub krate: Option<Path>,
    /// The name and span of every option given, known or not.
    pub given: Vec<(String, Span)>,
}

const OPTIONS: &str = "backend, cache_dir, segments, core, mongetter, redis_client, stale_after, next_time, wait_for_calc_timeout, \
                       allow_none, hash_func, entry_size_limit, max_entries, max_bytes, cleanup_stale, cleanup_interval, version, \
                       body_changes, deps, local, ignore, crate";

impl Attrs {
    /// Parses every option it can, recording an error for each one it cannot.
    pub fn parse(args: TokenStream, errors: &mut Errors) -> Attrs {
        let mut attrs = Attrs::default();
        match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
            Ok(metas) => {
                for meta in metas {
                    errors.record(attrs.set(meta));
                }
            }
            Err(error) => errors.push(error),
        }
        attrs
    }

    fn set(&mut self, meta: Meta) -> syn::Result<()> {
        let name = match meta.path().get_ident() {
            Some(ident) => ident.to_string(),
            None => {
                return Err(syn::Error::new_spanned(
                    meta.path(),
                    format!("cachier: unknown option; expected one of: {OPTIONS}"),
                ));
            }
        };
        let span = meta.span();
        self.given.push((name.clone(), span));
        match name.as_str() {
            "backend" => fill(&mut self.backend, &name, span, backend(&meta)?),
            "cache_dir" => fill(&mut self.cache_dir, &name, span, expr(&meta)?),
            "segments" => fill(&mut self.segments, &name, span, flag(&meta)?),
            "core" => fill(&mut self.core, &name, span, expr(&meta)?),
            "mongetter" => fill(&mut self.mongetter, &name, span, expr(&meta)?),
            "redis_client" => fill(&mut self.redis_client, &name, span, expr(&meta)?),
            "stale_after" => fill(&mut self.stale_after, &name, span, duration(&meta)?),
            "next_time" => fill(&mut self.next_time, &name, span, flag(&meta)?),
            "wait_for_calc_timeout" => fill(&mut self.wait_for_calc_timeout, &name, span, duration(&meta)?),
            "allow_none" => fill(&mut self.allow_none, &name, span, flag(&meta)?),
            "hash_func" => fill(&mut self.hash_func, &name, span, expr(&meta)?),
            "entry_size_limit" => fill(&mut self.entry_size_limit, &name, span, size(&meta)?),
            "max_entries" => fill(&mut self.max_entries, &name, span, located(count(&meta)?, span)),
            "max_bytes" => fill(&mut self.max_bytes, &name, span, located(size(&meta)?, span)),
            "cleanup_stale" => fill(&mut self.cleanup_stale, &name, span, flag(&meta)?),
            "cleanup_interval" => fill(
                &mut self.cleanup_interval,
                &name,
                span,
                located(duration(&meta)?, span),
            ),
            "version" => fill(&mut self.version, &name, span, text(&meta)?),
            "body_changes" => fill(&mut self.body_changes, &name, span, body_changes(&meta)?),
            "deps" => fill(&mut self.deps, &name, span, paths(&meta)?),
            "local" => fill(&mut self.local, &name, span, flag(&meta)?),
            "ignore" => fill(&mut self.ignore, &name, span, names(&meta)?),
            "crate" => fill(&mut self.krate, &name, span, crate_path(&meta)?),
            _ => Err(syn::Error::new_spanned(
                meta.path(),
                format!("cachier: unknown option `{name}`; expected one of: {OPTIONS}"),
            )),
        }
    }

    /// The path of the runtime crate: `crate = ...` if given, else however the
    /// user's `Cargo.toml` names the `cachier-rs` package.
    pub fn crate_path(&self) -> TokenStream {
        if let Some(path) = &self.krate {
            return path.to_token_stream();
        }
        match proc_macro_crate::crate_name(PACKAGE) {
            // A renamed dependency (`cache = { package = "cachier-rs", .. }`) is
            // known by its key. An unrenamed one comes back as the package name
            // sanitized, but is known by its library name, `cachier`; so is the
            // facade inside its own tests, examples and doctests (`Itself`).
            Ok(proc_macro_crate::FoundCrate::Name(name)) if name != PACKAGE.replace('-', "_") => {
                let ident = syn::Ident::new(&name, Span::call_site());
                quote!(::#ident)
            }
            _ => quote!(::cachier),
        }
    }
}

/// The facade's package name on the registry; its library is `cachier`.
const PACKAGE: &str = "cachier-rs";

fn located<T>(value: T, span: Span) -> Located<T> {
    Located { value, span }
}

fn fill<T>(slot: &mut Option<T>, name: &str, span: Span, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(span, format!("cachier: `{name}` is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

fn name_of(meta: &Meta) -> String {
    meta.path().to_token_stream().to_string()
}

/// The value of `name = value`, seen through the invisible groups that
/// `macro_rules!` puts around what it substitutes (`backend = $backend`).
fn value(meta: &Meta) -> syn::Result<&Expr> {
    match meta {
        Meta::NameValue(nv) => {
            let mut value = &nv.value;
            while let Expr::Group(group) = value {
                value = &group.expr;
            }
            Ok(value)
        }
        _ => Err(syn::Error::new_spanned(
            meta,
            format!("cachier: `{}` needs a value: `{0} = ...`", name_of(meta)),
        )),
    }
}

/// Any expression, evaluated in the generated code.
fn expr(meta: &Meta) -> syn::Result<Located<Expr>> {
    Ok(Located {
        value: value(meta)?.clone(),
        span: meta.span(),
    })
}

fn string(expr: &Expr) -> Option<&LitStr> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Some(s),
        _ => None,
    }
}

/// `[name, ...]`: argument names.
fn names(meta: &Meta) -> syn::Result<Located<Vec<syn::Ident>>> {
    let example = "a list of argument names, such as `[client, progress]`";
    let paths = paths_like(meta, example)?;
    let value = paths
        .value
        .iter()
        .map(|path| {
            path.get_ident()
                .cloned()
                .ok_or_else(|| expected(meta, path, example))
        })
        .collect::<syn::Result<_>>()?;
    Ok(Located {
        value,
        span: paths.span,
    })
}

/// `[path, ...]`: functions.
fn paths(meta: &Meta) -> syn::Result<Located<Vec<Path>>> {
    paths_like(meta, "a list of functions, such as `[tokenize, text::weight]`")
}

/// `[path, ...]`, or an error saying the option expects `example`.
fn paths_like(meta: &Meta, example: &str) -> syn::Result<Located<Vec<Path>>> {
    let expr = value(meta)?;
    let Expr::Array(array) = expr else {
        return Err(expected(meta, expr, example));
    };
    let value = array
        .elems
        .iter()
        .map(|elem| match elem {
            Expr::Path(path) if path.qself.is_none() => Ok(path.path.clone()),
            other => Err(expected(meta, other, example)),
        })
        .collect::<syn::Result<_>>()?;
    Ok(Located {
        value,
        span: meta.span(),
    })
}

fn expected(meta: &Meta, at: &dyn ToTokens, example: &str) -> syn::Error {
    syn::Error::new_spanned(at, format!("cachier: `{}` expects {example}", name_of(meta)))
}

fn body_changes(meta: &Meta) -> syn::Result<Located<BodyChanges>> {
    const EXPECTED: &str = r#"expected "invalidate" (the default) or "keep""#;
    let expr = value(meta)?;
    let value = match string(expr).map(LitStr::value).as_deref() {
        Some("invalidate") => BodyChanges::Invalidate,
        Some("keep") => BodyChanges::Keep,
        _ => {
            return Err(syn::Error::new_spanned(
                expr,
                format!("cachier: `body_changes` {EXPECTED}"),
            ));
        }
    };
    Ok(Located {
        value,
        span: meta.span(),
    })
}

/// A non-empty string literal.
fn text(meta: &Meta) -> syn::Result<Located<String>> {
    let expr = value(meta)?;
    let lit = string(expr)
        .filter(|lit| !lit.value().is_empty())
        .ok_or_else(|| {
            syn::Error::new_spanned(
                expr,
                format!(
                    "cachier: `{}` expects a non-empty string such as \"2024-06\"",
                    name_of(meta)
                ),
            )
        })?;
    Ok(Located {
        value: lit.value(),
        span: meta.span(),
    })
}

/// `name` alone, or `name = true` / `name = false`.
fn flag(meta: &Meta) -> syn::Result<Located<bool>> {
    let span = meta.span();
    match meta {
        Meta::Path(_) => Ok(Located { value: true, span }),
        Meta::NameValue(nv) => match &nv.value {
            Expr::Lit(ExprLit {
                lit: Lit::Bool(b), ..
            }) => Ok(Located { value: b.value, span }),
            other => Err(syn::Error::new_spanned(
                other,
                format!("cachier: `{}` expects `true` or `false`", name_of(meta)),
            )),
        },
        Meta::List(_) => Err(syn::Error::new_spanned(
            meta,
            format!("cachier: `{}` expects `true` or `false`", name_of(meta)),
        )),
    }
}

fn backend(meta: &Meta) -> syn::Result<Located<Backend>> {
    const EXPECTED: &str = r#"expected "file", "memory", "mongo", "redis" or "sql""#;
    let expr = value(meta)?;
    let lit = string(expr)
        .ok_or_else(|| syn::Error::new_spanned(expr, format!("cachier: `backend` {EXPECTED}")))?;
    let value = match lit.value().as_str() {
        "file" => Backend::File,
        "memory" => Backend::Memory,
        "mongo" => Backend::Mongo,
        "redis" => Backend::Redis,
        "sql" => Backend::Sql,
        "sqlite" | "postgres" | "postgresql" => {
            return Err(syn::Error::new_spanned(
                lit,
                format!(
                    "cachier: unknown backend \"{}\"; write `backend = \"sql\"`, with the database in \
                     $CACHIER_SQL_URL (`sqlite://<path>` or `postgres://..`)",
                    lit.value()
                ),
            ));
        }
        other => {
            return Err(syn::Error::new_spanned(
                lit,
                format!("cachier: unknown backend \"{other}\"; {EXPECTED}"),
            ));
        }
    };
    Ok(Located {
        value,
        span: meta.span(),
    })
}

/// A string such as `"3d"`, checked now, or any expression of type `Duration`.
fn duration(meta: &Meta) -> syn::Result<TokenStream> {
    let expr = value(meta)?;
    if let Some(lit) = string(expr) {
        let parsed = units::parse_duration(&lit.value())
            .map_err(|e| syn::Error::new_spanned(lit, format!("cachier: bad `{}`: {e}", name_of(meta))))?;
        let (secs, nanos) = (parsed.as_secs(), parsed.subsec_nanos());
        return Ok(quote_spanned!(lit.span()=> ::core::time::Duration::new(#secs, #nanos)));
    }
    if let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = expr
    {
        return Err(syn::Error::new_spanned(
            int,
            format!(
                "cachier: `{}` needs a unit: write \"{}s\" or a `Duration`",
                name_of(meta),
                int.base10_digits()
            ),
        ));
    }
    Ok(expr.to_token_stream())
}

/// A string such as `"10MB"`, an integer, or any expression of type `usize`.
fn size(meta: &Meta) -> syn::Result<TokenStream> {
    let expr = value(meta)?;
    match string(expr) {
        Some(lit) => {
            let bytes = units::parse_size(&lit.value()).map_err(|e| {
                syn::Error::new_spanned(lit, format!("cachier: bad `{}`: {e}", name_of(meta)))
            })?;
            // Unsuffixed: `entry_size_limit` takes a `usize`, `max_bytes` a `u64`.
            let bytes = proc_macro2::Literal::u64_unsuffixed(bytes);
            Ok(quote_spanned!(lit.span()=> #bytes))
        }
        None => Ok(expr.to_token_stream()),
    }
}

/// A positive integer, or any expression of type `u64`.
fn count(meta: &Meta) -> syn::Result<TokenStream> {
    let expr = value(meta)?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) if int.base10_parse::<u64>().is_ok_and(|n| n == 0) => Err(syn::Error::new_spanned(
            int,
            format!(
                "cachier: `{} = 0` would keep nothing: give at least 1, or use `ignore_cache` to skip the cache",
                name_of(meta)
            ),
        )),
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Err(syn::Error::new_spanned(
            lit,
            format!(
                "cachier: `{}` expects a number of entries, such as `10_000`",
                name_of(meta)
            ),
        )),
        _ => Ok(expr.to_token_stream()),
    }
}

/// `crate = "path"` or `crate = path`.
fn crate_path(meta: &Meta) -> syn::Result<Path> {
    let expr = value(meta)?;
    match (string(expr), expr) {
        (Some(lit), _) => lit.parse(),
        (None, Expr::Path(path)) => Ok(path.path.clone()),
        _ => Err(syn::Error::new_spanned(
            expr,
            "cachier: `crate` expects a path such as `\"::my_cachier\"`",
        )),
    }
}
