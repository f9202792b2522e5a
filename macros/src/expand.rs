//! Generates the memoized function from a checked model.
//!
//! For `#[memoize] pub async fn f(a: A, name: &X) -> T { body }` it emits:
//!
//! - the accessor `pub fn f_memo() -> &'static AsyncMemo<(A, X::Owned), T>`, whose memo is a
//!   `OnceLock` static inside it, built on first use from the options;
//! - `pub async fn f_entry(a: A, name: &X) -> Entry<T>`, which looks the key up and, on a miss,
//!   runs the body as the init future, and returns the entry the call got: its value *and* the
//!   epoch that value was committed under, so that the caller can invalidate exactly that
//!   result (reading `f_memo().epoch(k)` afterwards may see a newer entry);
//! - `pub async fn f(a: A, name: &X) -> T`, the user's signature and attributes, which returns
//!   the value of `f_entry`;
//! - the body itself, unchanged, as a function with the original signature: nested inside the
//!   init future's `async` block for a free function, a hidden sibling associated function in
//!   an `impl` (a nested function cannot take `self` or name `Self`). Keeping it a real function
//!   keeps `return`, `?` and the argument types exactly as written. The init future owns the
//!   arguments (owned forms of borrowed ones) and calls it;
//! - outside an `impl`, a hidden unit constant that `f_entry` reads, whose name is the error
//!   message when `in_impl = true` was forgotten (see `Names::marker`).
//!
//! For a `Result` the lookup is `get_or_try_init_by_ref` and `f_entry` returns
//! `Result<Entry<T>, E>`. In an `impl` (a receiver, or `in_impl = true`) the parts reach each
//! other through `Self::`. Every path into the core crate starts with the `crate = "..."`
//! option's path, `::async_memo` by default.
//!
//! Hygiene (see `names.rs`): an argument may be called anything, the generated names included.
//! The accessor's static sits in a block of its own, out of reach of the option expressions.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, Pat, ReturnType, Type};

use crate::ast::{ArgShape, Memoized, Output};
use crate::names::{Names, local};

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

/// The `Ok` and `Err` types of a fallible output: as written in `Result<T, E>`, or projections
/// through `__private::Fallible` for any other spelling.
fn ok_err(ty: &Type, written: Option<&(Box<Type>, Box<Type>)>, names: &Names) -> (Type, Type) {
    match written {
        Some((ok, err)) => ((**ok).clone(), (**err).clone()),
        None => {
            let span = ty.span();
            let krate = names.krate_at(span);
            (
                syn::parse_quote_spanned!(span=> <#ty as #krate::__private::Fallible>::Ok),
                syn::parse_quote_spanned!(span=> <#ty as #krate::__private::Fallible>::Err),
            )
        }
    }
}

fn expand(model: &Memoized) -> TokenStream {
    let names = Names::new(model);
    let krate = &names.krate;
    let sig = &model.sig;
    let vis = &model.vis;
    let (value_ty, fallible) = match &model.output {
        Output::Value(ty) => ((**ty).clone(), None),
        Output::Fallible { ty, written } => {
            let (ok, err) = ok_err(ty, written.as_ref(), &names);
            (ok, Some(err))
        }
    };

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
    let body_path = names.reach(&names.body);
    let (take_self, call_body) = match &model.receiver {
        None => (quote!(), quote!(#body_path(#(#passed),*))),
        Some(receiver) => {
            let by_ref = matches!(&*receiver.ty, Type::Reference(_));
            let span = receiver.self_token.span;
            if by_ref {
                let krate = names.krate_at(span);
                (
                    quote_spanned!(span=> let #this = #krate::__private::memoized_ref_self_must_be_clone(self);),
                    quote!(#body_path(&#this, #(#passed),*)),
                )
            } else {
                (
                    quote!(let #this = self;),
                    quote!(#body_path(#this, #(#passed),*)),
                )
            }
        }
    };

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

    // The body, as a function with the original signature. It must stay `async` even when it
    // never awaits (it is the init future).
    let mut body_sig = sig.clone();
    body_sig.ident = names.body.clone();
    let block = &model.block;
    let body_fn = quote!(
        #[doc(hidden)]
        #[allow(clippy::unused_async)]
        #(#lint_attrs)*
        #body_sig #block
    );
    // A free function's body is nested in the init future's `async` block, the one block of the
    // expansion where no argument is named: nested higher, an item named like an argument
    // (`__memoize_f: u32`) would shadow it in the key and clone code.
    let (nested_body, sibling_body) = if names.in_impl {
        (quote!(), quote!(#(#cfg_attrs)* #body_fn))
    } else {
        (body_fn, quote!())
    };

    // The closure is bound before the lookup, so that a body that is not `Send + 'static` is
    // reported by the helper named after that rule, on the function's name, rather than by a
    // bound deep inside `get_or_init_by_ref`.
    let init_span = sig.ident.span();
    let init_fn = local("__memoize_init");
    let krate_at_init = names.krate_at(init_span);
    let init = quote_spanned!(init_span=>
        let #init_fn = || {
            #take_self
            #take_args
            #krate_at_init::__private::memoized_body_must_be_send_and_static(async move {
                #nested_body
                #call_body.await
            })
        };
    );
    let memo_path = names.reach(&names.memo);
    let entry_path = names.reach(&names.entry);
    let call_entry = match &model.receiver {
        Some(_) => quote!(#entry_path(self, #(#idents),*)),
        None => quote!(#entry_path(#(#idents),*)),
    };
    let output_ty = model.output.ty();
    let (lookup, entry_output, from_entry) = match &fallible {
        None => (
            quote!(#memo.get_or_init_by_ref(#key_ref, #init_fn).await),
            quote!(#krate::Entry<#value_ty>),
            quote!(#krate::Entry::into_value(#call_entry.await)),
        ),
        Some(err) => {
            let (entry, shared) = (local("__memoize_entry"), local("__memoize_shared"));
            let krate_at_err = names.krate_at(err.span());
            let unshare = quote_spanned!(err.span()=>
                #krate_at_err::__private::memoized_error_must_be_clone::<#err>
            );
            // A type spelled `Result<T, E>` that is not one is reported by this check's message
            // rather than only by a mismatch further on. (Any other spelling is projected
            // through `Fallible`, whose every use reports that message already.)
            let check = match &model.output {
                Output::Fallible {
                    written: Some(_), ..
                } => {
                    let krate_at_output = names.krate_at(output_ty.span());
                    quote_spanned!(output_ty.span()=>
                        let _ = #krate_at_output::__private::memoized_return_must_be_a_result::<#output_ty>;
                    )
                }
                _ => quote!(),
            };
            (
                quote!({
                    #check
                    match #memo.get_or_try_init_by_ref(#key_ref, #init_fn).await {
                        ::core::result::Result::Ok(#entry) => ::core::result::Result::Ok(#entry),
                        ::core::result::Result::Err(#shared) => {
                            ::core::result::Result::Err(#unshare(#shared))
                        }
                    }
                }),
                quote!(::core::result::Result<#krate::Entry<#value_ty>, #err>),
                quote!(::core::result::Result::map(#call_entry.await, #krate::Entry::into_value)),
            )
        }
    };

    // `f_entry` and `f` take the user's signature without `mut` on the bindings (they only pass
    // the arguments on).
    let mut plain_sig = sig.clone();
    for input in &mut plain_sig.inputs {
        match input {
            FnArg::Receiver(receiver) => receiver.mutability = None,
            FnArg::Typed(typed) => {
                if let Pat::Ident(pat) = &mut *typed.pat {
                    pat.mutability = None;
                }
            }
        }
    }
    let mut entry_sig = plain_sig.clone();
    entry_sig.ident = names.entry.clone();
    entry_sig.output = ReturnType::Type(
        Default::default(),
        Box::new(syn::parse_quote!(#entry_output)),
    );
    let entry_doc = entry_doc(model, &names, fallible.is_some());
    let (marker_item, read_marker) = if names.in_impl {
        (quote!(), quote!())
    } else {
        let marker = &names.marker;
        // Spanned on the attribute, where the fix goes (and where rustc offers no misleading
        // `Self::` fix-it on the function's name).
        let read = Ident::new(&marker.to_string(), Span::mixed_site());
        (
            quote!(
                #(#cfg_attrs)*
                #[doc(hidden)]
                #[allow(non_upper_case_globals)]
                const #marker: () = ();
            ),
            quote!(let () = #read;),
        )
    };
    let attrs = &model.attrs;

    let accessor = accessor(model, &names, &key_ty, &value_ty, &cfg_attrs);
    quote!(
        #accessor

        #marker_item

        #sibling_body

        #(#cfg_attrs)*
        #[doc = #entry_doc]
        #(#lint_attrs)*
        #vis #entry_sig {
            #read_marker
            let #memo = #memo_path();
            #make_key
            #init
            #lookup
        }

        #(#attrs)*
        #vis #plain_sig {
            #from_entry
        }
    )
}

/// The doc comment of `f_entry`.
fn entry_doc(model: &Memoized, names: &Names, fallible: bool) -> String {
    let ident = &model.sig.ident;
    let (link, memo_link) = (names.link(ident), names.link(&names.memo));
    let krate = names.krate_link();
    let memo = &names.memo;
    let err = if fallible {
        " An `Err` is returned as the function returns it, and is not stored."
    } else {
        ""
    };
    format!(
        " [`{ident}`]({link}) with the [`Entry`]({krate}::Entry) it got: the value together with \
         the epoch it was committed under.{err} To invalidate exactly the result this call \
         returned, pass that epoch to [`{memo}`]({memo_link})`().invalidate(&key, epoch)`; an \
         epoch read after the call with `{memo}().epoch(&key)` may already be a newer entry's. \
         Generated by `#[memoize]`."
    )
}

/// `fn f_memo() -> &'static AsyncMemo<K, V>`, built from the options on first use.
fn accessor(
    model: &Memoized,
    names: &Names,
    key_ty: &TokenStream,
    value_ty: &Type,
    cfg_attrs: &[&Attribute],
) -> TokenStream {
    let vis = &model.vis;
    let ident = &model.sig.ident;
    let krate = &names.krate;
    let link = names.link(ident);
    let krate_link = names.krate_link();
    let doc = format!(
        " The memo behind [`{ident}`]({link}): read an entry and its epoch, \
         [`invalidate`]({krate_link}::AsyncMemo::invalidate) one result by its epoch, or \
         [`invalidate_all`]({krate_link}::AsyncMemo::invalidate_all). Generated by \
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
    let memo_ty = quote!(#krate::AsyncMemo<#key_ty, #value_ty>);
    let memo_static = Ident::new("__ASYNC_MEMO_STATIC", Span::mixed_site());
    let build = local("__memoize_build");
    let memo_ident = &names.memo;
    // The static is in a block of its own: the option expressions, evaluated in `build`, cannot
    // see it.
    quote!(
        #(#cfg_attrs)*
        #[doc = #doc]
        #vis fn #memo_ident() -> &'static #memo_ty {
            let #build = || #krate::AsyncMemo::<#key_ty, #value_ty>::builder() #settings .build();
            {
                static #memo_static: #krate::__private::OnceLock<#memo_ty> =
                    #krate::__private::OnceLock::new();
                #memo_static.get_or_init(#build)
            }
        }
    )
}
