//! Procedural macros for asupersync.
