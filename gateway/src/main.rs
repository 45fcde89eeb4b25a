//! The `minigate` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    minigate::cli::main()
}
