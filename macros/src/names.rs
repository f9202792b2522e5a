//! What the expansion calls the items it generates, and how it reaches them.
//!
//! Hygiene: every local the expansion introduces is spanned `mixed_site`, and so is every
//! *use* of a generated free function (`f_memo`, `f_entry`, `__memoize_f`) inside the
//! expansion, so an argument may be called anything, those names included: a `mixed_site`
//! identifier does not see the caller's locals, and still finds items (cached #114, #230).
//! Items cannot be hidden that way (a `mixed_site` item is seen at the call site), so the one
//! item whose name an argument could collide with, the free function's body, is nested where no
//! argument is named (see `expand.rs`).

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::{Ident, Path};

use crate::ast::{Memoized, path_text};

/// A local variable of the expansion, unseen by the user's code and unshadowed by it.
pub(crate) fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// `ident`, seen from inside the expansion only: it finds the item so named, never an argument
/// of the user's that happens to share its name.
fn hygienic(ident: &Ident) -> Ident {
    let mut ident = ident.clone();
    ident.set_span(Span::mixed_site().located_at(ident.span()));
    ident
}

/// The generated items' names, and how the expansion reaches them.
pub(crate) struct Names {
    pub(crate) krate: Path,
    /// An associated function (a receiver, or `in_impl = true`): siblings reach each other
    /// through `Self::`.
    pub(crate) in_impl: bool,
    /// `f_memo`, as users name it.
    pub(crate) memo: Ident,
    /// `f_entry`, as users name it.
    pub(crate) entry: Ident,
    /// `__memoize_f`: the body, hygienic.
    pub(crate) body: Ident,
    /// Outside an `impl`: a unit constant beside `f_memo`, read first thing by `f_entry`. A
    /// free function's items all resolve; in an `impl` without `in_impl = true` nothing tells
    /// the macro where it is, the items become associated ones, and the unqualified read fails
    /// first, with this name as the message (rustc's own "cannot find function `f_memo`" says
    /// nothing of the fix).
    pub(crate) marker: Ident,
}

impl Names {
    pub(crate) fn new(model: &Memoized) -> Self {
        let ident = &model.sig.ident;
        let mut body = format_ident!("__memoize_{}", ident);
        body.set_span(Span::mixed_site().located_at(ident.span()));
        Names {
            krate: model.options.crate_path().expect("validated: crate path"),
            in_impl: model.options.in_impl(model.receiver.as_ref()),
            memo: format_ident!("{}_memo", ident),
            entry: format_ident!("{}_entry", ident),
            body,
            marker: format_ident!("{}__is_in_an_impl__write_memoize_in_impl_true", ident),
        }
    }

    /// How the expansion names one of its own functions: `Self::name` in an `impl`, or the
    /// hygienic name.
    pub(crate) fn reach(&self, name: &Ident) -> TokenStream {
        if self.in_impl {
            quote!(Self::#name)
        } else {
            hygienic(name).into_token_stream()
        }
    }

    /// The crate path with every token spanned at `span`, for a helper whose failed bound
    /// should point at the user's token (on stable, an error on a path takes its first token's
    /// span).
    pub(crate) fn krate_at(&self, span: Span) -> TokenStream {
        self.krate
            .to_token_stream()
            .into_iter()
            .map(|mut token| {
                token.set_span(span);
                token
            })
            .collect()
    }

    /// How the generated docs link to one of them.
    pub(crate) fn link(&self, name: &Ident) -> String {
        if self.in_impl {
            format!("Self::{name}")
        } else {
            name.to_string()
        }
    }

    /// The crate path as an intra-doc link prefix.
    pub(crate) fn krate_link(&self) -> String {
        path_text(&self.krate)
    }
}
