//! Matching speed over the full intent set: every example, counter-example and no-intent line
//! in `intents/` (hundreds of real phrasings), one `classify` each.
//!
//! `cargo bench --bench matcher`; the figure per utterance is the reported time divided by the
//! number of utterances (printed first). `floor_lowercase_all` is the machine's floor in the same
//! run: one lowercased copy of each utterance (what any matcher has to do at least), so that runs
//! on a busy or a quiet machine can be compared by their ratio to it.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The server's allocator (see src/main.rs), so that the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn corpus() -> (chatpay_core::intents::Matcher, Vec<String>) {
    let sources = chatpay_core::intents::embedded_sources();
    let (matcher, corpus) =
        chatpay_core::intents::load_sources(&sources, 0.5, 0.08).expect("intents load");
    let texts: Vec<String> = corpus.checks.into_iter().map(|c| c.text).collect();
    (matcher, texts)
}

fn bench(c: &mut Criterion) {
    let (matcher, texts) = corpus();
    eprintln!(
        "{} utterances, {} rules",
        texts.len(),
        matcher.rule_names().len()
    );
    let mut group = c.benchmark_group("matcher");
    group.throughput(Throughput::Elements(texts.len() as u64));
    group.bench_function("classify_all", |b| {
        b.iter(|| {
            for t in &texts {
                black_box(matcher.classify(black_box(t)));
            }
        })
    });
    group.bench_function("floor_lowercase_all", |b| {
        let mut buf: Vec<u8> = Vec::with_capacity(256);
        b.iter(|| {
            for t in &texts {
                buf.clear();
                buf.extend(black_box(t).bytes().map(|c| c.to_ascii_lowercase()));
                black_box(&buf);
            }
        })
    });
    let short = "I want to add payments";
    group.throughput(Throughput::Elements(1));
    group.bench_function("classify_short", |b| {
        b.iter(|| black_box(matcher.classify(black_box(short))))
    });
    let chatty = "hey there! so I was thinking, could we maybe add payments to the site? my users keep asking, thx 🙏";
    group.bench_function("classify_chatty", |b| {
        b.iter(|| black_box(matcher.classify(black_box(chatty))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
