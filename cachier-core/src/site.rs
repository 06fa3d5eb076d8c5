//! Where a cached method or generic function keeps its cache.
//!
//! `#[cachier]` can emit nothing beside a method (a trait impl admits only
//! the trait's items), and nothing inside it can name `Self`. So the cache
//! lives in a [`Site`], a static in the function's body, and the site finds
//! its own name: that of a marker type declared next to it, which rustc
//! prints with the path of the function around it
//! (`<app::Model as app::Scorer>::score::__cachier_site`, with
//! `::{{closure}}` before the marker for an `async fn`). Every site is
//! registered at start-up, so that [`find`] can answer `cache_of!` before
//! the function's first call, from the name of the function's item type.

use std::sync::OnceLock;

use crate::engine::FunctionCache;

/// The name of the marker type a site's path ends with.
const MARKER: &str = "::__cachier_site";

/// The cache of one cached method or generic function, built on first use.
///
/// ```
/// use cachier_core::{Backend, FunctionCache, site::Site};
/// fn noop() {
///     #[allow(non_camel_case_types)]
///     struct __cachier_site;
///     static SITE: Site = Site::new(
///         || std::any::type_name::<__cachier_site>(),
///         |name| FunctionCache::builder(name).backend(Backend::Memory).build(),
///     );
///     assert_eq!(SITE.cache().info().hits, 0);
///     assert!(SITE.path().ends_with("::noop"));
/// }
/// noop();
/// ```
pub struct Site {
    marker: fn() -> &'static str,
    build: fn(&str) -> FunctionCache,
    cache: OnceLock<FunctionCache>,
}

impl Site {
    /// A site named by `marker` (the `type_name` of a type declared in the
    /// function's body) whose cache `build` makes, given the site's path.
    pub const fn new(marker: fn() -> &'static str, build: fn(&str) -> FunctionCache) -> Self {
        Site {
            marker,
            build,
            cache: OnceLock::new(),
        }
    }

    /// The function's cache. Costs one atomic load once built.
    pub fn cache(&self) -> &FunctionCache {
        self.cache.get_or_init(|| (self.build)(self.path()))
    }

    /// The path of the function, as rustc prints it: `app::Model::features`,
    /// `<app::Model as app::Scorer>::score`, with `_` for the parameters of a
    /// generic impl (`app::Wrapper<_>::get`).
    pub fn path(&self) -> &'static str {
        let marker = (self.marker)();
        let path = marker.strip_suffix(MARKER).unwrap_or(marker);
        // The body of an `async fn` is a coroutine of its own: `f::{{closure}}`.
        match path.rsplit_once("::{{") {
            Some((function, _)) if path.ends_with("}}") => function,
            _ => path,
        }
    }
}

/// A site as registered at start-up.
#[doc(hidden)]
pub struct Registered(pub &'static Site);

inventory::collect!(Registered);

/// The cache of the function whose item type rustc names `item` (its
/// `type_name`, such as `app::Model::features` or `app::summarize<u32>`), if
/// that function is a cached method or generic function.
///
/// ```
/// # use cachier_core::site;
/// assert!(site::find("app::not_cached").is_none());
/// ```
pub fn find(item: &str) -> Option<&'static FunctionCache> {
    let item = without_own_generics(item);
    inventory::iter::<Registered>
        .into_iter()
        .find(|site| matches(site.0.path(), item))
        .map(|site| site.0.cache())
}

/// `item` without the generic arguments of its last segment: the function's
/// own type parameters are part of its keys, not of its identity.
fn without_own_generics(item: &str) -> &str {
    let Some(open) = item.strip_suffix('>').and_then(matching_open) else {
        return item;
    };
    // `<A as B>` is a qualified self type, not generic arguments.
    if open == 0 || item[..open].ends_with("::") {
        return item;
    }
    &item[..open]
}

/// Where the `<` matching the `>` just after `s` is.
fn matching_open(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (at, c) in s.char_indices().rev() {
        match c {
            '>' => depth += 1,
            '<' if depth == 0 => return Some(at),
            '<' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Whether `name` fits `path`, where a `_` standing for a whole type in
/// `path` (a parameter of a generic impl) fits any type.
fn matches(path: &str, name: &str) -> bool {
    let (mut path, mut name) = (path.as_bytes(), name.as_bytes());
    let mut previous = b' ';
    loop {
        match (path.first(), name.first()) {
            (None, None) => return true,
            (Some(b'_'), Some(_))
                if matches!(previous, b'<' | b' ' | b'(' | b'[')
                    && matches!(path.get(1), None | Some(b'>' | b',' | b')' | b']' | b';')) =>
            {
                path = &path[1..];
                name = &name[type_len(name)..];
                previous = b'_';
            }
            (Some(p), Some(n)) if p == n => {
                previous = *p;
                path = &path[1..];
                name = &name[1..];
            }
            _ => return false,
        }
    }
}

/// The length of the type `name` starts with: up to a `,`, `>`, `)`, `]` or
/// `;` outside brackets.
fn type_len(name: &[u8]) -> usize {
    let mut depth = 0usize;
    for (at, c) in name.iter().enumerate() {
        match c {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' | b')' | b']' | b',' | b';' if depth == 0 => return at,
            b'>' | b')' | b']' => depth -= 1,
            _ => {}
        }
    }
    name.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_functions_own_generics_are_left_out() {
        assert_eq!(without_own_generics("app::summarize<u32>"), "app::summarize");
        assert_eq!(
            without_own_generics("app::Gen<u8>::get<Vec<u16>>"),
            "app::Gen<u8>::get"
        );
        assert_eq!(without_own_generics("app::Gen<u8>::get"), "app::Gen<u8>::get");
        assert_eq!(
            without_own_generics("<app::Model as app::Scorer>::score"),
            "<app::Model as app::Scorer>::score"
        );
    }

    #[test]
    fn a_placeholder_fits_any_whole_type() {
        assert!(matches("app::Gen<_>::get", "app::Gen<u8>::get"));
        assert!(matches(
            "app::Gen<_, _>::get",
            "app::Gen<Vec<(u8, u16)>, [u8; 4]>::get"
        ));
        assert!(matches(
            "<app::Gen<_> as app::Tr<_>>::f",
            "<app::Gen<u8> as app::Tr<String>>::f"
        ));
        assert!(matches("app::my_mod::f", "app::my_mod::f"));
        assert!(!matches("app::my_mod::f", "app::myXmod::f"));
        assert!(!matches("app::Gen<_>::get", "app::Gen<u8>::got"));
        assert!(!matches("app::Gen<u8>::get", "app::Gen<u16>::get"));
        assert!(!matches("app::f", "app::f2"));
    }
}
