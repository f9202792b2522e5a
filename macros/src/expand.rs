//! Generates the memoized function from a checked model.
//!
//! For `#[memoize] pub async fn f(a: A, name: &X) -> T { body }` it emits:
//!
//! - the accessor `pub fn f_memo() -> &'static AsyncMemo<(A, X::Owned), T>`, whose memo is a
//!   `OnceLock` static inside it, built on first use from the options;
//! - `pub async fn f(a: A, name: &X) -> T`, the user's signature, which looks the key up and,
//!   on a miss, runs the body as the init future;
//! - the body itself, unchanged, as a function with the original signature: nested inside `f`
//!   for a free function, a hidden sibling method for a method (a nested function cannot take
//!   `self`). Keeping it a real function keeps `return`, `?` and the argument types exactly as
//!   written. The init future owns the arguments (owned forms of borrowed ones) and calls it.
//!
//! Hygiene: every local the expansion introduces is spanned `mixed_site`, so an argument may be
//! called anything, `key` and `__key` included (cached #114, #230).

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, Pat, Type};

use crate::ast::{ArgShape, Memoized, Output};

pub(crate) fn memoize(args: TokenStream, item: TokenStream) -> TokenStream {
    let function: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "`#[memoize]` applies to an `async fn` (a free function, or a method of an \
                 inherent `impl`)",
            );
            return with_item(error, item);
        }
    };
    let options = match crate::ast::parse_options(args) {
        Ok(options) => options,
        Err(error) => return with_item(error, item),
    };
    let model = Memoized::from_syn(options, function);
    if let Err(error) = model.validate() {
        return with_item(error, item);
    }
    expand(&model)
}

/// The error, and the item unchanged so that its callers do not pile up further errors.
fn with_item(error: syn::Error, item: TokenStream) -> TokenStream {
    let error = error.to_compile_error();
    quote!(#error #item)
}

/// How the key is made from the arguments.
enum KeyPlan {
    /// No argument: `()`.
    Unit,
    /// One argument, looked up by reference (`get_or_init_by_ref`), so a hit clones nothing.
    One,
    /// Several arguments: a tuple of their owned forms.
    Tuple,
    /// `key: Type = expr`.
    Custom,
}

fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

fn expand(model: &Memoized) -> TokenStream {
    let sig = &model.sig;
    let ident = &sig.ident;
    let vis = &model.vis;
    let in_impl = model.receiver.is_some();
    let memo_ident = format_ident!("{}_memo", ident);
    let body_ident = format_ident!("__memoize_{}", ident);
    let value_ty = model.output.value();

    // Owned forms of the arguments: the key's parts and what the init future owns.
    let idents: Vec<&Ident> = model
        .args
        .iter()
        .map(|a| a.ident.as_ref().expect("validated: plain names"))
        .collect();
    let locals: Vec<Ident> = (0..model.args.len())
        .map(|i| local(&format!("__memoize_arg{i}")))
        .collect();
    let owned_tys: Vec<TokenStream> = model
        .args
        .iter()
        .map(|arg| match &arg.shape {
            ArgShape::Borrowed { referent } => {
                quote_spanned!(arg.ty.span()=> <#referent as ::std::borrow::ToOwned>::Owned)
            }
            _ => arg.ty.to_token_stream(),
        })
        .collect();
    let to_owned: Vec<TokenStream> = model
        .args
        .iter()
        .zip(&idents)
        .map(|(arg, ident)| match &arg.shape {
            ArgShape::Borrowed { .. } => {
                quote_spanned!(arg.ty.span()=> ::std::borrow::ToOwned::to_owned(#ident))
            }
            _ => quote!(#ident),
        })
        .collect();
    let passed: Vec<TokenStream> = model
        .args
        .iter()
        .zip(&owned_tys)
        .zip(&locals)
        .map(|((arg, owned), local)| match &arg.shape {
            ArgShape::Borrowed { referent } => quote_spanned!(arg.ty.span()=>
                <#owned as ::core::borrow::Borrow<#referent>>::borrow(&#local)
            ),
            _ => quote!(#local),
        })
        .collect();

    let plan = match (&model.options.key, model.args.len()) {
        (Some(_), _) => KeyPlan::Custom,
        (None, 0) => KeyPlan::Unit,
        (None, 1) => KeyPlan::One,
        (None, _) => KeyPlan::Tuple,
    };
    let key_ty = match (&plan, &model.options.key) {
        (KeyPlan::Custom, Some(key)) => key.ty.to_token_stream(),
        (KeyPlan::Unit, _) => quote!(()),
        (KeyPlan::One, _) => owned_tys[0].clone(),
        _ => quote!((#(#owned_tys),*)),
    };

    let key = local("__memoize_key");
    let memo = local("__memoize_memo");
    let this = local("__memoize_self");
    // The key the lookup borrows, and how the init closure obtains its owned arguments.
    let (make_key, key_ref, take_args) = match &plan {
        KeyPlan::Unit => (quote!(), quote!(&()), quote!()),
        KeyPlan::One => {
            let arg = &model.args[0];
            let ident = idents[0];
            let local = &locals[0];
            let take = match &arg.shape {
                ArgShape::Borrowed { .. } => {
                    quote_spanned!(arg.ty.span()=> let #local = ::std::borrow::ToOwned::to_owned(#ident);)
                }
                _ => quote!(let #local = ::core::clone::Clone::clone(&#ident);),
            };
            let key_ref = match &arg.shape {
                ArgShape::Borrowed { .. } => quote!(#ident),
                _ => quote!(&#ident),
            };
            (quote!(), key_ref, take)
        }
        KeyPlan::Tuple => (
            quote!(let #key: #key_ty = (#(#to_owned),*);),
            quote!(&#key),
            quote!(let (#(#locals),*) = ::core::clone::Clone::clone(&#key);),
        ),
        KeyPlan::Custom => {
            let custom = model.options.key.as_ref().expect("custom key");
            let (ty, expr) = (&custom.ty, &custom.expr);
            (
                quote_spanned!(custom.name.span()=> let #key: #ty = #expr;),
                quote!(&#key),
                quote!(#(let #locals = #to_owned;)*),
            )
        }
    };

    // The receiver, owned by the init future.
    let (take_self, call_body) = match &model.receiver {
        None => (quote!(), quote!(#body_ident(#(#passed),*))),
        Some(receiver) => {
            let by_ref = matches!(&*receiver.ty, Type::Reference(_));
            let span = receiver.self_token.span;
            if by_ref {
                (
                    quote_spanned!(span=> let #this = ::async_memo::__private::memoized_ref_self_must_be_clone(self);),
                    quote!(Self::#body_ident(&#this, #(#passed),*)),
                )
            } else {
                (
                    quote!(let #this = self;),
                    quote!(Self::#body_ident(#this, #(#passed),*)),
                )
            }
        }
    };

    // The closure is bound before the lookup, so that a body that is not `Send + 'static` is
    // reported by the helper named after that rule, on the function's name, rather than by a
    // bound deep inside `get_or_init_by_ref`.
    let init_span = sig.ident.span();
    let init_fn = local("__memoize_init");
    let init = quote_spanned!(init_span=>
        let #init_fn = || {
            #take_self
            #take_args
            ::async_memo::__private::memoized_body_must_be_send_and_static(async move {
                #call_body.await
            })
        };
    );
    let lookup = match &model.output {
        Output::Value(_) => quote!(
            ::async_memo::Entry::into_value(#memo.get_or_init_by_ref(#key_ref, #init_fn).await)
        ),
        Output::Fallible { err, .. } => {
            let unshare = quote_spanned!(err.span()=>
                ::async_memo::__private::memoized_error_must_be_clone::<#err>
            );
            quote!(
                match #memo.get_or_try_init_by_ref(#key_ref, #init_fn).await {
                    ::core::result::Result::Ok(entry) => {
                        ::core::result::Result::Ok(::async_memo::Entry::into_value(entry))
                    }
                    ::core::result::Result::Err(shared) => {
                        ::core::result::Result::Err(#unshare(shared))
                    }
                }
            )
        }
    };
    let memo_path = if in_impl {
        quote!(Self::#memo_ident)
    } else {
        quote!(#memo_ident)
    };

    // The body, as a function with the original signature.
    let mut body_sig = sig.clone();
    body_sig.ident = body_ident.clone();
    let block = &model.block;
    let cfg_attrs: Vec<&Attribute> = model
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect();
    let lint_attrs: Vec<&Attribute> = model
        .attrs
        .iter()
        .filter(|a| {
            ["allow", "warn", "deny", "forbid"]
                .iter()
                .any(|lint| a.path().is_ident(lint))
        })
        .collect();
    // The body must stay `async` even when it never awaits (it is the init future).
    let body_fn = quote!(
        #[doc(hidden)]
        #[allow(clippy::unused_async)]
        #(#lint_attrs)*
        #body_sig #block
    );
    let (nested_body, sibling_body) = if in_impl {
        (quote!(), quote!(#(#cfg_attrs)* #body_fn))
    } else {
        (body_fn, quote!())
    };

    // The public function: the user's signature, without `mut` on the bindings (the wrapper
    // only passes them on).
    let mut wrapper_sig = sig.clone();
    for input in &mut wrapper_sig.inputs {
        match input {
            FnArg::Receiver(receiver) => receiver.mutability = None,
            FnArg::Typed(typed) => {
                if let Pat::Ident(pat) = &mut *typed.pat {
                    pat.mutability = None;
                }
            }
        }
    }
    let attrs = &model.attrs;

    let accessor = accessor(model, &memo_ident, &key_ty, value_ty, &cfg_attrs);
    quote!(
        #accessor

        #sibling_body

        #(#attrs)*
        #vis #wrapper_sig {
            #nested_body
            let #memo = #memo_path();
            #make_key
            #init
            #lookup
        }
    )
}

/// `fn f_memo() -> &'static AsyncMemo<K, V>`, built from the options on first use.
fn accessor(
    model: &Memoized,
    memo_ident: &Ident,
    key_ty: &TokenStream,
    value_ty: &Type,
    cfg_attrs: &[&Attribute],
) -> TokenStream {
    let vis = &model.vis;
    let ident = &model.sig.ident;
    let link = if model.receiver.is_some() {
        format!("Self::{ident}")
    } else {
        ident.to_string()
    };
    let doc = format!(
        " The memo behind [`{ident}`]({link}): read an entry and its epoch, \
         [`invalidate`](::async_memo::AsyncMemo::invalidate) one result by its epoch, or \
         [`invalidate_all`](::async_memo::AsyncMemo::invalidate_all). Generated by \
         `#[memoize]`."
    );
    let options = &model.options;
    let mut settings = TokenStream::new();
    for (name, expr) in [
        &options.max_capacity,
        &options.time_to_live,
        &options.time_to_idle,
        &options.shards,
        &options.clock,
    ]
    .into_iter()
    .flatten()
    {
        settings.extend(quote_spanned!(name.span()=> .#name(#expr)));
    }
    let memo_ty = quote!(::async_memo::AsyncMemo<#key_ty, #value_ty>);
    let memo_static = Ident::new("__ASYNC_MEMO_STATIC", Span::mixed_site());
    quote!(
        #(#cfg_attrs)*
        #[doc = #doc]
        #vis fn #memo_ident() -> &'static #memo_ty {
            static #memo_static: ::async_memo::__private::OnceLock<#memo_ty> =
                ::async_memo::__private::OnceLock::new();
            #memo_static.get_or_init(|| {
                ::async_memo::AsyncMemo::<#key_ty, #value_ty>::builder() #settings .build()
            })
        }
    )
}
