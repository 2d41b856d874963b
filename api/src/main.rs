//! `ledger-server`: the points ledger over HTTP, on the embedded file log.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    api::cli::run()
}
