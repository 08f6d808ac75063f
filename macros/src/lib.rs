//! Procedural macros for [asupersync](https://docs.rs/asupersync):
//! `#[asupersync::main]` and `#[asupersync::test]`.
//!
//! Both turn an `async fn` that takes the root capability context (`Cx`) into
//! a plain `fn` that builds a runtime and drives the body to completion with
//! `Runtime::block_on`. Use them through the re-exports in the `asupersync`
//! crate (`#[asupersync::main]`, `#[asupersync::test]`), never from this crate
//! directly: the expansion refers to `::asupersync::...` paths.
//!
//! The expansion logic lives in plain functions over [`proc_macro2`] token
//! streams so it can be unit-tested without a compiler invocation.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{AttrStyle, Attribute, Expr, FnArg, ItemFn, Lit, Meta, Token};

/// Turns `async fn main(cx: Cx)` into a plain `fn main()` that builds a
/// runtime and drives the body to completion:
///
/// ```text
/// fn main() {
///     ::asupersync::RuntimeBuilder::current_thread()
///         .build()
///         .expect("asupersync: failed to build the runtime")
///         .block_on(move |cx: ::asupersync::Cx| async move { /* body */ })
/// }
/// ```
///
/// The body runs as the root task of the root region, so `main` returns only
/// once every task spawned under it has finished.
///
/// - The parameter is optional (`async fn main()`), may use any pattern
///   (`cx`, `_cx`, `mut cx`) and any spelling of the type (`Cx`,
///   `asupersync::Cx`).
/// - The return type is kept: `async fn main(cx: Cx) -> Result<(), E>`
///   becomes `fn main() -> Result<(), E>`.
/// - Attributes, doc comments and visibility are kept.
///
/// # Options
///
/// - `flavor = "current_thread"` (the default): a single-threaded runtime,
///   `RuntimeBuilder::current_thread()`.
/// - `flavor = "multi_thread"`: a multi-threaded runtime,
///   `RuntimeBuilder::new()`.
/// - `worker_threads = N` (only with `flavor = "multi_thread"`): the number of
///   worker threads, `RuntimeBuilder::new().worker_threads(N)`.
///
/// # Compile errors
///
/// Each names the rule it enforces: the function must be an `async fn` with
/// no generics, no `self` receiver and at most one parameter; unknown or
/// malformed options, and `worker_threads` without
/// `flavor = "multi_thread"`, are rejected.
#[proc_macro_attribute]
pub fn main(
    args: proc_macro::TokenStream,
    item: proc_macro::TokenStream,
) -> proc_macro::TokenStream {
    expand(Kind::Main, args.into(), item.into()).into()
}

/// Turns an `async fn` test into a plain `#[test] fn` that builds its own
/// runtime and drives the body to completion, exactly like [`macro@main`]:
/// the test returns only once every task spawned under its body has
/// finished, and a panic in the body fails the test.
///
/// The expansion carries `#[test]` itself (an extra `#[test]` is a compile
/// error); other attributes (`#[should_panic]`, `#[ignore]`, ...) and a
/// `Result` return type are kept. Takes the same options (`flavor`,
/// `worker_threads`) and reports the same compile errors as [`macro@main`].
///
/// Write it as `#[asupersync::test]`: importing the macro by name (or with
/// `use asupersync::*`) shadows the built-in `#[test]` in that module.
#[proc_macro_attribute]
pub fn test(
    args: proc_macro::TokenStream,
    item: proc_macro::TokenStream,
) -> proc_macro::TokenStream {
    expand(Kind::Test, args.into(), item.into()).into()
}

/// Which attribute is being expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    /// The attribute as users write it, for error messages.
    fn attr_name(self) -> &'static str {
        match self {
            Kind::Main => "#[asupersync::main]",
            Kind::Test => "#[asupersync::test]",
        }
    }
}

/// The runtime the expansion builds.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Flavor {
    CurrentThread,
    MultiThread { worker_threads: Option<usize> },
}

/// Expands the attribute; errors become `compile_error!` invocations.
fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(kind, args, item.clone()) {
        Ok(tokens) => tokens,
        Err(err) => {
            let mut tokens = err.to_compile_error();
            tokens.extend(placeholder(&item));
            tokens
        }
    }
}

/// After an error, keeps a same-named plain `fn` so the error is not followed
/// by knock-on ones (such as "`main` function not found").
fn placeholder(item: &TokenStream) -> TokenStream {
    match syn::parse2::<ItemFn>(item.clone()) {
        Ok(f) => {
            let vis = &f.vis;
            let name = &f.sig.ident;
            quote! {
                #[allow(dead_code)]
                #vis fn #name() {}
            }
        }
        Err(_) => TokenStream::new(),
    }
}

/// Expands the attribute, reporting every problem found as one combined error.
fn try_expand(kind: Kind, args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let flavor = parse_options(kind, args);
    let func = syn::parse2::<ItemFn>(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!(
                "{} can only be applied to an `async fn` ({e})",
                kind.attr_name()
            ),
        )
    });
    match (flavor, func) {
        (Ok(flavor), Ok(func)) => {
            check_signature(kind, &func)?;
            Ok(expand_fn(kind, &flavor, func))
        }
        (Ok(_), Err(e)) => Err(e),
        (Err(mut e), Ok(func)) => {
            if let Err(sig_err) = check_signature(kind, &func) {
                e.combine(sig_err);
            }
            Err(e)
        }
        (Err(mut e), Err(func_err)) => {
            e.combine(func_err);
            Err(e)
        }
    }
}

/// Parses `flavor = "...", worker_threads = N`.
fn parse_options(kind: Kind, args: TokenStream) -> syn::Result<Flavor> {
    let name = kind.attr_name();
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated
        .parse2(args)
        .map_err(|e| {
            syn::Error::new(
                e.span(),
                format!(
                    "{name} expects options of the form `flavor = \"multi_thread\", worker_threads = 4`"
                ),
            )
        })?;

    let mut flavor: Option<String> = None;
    let mut worker_threads: Option<(usize, Span)> = None;
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };

    for meta in metas {
        let nv = match meta {
            Meta::NameValue(nv) => nv,
            other => {
                push(syn::Error::new_spanned(
                    &other,
                    format!(
                        "unknown option `{}` for {name}; expected `flavor = \"...\"` or `worker_threads = N`",
                        other.path().to_token_stream()
                    ),
                ));
                continue;
            }
        };
        let key = nv
            .path
            .get_ident()
            .map(Ident::to_string)
            .unwrap_or_default();
        match key.as_str() {
            "flavor" => {
                if flavor.is_some() {
                    push(syn::Error::new_spanned(
                        &nv.path,
                        format!("the `flavor` option is given twice in {name}"),
                    ));
                    continue;
                }
                match lit_str(&nv.value) {
                    Some(s) if s == "current_thread" || s == "multi_thread" => {
                        flavor = Some(s);
                    }
                    Some(s) => push(syn::Error::new_spanned(
                        &nv.value,
                        format!(
                            "unknown flavor `{s}` for {name}; expected \"current_thread\" or \"multi_thread\""
                        ),
                    )),
                    None => push(syn::Error::new_spanned(
                        &nv.value,
                        format!(
                            "the `flavor` option of {name} takes a string: \"current_thread\" or \"multi_thread\""
                        ),
                    )),
                }
            }
            "worker_threads" => {
                if worker_threads.is_some() {
                    push(syn::Error::new_spanned(
                        &nv.path,
                        format!("the `worker_threads` option is given twice in {name}"),
                    ));
                    continue;
                }
                match lit_int(&nv.value) {
                    Some(Ok(0)) => push(syn::Error::new_spanned(
                        &nv.value,
                        format!("`worker_threads` in {name} must be at least 1"),
                    )),
                    Some(Ok(n)) => worker_threads = Some((n, nv.path.span())),
                    Some(Err(e)) => push(e),
                    None => push(syn::Error::new_spanned(
                        &nv.value,
                        format!("the `worker_threads` option of {name} takes an integer literal"),
                    )),
                }
            }
            _ => push(syn::Error::new_spanned(
                &nv.path,
                format!(
                    "unknown option `{}` for {name}; expected `flavor` or `worker_threads`",
                    nv.path.to_token_stream()
                ),
            )),
        }
    }

    let result = match (flavor, worker_threads) {
        (Some(f), threads) if f == "multi_thread" => Ok(Flavor::MultiThread {
            worker_threads: threads.map(|(n, _)| n),
        }),
        (_, Some((_, span))) => Err(syn::Error::new(
            span,
            format!(
                "`worker_threads` in {name} requires `flavor = \"multi_thread\"` (the `current_thread` flavor has no worker threads)"
            ),
        )),
        (_, None) => Ok(Flavor::CurrentThread),
    };
    match (errors, result) {
        (None, result) => result,
        (Some(e), Ok(_)) => Err(e),
        (Some(mut e), Err(conflict)) => {
            e.combine(conflict);
            Err(e)
        }
    }
}

fn lit_str(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.value()),
        _ => None,
    }
}

fn lit_int(expr: &Expr) -> Option<syn::Result<usize>> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => Some(i.base10_parse::<usize>()),
        _ => None,
    }
}

/// Checks the rules the function must follow; every violation is reported.
fn check_signature(kind: Kind, func: &ItemFn) -> syn::Result<()> {
    let name = kind.attr_name();
    let sig = &func.sig;
    let mut errors: Vec<syn::Error> = Vec::new();

    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            format!("{name} requires an `async fn`"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!("{name} does not accept generic parameters or where clauses"),
        ));
    }
    if let Some(receiver) = sig.receiver() {
        errors.push(syn::Error::new_spanned(
            receiver,
            format!("{name} cannot be applied to a method: remove the `self` receiver"),
        ));
    } else if sig.inputs.len() > 1 {
        errors.push(syn::Error::new_spanned(
            &sig.inputs,
            format!(
                "{name} takes at most one parameter, the `Cx` (found {})",
                sig.inputs.len()
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            format!("{name} does not accept variadic parameters"),
        ));
    }
    if kind == Kind::Test {
        if let Some(attr) = func.attrs.iter().find(|a| is_test_attr(a)) {
            errors.push(syn::Error::new_spanned(
                attr,
                format!("{name} already emits `#[test]`; remove this extra test attribute"),
            ));
        }
    }

    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(mut first) => {
            for e in errors {
                first.combine(e);
            }
            Err(first)
        }
    }
}

/// `#[test]`, `#[core::prelude::v1::test]`, `#[asupersync::test]`, ...
fn is_test_attr(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|seg| seg.ident == "test")
}

/// Builds the plain `fn` from a function that passed [`check_signature`].
fn expand_fn(kind: Kind, flavor: &Flavor, func: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;

    // Inner attributes (`#![allow(..)]` in the body) apply to the function;
    // they become outer attributes of the generated one.
    let attrs = attrs.into_iter().map(|mut a| {
        a.style = AttrStyle::Outer;
        a
    });

    let builder = match flavor {
        Flavor::CurrentThread => quote! { ::asupersync::RuntimeBuilder::current_thread() },
        Flavor::MultiThread {
            worker_threads: None,
        } => quote! { ::asupersync::RuntimeBuilder::new() },
        Flavor::MultiThread {
            worker_threads: Some(n),
        } => {
            let n = Literal::usize_unsuffixed(*n);
            quote! { ::asupersync::RuntimeBuilder::new().worker_threads(#n) }
        }
    };

    // The Cx the runtime passes in; `mixed_site` keeps it out of the user's
    // namespace.
    let cx = Ident::new("__asupersync_cx", Span::mixed_site());
    let bind_param = match sig.inputs.first() {
        Some(FnArg::Typed(param)) => {
            let param_attrs = &param.attrs;
            let pat = &param.pat;
            let ty = &param.ty;
            // Binding with the user's own pattern and type keeps their
            // spelling and reports a wrong type at the parameter.
            quote! { #(#param_attrs)* let #pat: #ty = #cx; }
        }
        _ => quote! { let _ = #cx; },
    };

    let test_attr = match kind {
        Kind::Test => quote! { #[::core::prelude::v1::test] },
        Kind::Main => TokenStream::new(),
    };

    let mut sig = sig;
    sig.asyncness = None;
    sig.inputs = Punctuated::new();

    quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            #builder
                .build()
                .expect("asupersync: failed to build the runtime")
                .block_on(move |#cx: ::asupersync::Cx| {
                    #bind_param
                    async move #block
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Kind, expand, try_expand};
    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::{ItemFn, ReturnType};

    fn expand_ok(kind: Kind, args: TokenStream, item: TokenStream) -> ItemFn {
        let out = try_expand(kind, args, item).unwrap_or_else(|e| panic!("expansion failed: {e}"));
        syn::parse2::<ItemFn>(out.clone())
            .unwrap_or_else(|e| panic!("expansion is not a fn ({e}): {out}"))
    }

    fn expand_err(kind: Kind, args: TokenStream, item: TokenStream) -> String {
        match try_expand(kind, args, item) {
            Ok(out) => panic!("expected an error, got: {out}"),
            Err(e) => e
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    fn compact(tokens: impl quote::ToTokens) -> String {
        tokens.to_token_stream().to_string().replace(' ', "")
    }

    fn attr_paths(f: &ItemFn) -> Vec<String> {
        f.attrs.iter().map(|a| compact(a.path())).collect()
    }

    #[test]
    fn main_becomes_a_plain_fn_that_blocks_on_the_body() {
        let f = expand_ok(
            Kind::Main,
            quote!(),
            quote! {
                async fn main(cx: Cx) {
                    let _ = cx.task_id();
                }
            },
        );
        assert!(f.sig.asyncness.is_none());
        assert!(f.sig.inputs.is_empty());
        assert_eq!(f.sig.ident, "main");
        assert!(matches!(f.sig.output, ReturnType::Default));
        let body = compact(&f.block);
        assert!(
            body.contains("::asupersync::RuntimeBuilder::current_thread()"),
            "{body}"
        );
        assert!(body.contains(".build()"), "{body}");
        assert!(
            body.contains(".expect(\"asupersync:failedtobuildtheruntime\")"),
            "{body}"
        );
        assert!(
            body.contains(".block_on(move|__asupersync_cx:::asupersync::Cx|"),
            "{body}"
        );
        assert!(body.contains("letcx:Cx=__asupersync_cx;"), "{body}");
        assert!(body.contains("asyncmove"), "{body}");
        assert!(body.contains("cx.task_id()"), "{body}");
        assert!(f.attrs.is_empty());
    }

    #[test]
    fn main_keeps_the_return_type() {
        for ret in [
            quote!(-> Result<(), std::io::Error>),
            quote!(-> impl std::fmt::Debug),
            quote!(-> !),
        ] {
            let f = expand_ok(
                Kind::Main,
                quote!(),
                quote! { async fn main(cx: Cx) #ret { loop {} } },
            );
            assert_eq!(compact(&f.sig.output), compact(&ret));
            assert!(f.sig.asyncness.is_none());
        }
    }

    #[test]
    fn main_keeps_attributes_visibility_and_doc_comments() {
        let f = expand_ok(
            Kind::Main,
            quote!(),
            quote! {
                /// Entry point.
                #[allow(unused_variables)]
                pub(crate) async fn main(cx: Cx) {}
            },
        );
        assert_eq!(attr_paths(&f), vec!["doc", "allow"]);
        assert_eq!(compact(&f.vis), "pub(crate)");
        assert!(compact(&f.attrs[0]).contains("\"Entrypoint.\""));
    }

    #[test]
    fn inner_attributes_of_the_body_become_outer_attributes() {
        let out = try_expand(
            Kind::Main,
            quote!(),
            quote! {
                async fn main(cx: Cx) {
                    #![allow(unused_variables)]
                }
            },
        )
        .unwrap();
        let f = syn::parse2::<ItemFn>(out).unwrap();
        assert_eq!(attr_paths(&f), vec!["allow"]);
        assert!(matches!(f.attrs[0].style, syn::AttrStyle::Outer));
    }

    #[test]
    fn the_parameter_may_use_any_pattern_and_any_spelling_of_cx() {
        for (param, binding) in [
            (quote!(cx: Cx), "letcx:Cx=__asupersync_cx;"),
            (quote!(_cx: Cx), "let_cx:Cx=__asupersync_cx;"),
            (quote!(mut cx: Cx), "letmutcx:Cx=__asupersync_cx;"),
            (
                quote!(cx: asupersync::Cx),
                "letcx:asupersync::Cx=__asupersync_cx;",
            ),
            (
                quote!(cx: ::asupersync::Cx),
                "letcx:::asupersync::Cx=__asupersync_cx;",
            ),
            (quote!(_: Cx), "let_:Cx=__asupersync_cx;"),
        ] {
            let f = expand_ok(Kind::Main, quote!(), quote! { async fn main(#param) {} });
            assert!(f.sig.inputs.is_empty());
            let body = compact(&f.block);
            assert!(body.contains(binding), "{param}: {body}");
        }
    }

    #[test]
    fn a_main_without_parameters_ignores_the_cx() {
        let f = expand_ok(Kind::Main, quote!(), quote! { async fn main() {} });
        let body = compact(&f.block);
        assert!(
            body.contains(".block_on(move|__asupersync_cx:::asupersync::Cx|"),
            "{body}"
        );
        assert!(body.contains("let_=__asupersync_cx;"), "{body}");
    }

    #[test]
    fn multi_thread_flavor_uses_the_default_builder() {
        let f = expand_ok(
            Kind::Main,
            quote!(flavor = "multi_thread"),
            quote! { async fn main(cx: Cx) {} },
        );
        let body = compact(&f.block);
        assert!(
            body.contains("::asupersync::RuntimeBuilder::new().build()"),
            "{body}"
        );
        assert!(!body.contains("worker_threads"), "{body}");
    }

    #[test]
    fn worker_threads_configures_the_multi_thread_builder() {
        let f = expand_ok(
            Kind::Main,
            quote!(flavor = "multi_thread", worker_threads = 4),
            quote! { async fn main(cx: Cx) {} },
        );
        let body = compact(&f.block);
        assert!(
            body.contains("::asupersync::RuntimeBuilder::new().worker_threads(4).build()"),
            "{body}"
        );
        // Order of the options does not matter.
        let g = expand_ok(
            Kind::Main,
            quote!(worker_threads = 4, flavor = "multi_thread"),
            quote! { async fn main(cx: Cx) {} },
        );
        assert_eq!(compact(&f), compact(&g));
    }

    #[test]
    fn current_thread_flavor_can_be_spelled_out() {
        let explicit = expand_ok(
            Kind::Main,
            quote!(flavor = "current_thread"),
            quote! { async fn main(cx: Cx) {} },
        );
        let default = expand_ok(Kind::Main, quote!(), quote! { async fn main(cx: Cx) {} });
        assert_eq!(compact(&explicit), compact(&default));
    }

    #[test]
    fn test_emits_a_test_attribute_and_keeps_the_others() {
        let f = expand_ok(
            Kind::Test,
            quote!(),
            quote! {
                #[should_panic(expected = "boom")]
                async fn it_panics(cx: Cx) {
                    panic!("boom");
                }
            },
        );
        assert_eq!(
            attr_paths(&f),
            vec!["::core::prelude::v1::test", "should_panic"]
        );
        assert_eq!(f.sig.ident, "it_panics");
        assert!(f.sig.asyncness.is_none());
        assert!(f.sig.inputs.is_empty());
        assert!(compact(&f.block).contains("block_on"));
    }

    #[test]
    fn test_accepts_options_and_result_return_types() {
        let f = expand_ok(
            Kind::Test,
            quote!(flavor = "multi_thread", worker_threads = 2),
            quote! {
                async fn fallible() -> Result<(), String> { Ok(()) }
            },
        );
        assert_eq!(compact(&f.sig.output), "->Result<(),String>");
        assert!(compact(&f.block).contains("worker_threads(2)"));
    }

    #[test]
    fn a_non_async_fn_is_rejected() {
        let msg = expand_err(Kind::Main, quote!(), quote! { fn main(cx: Cx) {} });
        assert_eq!(msg, "#[asupersync::main] requires an `async fn`");
        let msg = expand_err(Kind::Test, quote!(), quote! { fn t() {} });
        assert_eq!(msg, "#[asupersync::test] requires an `async fn`");
    }

    #[test]
    fn more_than_one_parameter_is_rejected() {
        let msg = expand_err(
            Kind::Main,
            quote!(),
            quote! { async fn main(cx: Cx, n: u32) {} },
        );
        assert!(
            msg.contains("#[asupersync::main] takes at most one parameter, the `Cx`"),
            "{msg}"
        );
    }

    #[test]
    fn generics_are_rejected() {
        for item in [
            quote! { async fn main<T>(cx: Cx) {} },
            quote! { async fn main<'a>(cx: Cx) {} },
            quote! { async fn main(cx: Cx) where u8: Copy {} },
        ] {
            let msg = expand_err(Kind::Test, quote!(), item);
            assert!(
                msg.contains("#[asupersync::test] does not accept generic parameters"),
                "{msg}"
            );
        }
    }

    #[test]
    fn a_self_receiver_is_rejected() {
        for item in [
            quote! { async fn run(&self) {} },
            quote! { async fn run(self, cx: Cx) {} },
        ] {
            let msg = expand_err(Kind::Main, quote!(), item);
            assert_eq!(
                msg,
                "#[asupersync::main] cannot be applied to a method: remove the `self` receiver"
            );
        }
    }

    #[test]
    fn unknown_options_are_rejected() {
        let msg = expand_err(
            Kind::Main,
            quote!(threads = 4),
            quote! { async fn main(cx: Cx) {} },
        );
        assert!(
            msg.contains("unknown option `threads` for #[asupersync::main]"),
            "{msg}"
        );
        let msg = expand_err(
            Kind::Test,
            quote!(multi_thread),
            quote! { async fn t(cx: Cx) {} },
        );
        assert!(
            msg.contains("unknown option `multi_thread` for #[asupersync::test]"),
            "{msg}"
        );
        let msg = expand_err(
            Kind::Main,
            quote!(flavor = "single"),
            quote! { async fn main(cx: Cx) {} },
        );
        assert!(msg.contains("unknown flavor `single`"), "{msg}");
    }

    #[test]
    fn malformed_option_values_are_rejected() {
        for (args, expected) in [
            (quote!(flavor = multi_thread), "takes a string"),
            (
                quote!(flavor = "multi_thread", worker_threads = "4"),
                "takes an integer literal",
            ),
            (
                quote!(flavor = "multi_thread", worker_threads = 0),
                "must be at least 1",
            ),
            (
                quote!(flavor = "multi_thread", flavor = "multi_thread"),
                "given twice",
            ),
            (
                quote!(flavor = "multi_thread" worker_threads = 2),
                "expects options of the form",
            ),
        ] {
            let msg = expand_err(Kind::Main, args.clone(), quote! { async fn main() {} });
            assert!(msg.contains(expected), "{args}: {msg}");
        }
    }

    #[test]
    fn worker_threads_without_multi_thread_is_rejected() {
        for args in [
            quote!(flavor = "current_thread", worker_threads = 2),
            quote!(worker_threads = 2),
        ] {
            let msg = expand_err(Kind::Main, args, quote! { async fn main(cx: Cx) {} });
            assert!(
                msg.contains(
                    "`worker_threads` in #[asupersync::main] requires `flavor = \"multi_thread\"`"
                ),
                "{msg}"
            );
        }
    }

    #[test]
    fn an_extra_test_attribute_is_rejected() {
        let msg = expand_err(
            Kind::Test,
            quote!(),
            quote! {
                #[test]
                async fn t(cx: Cx) {}
            },
        );
        assert!(msg.contains("already emits `#[test]`"), "{msg}");
    }

    #[test]
    fn items_that_are_not_functions_are_rejected() {
        let msg = expand_err(Kind::Main, quote!(), quote! { struct NotAFn; });
        assert!(
            msg.contains("#[asupersync::main] can only be applied to an `async fn`"),
            "{msg}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let msg = expand_err(
            Kind::Main,
            quote!(bogus = 1),
            quote! { fn main<T>(a: T, b: T) {} },
        );
        for expected in [
            "unknown option `bogus`",
            "requires an `async fn`",
            "does not accept generic parameters",
            "takes at most one parameter",
        ] {
            assert!(msg.contains(expected), "missing {expected:?} in {msg}");
        }
    }

    #[test]
    fn errors_become_compile_errors_and_keep_a_placeholder_fn() {
        let out = expand(Kind::Main, quote!(), quote! { fn main() {} });
        let text = out.to_string();
        assert!(text.contains("compile_error"), "{text}");
        assert!(text.contains("requires an `async fn`"), "{text}");
        // The placeholder keeps `main` defined, so no "main not found" error
        // piles on top of the real one.
        assert!(compact(&out).contains("fnmain(){}"), "{text}");
    }
}
