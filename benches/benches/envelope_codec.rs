//! The stored envelope's two forms side by side: encoding (on the writer
//! thread, per event) and decoding (recovery, the live read models' catch
//! up, and every event the replay tool verifies). The mix over
//! 100,000 accounts.
//!
//! cargo bench -p benches --bench envelope_codec

#![allow(
    clippy::print_stdout,
    reason = "the stored sizes are reported beside criterion's timings"
)]

use std::hint::black_box;
use std::time::Duration;

use benches::committed_envelopes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ledger_core::engine::EventEnvelope;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Encoder = fn(&EventEnvelope) -> Vec<u8>;

fn binary(envelope: &EventEnvelope) -> Vec<u8> {
    envelope.encode().unwrap_or_else(|error| panic!("{error}"))
}

fn json(envelope: &EventEnvelope) -> Vec<u8> {
    envelope
        .encode_json()
        .unwrap_or_else(|error| panic!("{error}"))
}

fn envelope_codec(criterion: &mut Criterion) {
    let envelopes = committed_envelopes(100_000, 100_000);
    let mut group = criterion.benchmark_group("envelope");
    group.throughput(Throughput::Elements(envelopes.len() as u64));
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for (form, encode) in [("binary", binary as Encoder), ("json", json as Encoder)] {
        let stored: Vec<Vec<u8>> = envelopes.iter().map(encode).collect();
        let bytes: usize = stored.iter().map(Vec::len).sum();
        println!(
            "{form}: {} envelopes, {:.0} bytes each on average",
            stored.len(),
            bytes as f64 / stored.len() as f64
        );
        group.bench_function(format!("encode_{form}"), |bencher| {
            bencher.iter(|| {
                for envelope in &envelopes {
                    black_box(encode(envelope));
                }
            });
        });
        group.bench_function(format!("decode_{form}"), |bencher| {
            bencher.iter(|| {
                for payload in &stored {
                    match EventEnvelope::decode(payload) {
                        Ok(envelope) => black_box(envelope),
                        Err(error) => panic!("{error}"),
                    };
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, envelope_codec);
criterion_main!(benches);
