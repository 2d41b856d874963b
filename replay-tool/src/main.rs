//! `ledger-replay`: verify, rebuild, export, report and diff a ledger from
//! its log alone.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    replay_tool::cli::main()
}
