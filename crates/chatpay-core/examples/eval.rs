//! `cargo run -p chatpay-core --example eval -- FILE [DIR]`: what `chatpay intents eval` prints,
//! without building the server (for iterating on the intent files).

fn main() {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .unwrap_or_else(|| "intents/heldout.tsv".to_owned());
    let sources = match args.next() {
        Some(dir) => chatpay_core::intents::read_dir(std::path::Path::new(&dir)).expect("dir"),
        None => chatpay_core::intents::embedded_sources(),
    };
    let (matcher, _) = chatpay_core::intents::load_sources(&sources, 0.5, 0.08)
        .unwrap_or_else(|e| panic!("{}", e.join("\n")));
    if let Some(t) = file.strip_prefix("view:") {
        for line in t.split('|') {
            let v = matcher.model_view(line);
            println!(
                "{line:?}: {:?} => {:?}",
                &v[..3],
                matcher.classify(line).outcome
            );
        }
        return;
    }
    let text = std::fs::read_to_string(&file).expect("held-out file");
    let cases = chatpay_core::intents::parse_eval(&text).expect("held-out file parses");
    print!("{}", chatpay_core::intents::evaluate(&matcher, &cases));
}
