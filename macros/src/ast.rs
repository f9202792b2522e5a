//! The typed model of one `#[memoize(...)] async fn`: what was written, parsed but not yet
//! judged. `valid.rs` checks it; `expand.rs` generates code only from a checked model.

use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{
    Attribute, Block, Expr, ExprLit, FnArg, GenericArgument, Ident, ItemFn, Lit, Pat, Path,
    PathArguments, Receiver, ReturnType, Signature, Token, Type, Visibility,
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
    /// Any other type (`Option<T>` included), or any type with `result = false`: stored as is.
    Value(Box<Type>),
    /// A type whose last path segment is `Result`, or any type with `result = true`: only `Ok`
    /// values are stored.
    Fallible {
        ty: Box<Type>,
        /// `Some((ok, err))` when the type is spelled `Result<T, E>` (its last segment, with two
        /// type arguments); `None` for any other spelling (`io::Result<T>`, an alias named
        /// otherwise), whose `Ok` and `Err` types are projections through
        /// `__private::Fallible`, built by `expand.rs` once it knows the crate path.
        written: Option<(Box<Type>, Box<Type>)>,
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
    /// `result = <bool>`: overrides whether the return type is taken for a `Result`.
    pub(crate) result: Option<(Ident, Expr)>,
    /// `in_impl = <bool>`: an associated function without a receiver.
    pub(crate) in_impl: Option<(Ident, Expr)>,
    /// `crate = "<path>"`: where the expansion finds `async_memo` (tokio's spelling).
    pub(crate) krate: Option<(Ident, Expr)>,
}

/// `key: Type = expr`.
pub(crate) struct KeyOption {
    pub(crate) name: Ident,
    pub(crate) ty: Type,
    pub(crate) expr: Expr,
}

pub(crate) const OPTION_NAMES: &str = "`max_capacity`, `time_to_live`, `time_to_idle`, `shards`, \
     `clock`, `key: Type = expr`, `result`, `in_impl`, `crate`";

impl Options {
    /// The value of a `name = true|false` option, if it is given as a `bool` literal (anything
    /// else is reported by `valid.rs`).
    pub(crate) fn flag(option: &Option<(Ident, Expr)>) -> Option<bool> {
        match option {
            Some((
                _,
                Expr::Lit(ExprLit {
                    lit: Lit::Bool(b), ..
                }),
            )) => Some(b.value),
            _ => None,
        }
    }

    /// Whether the function is an associated function: it has a receiver, or `in_impl = true`.
    pub(crate) fn in_impl(&self, receiver: Option<&Receiver>) -> bool {
        receiver.is_some() || Options::flag(&self.in_impl) == Some(true)
    }

    /// The path of the core crate: `::async_memo`, or the one `crate = "path"` names.
    pub(crate) fn crate_path(&self) -> syn::Result<Path> {
        match &self.krate {
            None => Ok(syn::parse_quote!(::async_memo)),
            Some((
                name,
                Expr::Lit(ExprLit {
                    lit: Lit::Str(path),
                    ..
                }),
            )) => path.parse::<Path>().map_err(|_| {
                syn::Error::new(
                    path.span(),
                    format!(
                        "`{name}` takes the path of the `async-memo` crate as your crate \
                             names it, in a string: `crate = \"memo\"` or \
                             `crate = \"my_framework::memo\"`"
                    ),
                )
            }),
            Some((name, other)) => {
                // Show the fix with the path the user wrote, when it is one.
                let example = match other {
                    Expr::Path(path) if path.qself.is_none() => path_text(&path.path),
                    _ => "memo".to_string(),
                };
                Err(syn::Error::new_spanned(
                    other,
                    format!(
                        "`{name}` takes a string, as in tokio's and serde's attributes: \
                         `crate = \"{example}\"`"
                    ),
                ))
            }
        }
    }
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Options::default();
        while !input.is_empty() {
            // `crate` is a keyword: take any identifier, keywords included.
            let name = Ident::parse_any(input)?;
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
                    "result" => &mut options.result,
                    "in_impl" => &mut options.in_impl,
                    "crate" => &mut options.krate,
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
        let output = Output::from_return(&sig.output, Options::flag(&options.result));
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
    /// Reads the return type. `result` is the `result = <bool>` option: `None` lets the
    /// spelling decide (a last path segment `Result` is a `Result`).
    fn from_return(output: &ReturnType, result: Option<bool>) -> Self {
        let ty = match output {
            ReturnType::Default => return Output::Value(Box::new(syn::parse_quote!(()))),
            ReturnType::Type(_, ty) => (**ty).clone(),
        };
        let written = match (result, Spelling::of(&ty)) {
            (Some(false), _) | (None, Spelling::Other) => return Output::Value(Box::new(ty)),
            (_, Spelling::ResultOf(ok, err)) => Some((ok, err)),
            (_, Spelling::ResultAlias) | (Some(true), Spelling::Other) => None,
        };
        Output::Fallible {
            ty: Box::new(ty),
            written,
        }
    }

    /// The return type as written.
    pub(crate) fn ty(&self) -> &Type {
        match self {
            Output::Value(ty) | Output::Fallible { ty, .. } => ty,
        }
    }
}

/// How a return type is spelled, as far as `Result` goes: the macro sees tokens, not types, so
/// an alias is recognised by its last path segment alone.
enum Spelling {
    /// `Result<T, E>`, `std::result::Result<T, E>`: a last segment `Result` with two type
    /// arguments, taken as `Ok` and `Err`.
    ResultOf(Box<Type>, Box<Type>),
    /// Any other path whose last segment is `Result` (`io::Result<T>`, `anyhow::Result<T>`).
    ResultAlias,
    /// Everything else, `type Fallible<T> = Result<T, E>` included.
    Other,
}

impl Spelling {
    fn of(ty: &Type) -> Self {
        let Type::Path(path) = ty else {
            return Spelling::Other;
        };
        let Some(last) = path.path.segments.last() else {
            return Spelling::Other;
        };
        if path.qself.is_some() || last.ident != "Result" {
            return Spelling::Other;
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
        match written.as_slice() {
            [ok, err] => Spelling::ResultOf(Box::new((*ok).clone()), Box::new((*err).clone())),
            _ => Spelling::ResultAlias,
        }
    }
}

/// A path as written, without spaces or generic arguments: `::async_memo`, `my_framework::memo`.
pub(crate) fn path_text(path: &Path) -> String {
    let segments: Vec<String> = path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    let leading = if path.leading_colon.is_some() {
        "::"
    } else {
        ""
    };
    format!("{leading}{}", segments.join("::"))
}

/// Parses the attribute's arguments.
pub(crate) fn parse_options(tokens: proc_macro2::TokenStream) -> syn::Result<Options> {
    syn::parse2(tokens)
}
