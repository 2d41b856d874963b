//! The real `ledger-replay`, built inside this crate so the replay tests
//! can run it as a process (`CARGO_BIN_EXE_ledger-replay-under-test`).

fn main() -> std::process::ExitCode {
    replay_tool::cli::main()
}
