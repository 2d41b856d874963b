//! The real `ledger-server`, built inside this crate so the HTTP tests can
//! start it as a process (`CARGO_BIN_EXE_ledger-server-under-test`): the
//! same code as the `api` crate's binary, which is only this call.

fn main() -> anyhow::Result<()> {
    api::cli::run()
}
