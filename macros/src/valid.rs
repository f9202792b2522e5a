//! Checks a parsed `#[memoize]` function before anything is generated. Every error is spanned on
//! the token that caused it, and every error of the function is reported at once.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit::Visit;
use syn::{Error, Expr, Lit, Result, Type};

use crate::ast::{ArgShape, Memoized, Options};

impl Memoized {
    pub(crate) fn validate(&self) -> Result<()> {
        let mut errors = Errors(None);
        let sig = &self.sig;
        if sig.asyncness.is_none() {
            errors.push(
                sig.fn_token,
                "`#[memoize]` needs an `async fn`: its body runs as the memo's init future",
            );
        }
        if let Some(unsafety) = &sig.unsafety {
            errors.push(
                unsafety,
                "`#[memoize]` does not support `unsafe fn`: its body runs as an init future that \
                 other callers may drive",
            );
        }
        if let Some(abi) = &sig.abi {
            errors.push(abi, "`#[memoize]` does not support an `extern` ABI");
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            errors.push(
                &sig.generics,
                "`#[memoize]` does not support generic functions: its memo is one static of one \
                 key and value type; memoize a non-generic function that calls the generic one",
            );
        }
        if let Some(receiver) = &self.receiver {
            // syn spells `&mut self` as `self: &mut Self`; `mut self` (by value) is fine.
            if matches!(&*receiver.ty, Type::Reference(r) if r.mutability.is_some()) {
                errors.push(
                    receiver,
                    "`#[memoize]` does not support `&mut self`: the body runs as an init future \
                     shared by every caller of its key, which cannot hold a mutable borrow; \
                     memoize a `&self` method",
                );
            } else if self.options.key.is_none() {
                errors.push(
                    receiver,
                    "a memoized method needs `#[memoize(key: Type = expr)]`: its memo is shared by \
                     every instance, so the key must say what distinguishes them (e.g. \
                     `key: (u64, String) = (self.id, name.to_owned())`)",
                );
            }
        }
        for arg in &self.args {
            if arg.ident.is_none() {
                errors.push(
                    &arg.pat,
                    "`#[memoize]` needs a plain name for each argument (`name: Type`): the \
                     arguments are the key; destructure inside the body",
                );
            }
            if contains_impl_trait(&arg.ty) {
                errors.push(
                    &arg.ty,
                    "`#[memoize]` does not support `impl Trait` arguments: they are generic, and \
                     the memo is one static of one key type; take a concrete type",
                );
            } else if let ArgShape::MutBorrowed = arg.shape {
                errors.push(
                    &arg.ty,
                    "`#[memoize]` does not support `&mut` arguments: the key is an owned copy of \
                     the arguments, and the body may run for another caller",
                );
            }
        }
        if let syn::ReturnType::Type(_, ty) = &sig.output {
            if contains_impl_trait(ty) {
                errors.push(
                    ty,
                    "`#[memoize]` needs a nameable return type (the memo's value type), not \
                     `impl Trait`",
                );
            }
        }
        // The arguments are moved into the `'static` init future, the key and value live in a
        // static memo: none of them may borrow. (A top-level `&X` argument is fine: the future
        // owns an `X::Owned`.)
        let owned_types = self
            .args
            .iter()
            .filter_map(|arg| match &arg.shape {
                ArgShape::Owned => Some(&arg.ty),
                ArgShape::Borrowed { referent } => Some(&**referent),
                ArgShape::MutBorrowed => None,
            })
            .chain(self.options.key.as_ref().map(|key| &key.ty))
            .chain([self.output.ty()]);
        for ty in owned_types {
            if let Some(borrow) = find_borrow(ty) {
                errors.push(
                    borrow,
                    "`#[memoize]` needs owned argument, key and value types: the body runs as a \
                     `'static` future and the memo is a static; take an owned type (or `&'static`) \
                     here. A top-level `&X` argument is fine: it is keyed by `X::Owned`",
                );
            }
        }
        // The memo is a static inside the accessor, and a static cannot name `Self`.
        let key_types: Vec<&Type> = match &self.options.key {
            Some(key) => vec![&key.ty],
            None => self.args.iter().map(|a| &a.ty).collect(),
        };
        for ty in key_types.into_iter().chain([self.output.ty()]) {
            if let Some(token) = find_self(ty.to_token_stream()) {
                errors.push(
                    token,
                    "`#[memoize]` cannot use `Self` in the key or value type (its memo is a \
                     static, which cannot name `Self`): write the type's name",
                );
            }
        }
        if let Some((name, expr)) = &self.options.shards {
            if is_zero(expr) {
                errors.push(expr, format!("`{name}` must be at least 1"));
            }
        }
        self.validate_flags(&mut errors);
        if let Err(error) = self.options.crate_path() {
            errors.combine(error);
        }
        errors.finish()
    }

    /// `result` and `in_impl`: `bool` literals that agree with the function.
    fn validate_flags(&self, errors: &mut Errors) {
        let options = &self.options;
        for option in [&options.result, &options.in_impl] {
            if let Some((name, expr)) = option {
                if Options::flag(option).is_none() {
                    errors.push(
                        expr,
                        format!("`{name}` takes `true` or `false`: `{name} = true`"),
                    );
                }
            }
        }
        if let Some((name, _)) = &options.result {
            if Options::flag(&options.result) == Some(true)
                && matches!(self.sig.output, syn::ReturnType::Default)
            {
                errors.push(
                    name,
                    "`result = true` needs a return type that is a `Result<T, E>` (under any \
                     name, e.g. an alias): only its `Ok` values are stored",
                );
            }
        }
        if let (Some(_), Some((name, expr))) = (&self.receiver, &options.in_impl) {
            if Options::flag(&options.in_impl) == Some(false) {
                errors.push(
                    quote::quote!(#name = #expr),
                    "a method (a function with a receiver) is always in an `impl`: remove \
                     `in_impl = false`",
                );
            }
        }
    }
}

/// Collects errors so that all of them are reported, not only the first.
struct Errors(Option<Error>);

impl Errors {
    /// An error spanning `tokens`, first to last (`Error::new_spanned` does this on stable,
    /// where one span cannot be joined from two).
    fn push(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.combine(Error::new_spanned(tokens, message));
    }

    fn combine(&mut self, error: Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}

/// The first lifetime other than `'static`, or elided reference, inside `ty`.
fn find_borrow(ty: &Type) -> Option<TokenStream> {
    struct Finder(Option<TokenStream>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
            if lifetime.ident != "static" && self.0.is_none() {
                self.0 = Some(lifetime.to_token_stream());
            }
        }
        fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
            if reference.lifetime.is_none() && self.0.is_none() {
                self.0 = Some(reference.to_token_stream());
            }
            syn::visit::visit_type_reference(self, reference);
        }
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            // Reported as `impl Trait`.
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

fn find_self(tokens: TokenStream) -> Option<proc_macro2::Ident> {
    for tree in tokens {
        match tree {
            TokenTree::Ident(ident) if ident == "Self" => return Some(ident),
            TokenTree::Group(group) => {
                if let Some(span) = find_self(group.stream()) {
                    return Some(span);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_zero(expr: &Expr) -> bool {
    matches!(expr, Expr::Lit(lit) if matches!(&lit.lit, Lit::Int(int) if int.base10_digits() == "0"))
}
