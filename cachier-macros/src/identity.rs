//! The digest of a function's body that versions its cache: code that changes
//! never reads entries computed by the old code; and the `Code` of a
//! function, that digest with those of the functions it names in `deps`.
//!
//! The digest walks the body's tokens, not their text: an identifier, a
//! punctuation character or a literal is hashed with a tag and its length, and
//! each group with its delimiters. Whitespace, comments (`//`, `/* */`) and doc
//! comments (`#[doc = ...]`, `///` inside the body) do not count, and neither
//! does the spacing between punctuation, which rustfmt may change. The walk
//! does not depend on how `proc_macro2` prints tokens, so a new compiler does
//! not invalidate every cache.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::{format_ident, quote};
use sha1::{Digest, Sha1};

use crate::attrs::{Attrs, BodyChanges};

/// A `cachier::Code` expression for the function whose body is `body`: its
/// own version (the body digest, the `version` given, or nothing with
/// `body_changes = "keep"`) and references to the `Code` of its `deps`.
pub fn code(attrs: &Attrs, body: TokenStream, krate: &TokenStream) -> TokenStream {
    let own = match (&attrs.version, &attrs.body_changes) {
        (Some(version), _) => format!("version {}", version.value),
        (None, Some(keep)) if keep.value == BodyChanges::Keep => String::new(),
        (None, _) => format!("body {}", body_digest(body)),
    };
    let deps = attrs.deps.iter().flat_map(|deps| &deps.value).map(|path| {
        let mut path = path.clone();
        if let Some(last) = path.segments.last_mut() {
            last.ident = code_name(&last.ident);
            last.arguments = syn::PathArguments::None;
        }
        quote!(&#path)
    });
    quote!(#krate::Code { own: #own, deps: &[#(#deps),*] })
}

/// The name of the constant holding the `Code` of the function `name`,
/// which `deps = [name]` refers to.
pub fn code_name(name: &syn::Ident) -> syn::Ident {
    format_ident!("__cachier_code_{}", name, span = name.span())
}

/// The lower-case hex SHA-1 of the canonical walk of `body`.
pub fn body_digest(body: TokenStream) -> String {
    let mut hasher = Sha1::new();
    walk(body, &mut hasher);
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn walk(tokens: TokenStream, out: &mut Sha1) {
    let mut trees = tokens.into_iter();
    while let Some(tree) = trees.next() {
        match tree {
            TokenTree::Punct(punct) if punct.as_char() == '#' && skip_doc_attribute(&mut trees) => {}
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => (b'(', b')'),
                    Delimiter::Brace => (b'{', b'}'),
                    Delimiter::Bracket => (b'[', b']'),
                    Delimiter::None => (b'<', b'>'),
                };
                out.update([open]);
                walk(group.stream(), out);
                out.update([close]);
            }
            TokenTree::Ident(ident) => field(out, b'i', &ident.to_string()),
            TokenTree::Punct(punct) => field(out, b'p', punct.as_char().encode_utf8(&mut [0; 4])),
            TokenTree::Literal(literal) => field(out, b'l', &literal.to_string()),
        }
    }
}

fn field(out: &mut Sha1, tag: u8, text: &str) {
    out.update([tag]);
    out.update(u32::try_from(text.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.update(text.as_bytes());
}

/// After a `#`: if a doc attribute (`[doc ...]` or `![doc ...]`) follows,
/// consumes it and says so.
fn skip_doc_attribute(trees: &mut proc_macro2::token_stream::IntoIter) -> bool {
    let mut ahead = trees.clone();
    let mut next = ahead.next();
    if matches!(&next, Some(TokenTree::Punct(p)) if p.as_char() == '!') {
        next = ahead.next();
    }
    let is_doc = matches!(&next, Some(TokenTree::Group(group))
        if group.delimiter() == Delimiter::Bracket
            && matches!(group.stream().into_iter().next(), Some(TokenTree::Ident(name)) if name == "doc"));
    if is_doc {
        *trees = ahead;
    }
    is_doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(source: &str) -> String {
        body_digest(source.parse().expect("test sources are valid tokens"))
    }

    #[test]
    fn the_digest_is_pinned() {
        // A change here invalidates every user's cache: say so in CHANGELOG.md.
        // Checked against a Python re-implementation of the walk: SHA-1 of
        // b"{" + (tag, u32 LE length, text) per token + b"(" ... b")" + b"}".
        assert_eq!(
            digest("{ let total = a + b * 2; format!(\"{total}\") }"),
            "fcb0a7d397b5c1d9094c260de8e9effd97fae985"
        );
    }

    #[test]
    fn formatting_and_comments_do_not_count() {
        let base = digest("{ let x = a+b; if x > -1 { x } else { 0 } }");
        for same in [
            "{\n    let x = a + b;\n    if x > - 1 { x } else { 0 }\n}",
            "{ let x = a + b; // sum\n /* check */ if x > -1 { x } else { 0 } }",
            "{ /// the sum\n let x = a + b; if x > -1 { x } else { 0 } }",
        ] {
            assert_eq!(digest(same), base, "{same}");
        }
    }

    #[test]
    fn code_counts() {
        let base = digest("{ let x = a + b; x }");
        for other in [
            "{ let x = a - b; x }",
            "{ let x = a + c; x }",
            "{ let x = a + b; (x) }",
            "{ let x = a + \"b\"; x }",
            "{ #[allow(unused)] let x = a + b; x }",
        ] {
            assert_ne!(digest(other), base, "{other}");
        }
    }
}
