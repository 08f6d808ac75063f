//! Procedural macros for [asupersync](https://docs.rs/asupersync):
//! `#[asupersync::main]`, `#[asupersync::test]` and
//! `#[asupersync::lab_test]`.
//!
//! The first two turn an `async fn` that takes the root capability context
//! (`Cx`) into a plain `fn` that builds a runtime and drives the body to
//! completion with `Runtime::block_on`; `lab_test` runs the body in the
//! deterministic lab once per seed (`asupersync::lab::run_seeds`). Use them
//! through the re-exports in the `asupersync` crate (`#[asupersync::main]`,
//! `#[asupersync::test]`, `#[asupersync::lab_test]`), never from this crate
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

/// Turns an `async fn` test into a plain `#[test] fn` that runs the body in
/// the deterministic lab once per seed, each seed in a fresh
/// `LabRuntime`, and reports the first failing seed with the command that
/// replays it:
///
/// ```text
/// #[asupersync::lab_test(seeds = 200)]
/// async fn no_lost_updates(cx: Cx) { /* body */ }
///
/// // becomes
/// #[test]
/// fn no_lost_updates() {
///     async fn no_lost_updates(cx: Cx) { /* body */ }
///     ::asupersync::lab::run_seeds(
///         &::asupersync::lab::libtest_name(module_path!(), "no_lost_updates"),
///         ::asupersync::lab::SeedRange::new(0, 200),
///         |seed| ::asupersync::lab::LabConfig::new(seed),
///         |cx| no_lost_updates(cx),
///     );
/// }
/// ```
///
/// On a failure the test prints, to stderr,
/// `asupersync lab: <test> failed with seed 17 (of 0..200, after 17 passed): <message>`
/// and `replay: ASUPERSYNC_LAB_SEED=17 cargo test <test>`, then resumes the
/// original panic (so `#[should_panic]` works). `ASUPERSYNC_LAB_SEED=<n>`
/// runs only seed `n`; `ASUPERSYNC_LAB_SEEDS=<count>` changes the number of
/// seeds.
///
/// The body may return `()` or `Result<(), E>` (`E: Debug`; an `Err` fails
/// the seed). The `Cx` parameter is optional. Other attributes
/// (`#[should_panic]`, `#[ignore]`, ...) are kept; an extra `#[test]` is a
/// compile error.
///
/// # Options
///
/// - `seeds = N` (default 64, at least 1): how many seeds.
/// - `base_seed = S` (default 0): the first seed (`S..S + N`).
/// - `chaos = "off" | "light" | "heavy"` (default `"off"`):
///   `ChaosConfig::light()` / `ChaosConfig::heavy()` fault injection.
/// - `policy = "random" | "fifo" | "pct"` (default `"random"`): the
///   schedule policy; `"pct"` is `SchedulePolicy::Pct { depth: 3,
///   expected_steps: 1000 }`.
/// - `workers = N` (at least 1): simulate `N` workers (`LabConfig::workers`).
/// - `step_limit = N` (at least 1): the livelock step limit.
///
/// For anything else, call `asupersync::lab::run_seeds` from a plain
/// `#[test]` with your own `LabConfig`.
///
/// # Compile errors
///
/// The same signature rules as [`macro@test`]; unknown, repeated or
/// malformed options (including the production-only `flavor` and
/// `worker_threads`) are rejected, each naming the rule.
#[proc_macro_attribute]
pub fn lab_test(
    args: proc_macro::TokenStream,
    item: proc_macro::TokenStream,
) -> proc_macro::TokenStream {
    expand(Kind::LabTest, args.into(), item.into()).into()
}

/// Which attribute is being expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Main,
    Test,
    LabTest,
}

impl Kind {
    /// The attribute as users write it, for error messages.
    fn attr_name(self) -> &'static str {
        match self {
            Kind::Main => "#[asupersync::main]",
            Kind::Test => "#[asupersync::test]",
            Kind::LabTest => "#[asupersync::lab_test]",
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

/// The parsed options of either family of attributes.
enum Options {
    Runtime(Flavor),
    Lab(LabOptions),
}

/// Expands the attribute, reporting every problem found as one combined error.
fn try_expand(kind: Kind, args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let flavor = match kind {
        Kind::LabTest => parse_lab_options(args).map(Options::Lab),
        Kind::Main | Kind::Test => parse_options(kind, args).map(Options::Runtime),
    };
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
        (Ok(options), Ok(func)) => {
            check_signature(kind, &func)?;
            Ok(match options {
                Options::Runtime(flavor) => expand_fn(kind, &flavor, func),
                Options::Lab(options) => expand_lab_fn(&options, func),
            })
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
    if kind != Kind::Main
        && let Some(attr) = func.attrs.iter().find(|a| is_test_attr(a))
    {
        errors.push(syn::Error::new_spanned(
            attr,
            format!("{name} already emits `#[test]`; remove this extra test attribute"),
        ));
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
        Kind::Test | Kind::LabTest => quote! { #[::core::prelude::v1::test] },
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

/// A chaos preset of `#[asupersync::lab_test]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChaosPreset {
    Off,
    Light,
    Heavy,
}

/// A schedule policy of `#[asupersync::lab_test]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PolicyOption {
    Random,
    Fifo,
    Pct,
}

/// The options of `#[asupersync::lab_test]`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LabOptions {
    seeds: u64,
    base_seed: u64,
    chaos: Option<ChaosPreset>,
    policy: Option<PolicyOption>,
    workers: Option<u64>,
    step_limit: Option<u64>,
}

impl Default for LabOptions {
    fn default() -> Self {
        Self {
            seeds: DEFAULT_LAB_SEEDS,
            base_seed: 0,
            chaos: None,
            policy: None,
            workers: None,
            step_limit: None,
        }
    }
}

/// Seeds a `#[asupersync::lab_test]` runs without `seeds = N`
/// (`asupersync::lab::SeedRange::DEFAULT_COUNT`).
const DEFAULT_LAB_SEEDS: u64 = 64;

/// Parses `seeds = N, base_seed = S, chaos = "..", policy = "..", workers = N,
/// step_limit = N`.
fn parse_lab_options(args: TokenStream) -> syn::Result<LabOptions> {
    let name = Kind::LabTest.attr_name();
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated
        .parse2(args)
        .map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("{name} expects options of the form `seeds = 100, chaos = \"heavy\"`"),
            )
        })?;

    let mut options = LabOptions::default();
    let mut seen: Vec<String> = Vec::new();
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    const EXPECTED: &str =
        "expected `seeds`, `base_seed`, `chaos`, `policy`, `workers` or `step_limit`";

    for meta in metas {
        let nv = match meta {
            Meta::NameValue(nv) => nv,
            other => {
                push(syn::Error::new_spanned(
                    &other,
                    format!(
                        "unknown option `{}` for {name}; {EXPECTED} (written `option = value`)",
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
        let known = [
            "seeds",
            "base_seed",
            "chaos",
            "policy",
            "workers",
            "step_limit",
        ];
        if known.contains(&key.as_str()) {
            if seen.contains(&key) {
                push(syn::Error::new_spanned(
                    &nv.path,
                    format!("the `{key}` option is given twice in {name}"),
                ));
                continue;
            }
            seen.push(key.clone());
        }
        // An integer option: `Ok(n)` if it is a literal within range.
        let int = |min: u64| -> syn::Result<u64> {
            match &nv.value {
                Expr::Lit(syn::ExprLit {
                    lit: Lit::Int(i), ..
                }) => {
                    let n = i.base10_parse::<u64>().map_err(|e| {
                        syn::Error::new_spanned(
                            &nv.value,
                            format!(
                                "the `{key}` option of {name} takes an integer literal from 0 to {} ({e})",
                                u64::MAX
                            ),
                        )
                    })?;
                    if n < min {
                        Err(syn::Error::new_spanned(
                            &nv.value,
                            format!("`{key}` in {name} must be at least {min}"),
                        ))
                    } else {
                        Ok(n)
                    }
                }
                _ => Err(syn::Error::new_spanned(
                    &nv.value,
                    format!("the `{key}` option of {name} takes an integer literal"),
                )),
            }
        };
        match key.as_str() {
            "seeds" => match int(1) {
                Ok(n) => options.seeds = n,
                Err(e) => push(e),
            },
            "base_seed" => match int(0) {
                Ok(n) => options.base_seed = n,
                Err(e) => push(e),
            },
            "workers" => match int(1) {
                Ok(n) => options.workers = Some(n),
                Err(e) => push(e),
            },
            "step_limit" => match int(1) {
                Ok(n) => options.step_limit = Some(n),
                Err(e) => push(e),
            },
            "chaos" => match lit_str(&nv.value).as_deref() {
                Some("off") => options.chaos = Some(ChaosPreset::Off),
                Some("light") => options.chaos = Some(ChaosPreset::Light),
                Some("heavy") => options.chaos = Some(ChaosPreset::Heavy),
                Some(other) => push(syn::Error::new_spanned(
                    &nv.value,
                    format!(
                        "unknown chaos preset `{other}` for {name}; expected \"off\", \"light\" or \"heavy\""
                    ),
                )),
                None => push(syn::Error::new_spanned(
                    &nv.value,
                    format!(
                        "the `chaos` option of {name} takes a string: \"off\", \"light\" or \"heavy\""
                    ),
                )),
            },
            "policy" => match lit_str(&nv.value).as_deref() {
                Some("random") => options.policy = Some(PolicyOption::Random),
                Some("fifo") => options.policy = Some(PolicyOption::Fifo),
                Some("pct") => options.policy = Some(PolicyOption::Pct),
                Some(other) => push(syn::Error::new_spanned(
                    &nv.value,
                    format!(
                        "unknown schedule policy `{other}` for {name}; expected \"random\", \"fifo\" or \"pct\""
                    ),
                )),
                None => push(syn::Error::new_spanned(
                    &nv.value,
                    format!(
                        "the `policy` option of {name} takes a string: \"random\", \"fifo\" or \"pct\""
                    ),
                )),
            },
            "flavor" | "worker_threads" => push(syn::Error::new_spanned(
                &nv.path,
                format!(
                    "`{key}` is an option of #[asupersync::test], not {name}: the lab runs on one thread with virtual time; use `workers = N` to simulate workers"
                ),
            )),
            _ => push(syn::Error::new_spanned(
                &nv.path,
                format!(
                    "unknown option `{}` for {name}; {EXPECTED}",
                    nv.path.to_token_stream()
                ),
            )),
        }
    }

    if options.base_seed.checked_add(options.seeds).is_none() {
        push(syn::Error::new(
            Span::call_site(),
            format!(
                "the seeds of {name} overflow u64: `base_seed` + `seeds` must be at most {}",
                u64::MAX
            ),
        ));
    }
    match errors {
        None => Ok(options),
        Some(e) => Err(e),
    }
}

/// Builds the `#[test] fn` of a `#[asupersync::lab_test]` from a function
/// that passed [`check_signature`]: the user's `async fn` is kept, untouched,
/// as an item inside the test, and [`run_seeds`] calls it once per seed.
///
/// [`run_seeds`]: https://docs.rs/asupersync/latest/asupersync/lab/fn.run_seeds.html
fn expand_lab_fn(options: &LabOptions, func: ItemFn) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;

    // Outer attributes (`#[should_panic]`, docs, lints) go on the test;
    // inner ones (`#![allow(..)]` in the body) too, as outer attributes:
    // lint levels reach the nested body function from there.
    let attrs = attrs.into_iter().map(|mut a| {
        a.style = AttrStyle::Outer;
        a
    });

    let name = &sig.ident;
    let base = Literal::u64_unsuffixed(options.base_seed);
    let count = Literal::u64_unsuffixed(options.seeds);

    let mut config = TokenStream::new();
    match options.chaos {
        None | Some(ChaosPreset::Off) => {}
        Some(ChaosPreset::Light) => {
            config.extend(quote! { .chaos(::asupersync::lab::ChaosConfig::light()) });
        }
        Some(ChaosPreset::Heavy) => {
            config.extend(quote! { .chaos(::asupersync::lab::ChaosConfig::heavy()) });
        }
    }
    match options.policy {
        None | Some(PolicyOption::Random) => {}
        Some(PolicyOption::Fifo) => {
            config.extend(quote! { .policy(::asupersync::lab::SchedulePolicy::Fifo) });
        }
        Some(PolicyOption::Pct) => config.extend(quote! {
            .policy(::asupersync::lab::SchedulePolicy::Pct { depth: 3, expected_steps: 1000 })
        }),
    }
    if let Some(n) = options.workers {
        let n = Literal::u64_unsuffixed(n);
        config.extend(quote! { .workers(#n) });
    }
    if let Some(n) = options.step_limit {
        let n = Literal::u64_unsuffixed(n);
        config.extend(quote! { .step_limit(#n) });
    }

    // `mixed_site` keeps these out of the user's namespace.
    let seed = Ident::new("__asupersync_seed", Span::mixed_site());
    let cx = Ident::new("__asupersync_cx", Span::mixed_site());
    let call = if sig.inputs.is_empty() {
        quote! { { let _ = #cx; #name() } }
    } else {
        quote! { #name(#cx) }
    };

    quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis fn #name() {
            #sig #block

            ::asupersync::lab::run_seeds(
                &::asupersync::lab::libtest_name(
                    ::core::module_path!(),
                    ::core::stringify!(#name),
                ),
                ::asupersync::lab::SeedRange::new(#base, #count),
                |#seed: u64| ::asupersync::lab::LabConfig::new(#seed) #config,
                |#cx: ::asupersync::Cx| #call,
            );
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

    // ----- #[asupersync::lab_test] --------------------------------------

    /// The call to `run_seeds` in a lab test's body.
    fn run_seeds_call(f: &ItemFn) -> String {
        let body = compact(&f.block);
        let at = body
            .find("::asupersync::lab::run_seeds(")
            .unwrap_or_else(|| panic!("no run_seeds call in {body}"));
        body[at..].to_string()
    }

    #[test]
    fn lab_test_runs_the_body_over_64_seeds_by_default() {
        let f = expand_ok(
            Kind::LabTest,
            quote!(),
            quote! {
                async fn sweeps(cx: Cx) {
                    cx.trace("hi");
                }
            },
        );
        assert_eq!(attr_paths(&f), vec!["::core::prelude::v1::test"]);
        assert_eq!(f.sig.ident, "sweeps");
        assert!(f.sig.asyncness.is_none());
        assert!(f.sig.inputs.is_empty());
        assert!(matches!(f.sig.output, ReturnType::Default));
        // The user's async fn is kept, untouched, inside the test.
        let inner = match &f.block.stmts[0] {
            syn::Stmt::Item(syn::Item::Fn(inner)) => inner.clone(),
            other => panic!("expected the body fn first, got {}", compact(other)),
        };
        assert!(inner.sig.asyncness.is_some());
        assert_eq!(inner.sig.ident, "sweeps");
        assert_eq!(compact(&inner.sig.inputs), "cx:Cx");
        assert!(compact(&inner.block).contains("cx.trace(\"hi\")"));
        let call = run_seeds_call(&f);
        assert!(
            call.contains(
                "&::asupersync::lab::libtest_name(::core::module_path!(),::core::stringify!(sweeps),)"
            ),
            "{call}"
        );
        assert!(
            call.contains("::asupersync::lab::SeedRange::new(0,64)"),
            "{call}"
        );
        assert!(
            call.contains(
                "|__asupersync_seed:u64|::asupersync::lab::LabConfig::new(__asupersync_seed),"
            ),
            "{call}"
        );
        assert!(
            call.contains("|__asupersync_cx:::asupersync::Cx|sweeps(__asupersync_cx)"),
            "{call}"
        );
    }

    #[test]
    fn lab_test_options_configure_the_seeds_and_the_lab() {
        let f = expand_ok(
            Kind::LabTest,
            quote!(
                seeds = 200,
                base_seed = 1_000,
                chaos = "heavy",
                policy = "pct",
                workers = 4,
                step_limit = 5000
            ),
            quote! { async fn t(cx: Cx) {} },
        );
        let call = run_seeds_call(&f);
        assert!(
            call.contains("::asupersync::lab::SeedRange::new(1000,200)"),
            "{call}"
        );
        assert!(
            call.contains(
                "::asupersync::lab::LabConfig::new(__asupersync_seed)\
                 .chaos(::asupersync::lab::ChaosConfig::heavy())\
                 .policy(::asupersync::lab::SchedulePolicy::Pct{depth:3,expected_steps:1000})\
                 .workers(4)\
                 .step_limit(5000),"
            ),
            "{call}"
        );
        for (args, expected) in [
            (
                quote!(chaos = "light"),
                ".chaos(::asupersync::lab::ChaosConfig::light())",
            ),
            (
                quote!(policy = "fifo"),
                ".policy(::asupersync::lab::SchedulePolicy::Fifo)",
            ),
        ] {
            let call = run_seeds_call(&expand_ok(Kind::LabTest, args, quote! { async fn t() {} }));
            assert!(call.contains(expected), "{call}");
        }
        // The defaults spelled out change nothing.
        let explicit = expand_ok(
            Kind::LabTest,
            quote!(seeds = 64, base_seed = 0, chaos = "off", policy = "random"),
            quote! { async fn t(cx: Cx) {} },
        );
        let default = expand_ok(Kind::LabTest, quote!(), quote! { async fn t(cx: Cx) {} });
        assert_eq!(compact(&explicit), compact(&default));
    }

    #[test]
    fn lab_test_keeps_attributes_results_and_an_absent_cx() {
        let f = expand_ok(
            Kind::LabTest,
            quote!(seeds = 3),
            quote! {
                /// Docs.
                #[should_panic(expected = "boom")]
                pub async fn fallible() -> Result<(), String> {
                    #![allow(unused_mut)]
                    Err("boom".into())
                }
            },
        );
        assert_eq!(
            attr_paths(&f),
            vec!["::core::prelude::v1::test", "doc", "should_panic", "allow"]
        );
        assert!(
            f.attrs
                .iter()
                .all(|a| matches!(a.style, syn::AttrStyle::Outer))
        );
        assert_eq!(compact(&f.vis), "pub");
        // The test itself returns (); the body fn keeps the Result.
        assert!(matches!(f.sig.output, ReturnType::Default));
        let inner = compact(&f.block.stmts[0]);
        assert!(
            inner.starts_with("asyncfnfallible()->Result<(),String>{"),
            "{inner}"
        );
        let call = run_seeds_call(&f);
        assert!(
            call.contains("|__asupersync_cx:::asupersync::Cx|{let_=__asupersync_cx;fallible()}"),
            "{call}"
        );
    }

    #[test]
    fn lab_test_enforces_the_signature_rules() {
        let msg = expand_err(Kind::LabTest, quote!(), quote! { fn t(cx: Cx) {} });
        assert_eq!(msg, "#[asupersync::lab_test] requires an `async fn`");
        let msg = expand_err(Kind::LabTest, quote!(), quote! { async fn t<T>(cx: Cx) {} });
        assert!(
            msg.contains("#[asupersync::lab_test] does not accept generic parameters"),
            "{msg}"
        );
        let msg = expand_err(
            Kind::LabTest,
            quote!(),
            quote! { async fn t(cx: Cx, n: u8) {} },
        );
        assert!(
            msg.contains("#[asupersync::lab_test] takes at most one parameter, the `Cx`"),
            "{msg}"
        );
        let msg = expand_err(
            Kind::LabTest,
            quote!(),
            quote! {
                #[test]
                async fn t(cx: Cx) {}
            },
        );
        assert!(
            msg.contains("#[asupersync::lab_test] already emits `#[test]`"),
            "{msg}"
        );
        let msg = expand_err(Kind::LabTest, quote!(), quote! { const X: u8 = 1; });
        assert!(
            msg.contains("#[asupersync::lab_test] can only be applied to an `async fn`"),
            "{msg}"
        );
    }

    #[test]
    fn lab_test_rejects_bad_options_naming_the_rule() {
        for (args, expected) in [
            (
                quote!(seeds = 0),
                "`seeds` in #[asupersync::lab_test] must be at least 1",
            ),
            (
                quote!(workers = 0),
                "`workers` in #[asupersync::lab_test] must be at least 1",
            ),
            (
                quote!(step_limit = 0),
                "`step_limit` in #[asupersync::lab_test] must be at least 1",
            ),
            (
                quote!(seeds = "10"),
                "the `seeds` option of #[asupersync::lab_test] takes an integer literal",
            ),
            (quote!(seeds = -1), "takes an integer literal from 0 to"),
            (quote!(seeds = 99999999999999999999999), "number too large"),
            (
                quote!(seeds = 2, seeds = 3),
                "the `seeds` option is given twice in #[asupersync::lab_test]",
            ),
            (
                quote!(chaos = "medium"),
                "unknown chaos preset `medium` for #[asupersync::lab_test]; expected \"off\", \"light\" or \"heavy\"",
            ),
            (
                quote!(chaos = heavy),
                "the `chaos` option of #[asupersync::lab_test] takes a string",
            ),
            (quote!(policy = "lifo"), "unknown schedule policy `lifo`"),
            (
                quote!(policy = 1),
                "the `policy` option of #[asupersync::lab_test] takes a string",
            ),
            (
                quote!(iterations = 5),
                "unknown option `iterations` for #[asupersync::lab_test]; expected `seeds`",
            ),
            (
                quote!(heavy),
                "unknown option `heavy` for #[asupersync::lab_test]",
            ),
            (
                quote!(flavor = "multi_thread"),
                "`flavor` is an option of #[asupersync::test], not #[asupersync::lab_test]",
            ),
            (
                quote!(worker_threads = 2),
                "use `workers = N` to simulate workers",
            ),
            (
                quote!(base_seed = 18446744073709551615, seeds = 2),
                "overflow u64",
            ),
            (
                quote!(seeds = 2 chaos = "heavy"),
                "expects options of the form",
            ),
        ] {
            let msg = expand_err(
                Kind::LabTest,
                args.clone(),
                quote! { async fn t(cx: Cx) {} },
            );
            assert!(msg.contains(expected), "{args}: {msg}");
        }
    }

    #[test]
    fn lab_test_reports_every_problem_at_once() {
        let msg = expand_err(
            Kind::LabTest,
            quote!(seeds = 0, chaos = "wild"),
            quote! { fn t(a: u8, b: u8) {} },
        );
        for expected in [
            "`seeds` in #[asupersync::lab_test] must be at least 1",
            "unknown chaos preset `wild`",
            "requires an `async fn`",
            "takes at most one parameter",
        ] {
            assert!(msg.contains(expected), "missing {expected:?} in {msg}");
        }
        // And the error keeps a placeholder fn, so nothing piles on.
        let out = expand(Kind::LabTest, quote!(seeds = 0), quote! { async fn t() {} });
        assert!(out.to_string().contains("compile_error"));
        assert!(compact(&out).contains("fnt(){}"));
    }
}
