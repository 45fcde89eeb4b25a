//! The `minigate` binary; everything lives in the library.

/// mimalloc rather than glibc's malloc: measured in `benches/README.md`
/// (CPU per request, and memory given back after a 10,000-connection burst).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    minigate::ops::cli::main()
}
