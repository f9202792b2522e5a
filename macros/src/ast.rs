//! The typed model of one `#[memoize(...)] async fn`: what was written, parsed but not yet
//! judged. `valid.rs` checks it; `expand.rs` generates code only from a checked model.

use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{
    Attribute, Block, Expr, FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, Receiver,
    ReturnType, Signature, Token, Type, Visibility,
};

/// The annotated function.
pub(crate) struct Memoized {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    /// The signature as written (the body function keeps it, `mut` bindings included).
    pub(crate) sig: Signature,
    pub(crate) block: Box<Block>,
    pub(crate) receiver: Option<Receiver>,
    pub(crate) args: Vec<Arg>,
    pub(crate) output: Output,
    pub(crate) options: Options,
}

/// One argument after the receiver.
pub(crate) struct Arg {
    /// `None` when the argument is a pattern rather than a plain name (rejected by `valid.rs`).
    pub(crate) ident: Option<Ident>,
    pub(crate) pat: Pat,
    pub(crate) ty: Type,
    pub(crate) shape: ArgShape,
}

/// How an argument becomes part of the key.
pub(crate) enum ArgShape {
    /// `a: A`: keyed by `A` itself.
    Owned,
    /// `a: &X`: keyed by `<X as ToOwned>::Owned`; the body is given a borrow of that.
    Borrowed { referent: Box<Type> },
    /// `a: &mut X`: rejected (a key cannot be a mutable borrow).
    MutBorrowed,
}

/// What the function returns, and so what the memo stores.
pub(crate) enum Output {
    /// Any other type (`Option<T>` included): stored as is.
    Value(Box<Type>),
    /// A type whose last path segment is `Result`: only `Ok` values are stored. `ok` and `err`
    /// are the type arguments when both are written (`Result<T, E>`), or projections through
    /// `__private::Fallible` for an alias such as `io::Result<T>`.
    Fallible {
        ty: Box<Type>,
        ok: Box<Type>,
        err: Box<Type>,
    },
}

/// The options of `#[memoize(...)]`, each with the span of its name.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) max_capacity: Option<(Ident, Expr)>,
    pub(crate) time_to_live: Option<(Ident, Expr)>,
    pub(crate) time_to_idle: Option<(Ident, Expr)>,
    pub(crate) shards: Option<(Ident, Expr)>,
    pub(crate) clock: Option<(Ident, Expr)>,
    pub(crate) key: Option<KeyOption>,
}

/// `key: Type = expr`.
pub(crate) struct KeyOption {
    pub(crate) name: Ident,
    pub(crate) ty: Type,
    pub(crate) expr: Expr,
}

pub(crate) const OPTION_NAMES: &str =
    "`max_capacity`, `time_to_live`, `time_to_idle`, `shards`, `clock`, `key: Type = expr`";

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Options::default();
        while !input.is_empty() {
            let name: Ident = input.parse()?;
            if name == "key" {
                if options.key.is_some() {
                    return Err(duplicate(&name));
                }
                if !input.peek(Token![:]) {
                    return Err(syn::Error::new(
                        name.span(),
                        "`key` needs a type and an expression: `key: Type = expr`",
                    ));
                }
                input.parse::<Token![:]>()?;
                let ty: Type = input.parse()?;
                input.parse::<Token![=]>()?;
                let expr: Expr = input.parse()?;
                options.key = Some(KeyOption { name, ty, expr });
            } else {
                let slot = match name.to_string().as_str() {
                    "max_capacity" => &mut options.max_capacity,
                    "time_to_live" => &mut options.time_to_live,
                    "time_to_idle" => &mut options.time_to_idle,
                    "shards" => &mut options.shards,
                    "clock" => &mut options.clock,
                    _ => {
                        return Err(syn::Error::new(
                            name.span(),
                            format!(
                                "unknown `#[memoize]` option `{name}`; the options are {OPTION_NAMES}"
                            ),
                        ));
                    }
                };
                if slot.is_some() {
                    return Err(duplicate(&name));
                }
                input.parse::<Token![=]>()?;
                let expr: Expr = input.parse()?;
                *slot = Some((name, expr));
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(options)
    }
}

fn duplicate(name: &Ident) -> syn::Error {
    syn::Error::new(
        name.span(),
        format!("`{name}` is given twice in `#[memoize]`"),
    )
}

impl Memoized {
    pub(crate) fn from_syn(options: Options, item: ItemFn) -> Self {
        let ItemFn {
            attrs,
            vis,
            sig,
            block,
        } = item;
        let mut receiver = None;
        let mut args = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(r) => receiver = Some(r.clone()),
                FnArg::Typed(typed) => {
                    let ident = match &*typed.pat {
                        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                            Some(p.ident.clone())
                        }
                        _ => None,
                    };
                    let ty = (*typed.ty).clone();
                    let shape = match &ty {
                        Type::Reference(r) if r.mutability.is_some() => ArgShape::MutBorrowed,
                        // `&'static X` is a fine key as it is.
                        Type::Reference(r)
                            if r.lifetime.as_ref().is_some_and(|l| l.ident == "static") =>
                        {
                            ArgShape::Owned
                        }
                        Type::Reference(r) => ArgShape::Borrowed {
                            referent: r.elem.clone(),
                        },
                        _ => ArgShape::Owned,
                    };
                    args.push(Arg {
                        ident,
                        pat: (*typed.pat).clone(),
                        ty,
                        shape,
                    });
                }
            }
        }
        let output = Output::from_return(&sig.output);
        Memoized {
            attrs,
            vis,
            sig,
            block,
            receiver,
            args,
            output,
            options,
        }
    }
}

impl Output {
    fn from_return(output: &ReturnType) -> Self {
        let ty = match output {
            ReturnType::Default => return Output::Value(Box::new(syn::parse_quote!(()))),
            ReturnType::Type(_, ty) => (**ty).clone(),
        };
        let Type::Path(path) = &ty else {
            return Output::Value(Box::new(ty));
        };
        let Some(last) = path.path.segments.last() else {
            return Output::Value(Box::new(ty));
        };
        if path.qself.is_some() || last.ident != "Result" {
            return Output::Value(Box::new(ty));
        }
        let written: Vec<&Type> = match &last.arguments {
            PathArguments::AngleBracketed(args) => args
                .args
                .iter()
                .filter_map(|arg| match arg {
                    GenericArgument::Type(t) => Some(t),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let (ok, err) = match written.as_slice() {
            [ok, err] => (Box::new((*ok).clone()), Box::new((*err).clone())),
            _ => {
                let span = ty.span();
                (
                    Box::new(
                        syn::parse_quote_spanned!(span=> <#ty as ::async_memo::__private::Fallible>::Ok),
                    ),
                    Box::new(
                        syn::parse_quote_spanned!(span=> <#ty as ::async_memo::__private::Fallible>::Err),
                    ),
                )
            }
        };
        Output::Fallible {
            ty: Box::new(ty),
            ok,
            err,
        }
    }

    /// The type the memo stores.
    pub(crate) fn value(&self) -> &Type {
        match self {
            Output::Value(ty) => ty,
            Output::Fallible { ok, .. } => ok,
        }
    }
}

/// Parses the attribute's arguments.
pub(crate) fn parse_options(tokens: proc_macro2::TokenStream) -> syn::Result<Options> {
    syn::parse2(tokens)
}
