//! Side-by-side benchmarks: asupersync vs tokio (filled in as primitives land).
fn main() {}
