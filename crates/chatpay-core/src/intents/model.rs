//! Recall where the rules can't reach: a small linear model (multinomial logistic regression)
//! over hashed word unigrams, word bigrams and character 3- and 4-grams of the normalized text,
//! trained at load from the intent files' own examples, counter-examples and `_no_intent.toml`.
//!
//! Deterministic: the same files give the same weights (fixed order, fixed epochs, no seed from
//! outside, no network). Words a negation cue governs (the same cues, window and breakers as
//! the rules) become different features (`not:payments`), so "don't add payments" and "add
//! payments" look different to the model too. One class more than there are intents: `none`,
//! trained on the no-intent lines. Counter-examples push their intent down and nothing else
//! up ("not this intent" is all they say).
//!
//! Scoring is a few hundred multiply-adds into a 16-wide row per feature; the explanation of a
//! decision is the n-grams that weighed most for the winning class.

/// Hash buckets (rows of the weight table).
const BUCKETS: usize = 1 << 14;
const EPOCHS: usize = 40;

/// One feature occurrence: its bucket and where in the normalized text it came from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Feature {
    pub bucket: u32,
    pub start: u32,
    pub end: u32,
    pub negated: bool,
}

/// A training line: features and what it teaches.
pub(super) struct Sample {
    pub features: Vec<Feature>,
    pub label: Label,
}

#[derive(Clone, Copy)]
pub(super) enum Label {
    /// This class (an intent, or `none`).
    Is(usize),
    /// Not this intent.
    Not(usize),
}

#[derive(Debug, Default)]
pub(super) struct Model {
    classes: usize,
    /// Blocks per row: `classes` rounded up to whole blocks (the padding stays 0).
    blocks: usize,
    /// The weights quantized to 16 bits (`weight = q * scale`), `BUCKETS x blocks` blocks:
    /// a row of up to 32 classes is one 64-byte cache line, so that a feature costs one line
    /// fetched, and the table (1 MiB) half of what 32-bit floats take. Scoring sums rows in
    /// integers and scales once.
    rows: Vec<Block>,
    scale: f32,
}

/// Classes per block.
const BLOCK: usize = 32;

/// 32 classes' weights of one bucket, on a cache line of their own.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
struct Block([i16; BLOCK]);

/// The trained weights before quantization: `BUCKETS x stride` floats.
struct Floats {
    stride: usize,
    weights: Vec<f32>,
}

/// Floats added at once when a feature's row is summed (one AVX register).
const LANES: usize = 8;

fn fnv(seed: u32, parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5 ^ seed;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0193);
        }
        for &b in *p {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h % BUCKETS as u32
}

/// The features of normalized `text` (words separated by single spaces). `negated(start)` says
/// whether the word starting at byte `start` is governed by a negation cue.
pub(super) fn features(text: &str, negated: impl Fn(u32) -> bool, out: &mut Vec<Feature>) {
    out.clear();
    let bytes = text.as_bytes();
    let mut prev: Option<(u32, u32, bool)> = None;
    let mut pos = 0usize;
    for word in text.split(' ') {
        let start = pos as u32;
        pos += word.len() + 1;
        if word.is_empty() {
            continue;
        }
        let end = start + word.len() as u32;
        let neg = negated(start);
        let w = word.as_bytes();
        out.push(Feature {
            bucket: fnv(if neg { 2 } else { 1 }, &[w]),
            start,
            end,
            negated: neg,
        });
        if let Some((ps, pe, pneg)) = prev {
            let p = &bytes[ps as usize..pe as usize];
            let neg = neg || pneg;
            out.push(Feature {
                bucket: fnv(if neg { 4 } else { 3 }, &[p, w]),
                start: ps,
                end,
                negated: neg,
            });
        }
        prev = Some((start, end, neg));
        if neg {
            // A governed word says only that it is governed: no spelling features.
            continue;
        }
        // Character n-grams of `<word>`, for misspellings and word forms.
        let n = w.len();
        for len in [3usize, 4] {
            // Positions in the padded word `<` w `>`: 0 ..= n + 2 - len.
            if n + 2 < len {
                continue;
            }
            for i in 0..=(n + 2 - len) {
                let lo = i.saturating_sub(1);
                let hi = (i + len - 1).min(n);
                let pre: &[u8] = if i == 0 { b"<" } else { b"" };
                let post: &[u8] = if i + len > n + 1 { b">" } else { b"" };
                out.push(Feature {
                    bucket: fnv(5 + len as u32, &[pre, &w[lo..hi], post]),
                    start: start + lo as u32,
                    end: start + hi as u32,
                    negated: false,
                });
            }
        }
    }
    // The bias: always there.
    out.push(Feature {
        bucket: 0,
        start: 0,
        end: 0,
        negated: false,
    });
}

impl Model {
    /// Trains on `samples`, deterministically.
    pub fn train(classes: usize, samples: &[Sample]) -> Model {
        let stride = classes.div_ceil(LANES) * LANES;
        let mut m = Floats {
            stride,
            weights: vec![0.0; BUCKETS * stride],
        };
        if samples.is_empty() {
            return Model::default();
        }
        // A fixed permutation per epoch (an LCG with a constant seed): order matters to SGD,
        // and the files' order groups each intent together.
        let mut order: Vec<usize> = (0..samples.len()).collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut logits = vec![0.0f32; stride];
        let mut grad = vec![0.0f32; classes];
        for epoch in 0..EPOCHS {
            for i in (1..order.len()).rev() {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                order.swap(i, (state >> 33) as usize % (i + 1));
            }
            let lr = 1.0 / (1.0 + epoch as f32 * 0.1);
            for &ix in &order {
                let s = &samples[ix];
                let scale = 1.0 / (s.features.len() as f32).sqrt();
                m.logits(&s.features, scale, &mut logits);
                let p = &mut logits[..classes];
                softmax(p);
                match s.label {
                    Label::Is(y) => {
                        for k in 0..classes {
                            grad[k] = p[k] - if k == y { 1.0 } else { 0.0 };
                        }
                    }
                    Label::Not(x) => {
                        // Loss -ln(1 - p_x).
                        let px = p[x].min(0.999);
                        for k in 0..classes {
                            grad[k] = if k == x { px } else { -px * p[k] / (1.0 - px) };
                        }
                    }
                }
                for f in &s.features {
                    let row = &mut m.weights[f.bucket as usize * stride..][..classes];
                    for k in 0..classes {
                        row[k] -= lr * scale * grad[k];
                    }
                }
            }
            // A little weight decay per epoch keeps probabilities from running to 1.
            for w in &mut m.weights {
                *w *= 0.995;
            }
        }
        Model::quantize(classes, &m)
    }

    fn quantize(classes: usize, m: &Floats) -> Model {
        let max = m.weights.iter().fold(0.0f32, |a, w| a.max(w.abs()));
        let scale = if max > 0.0 {
            max / f32::from(i16::MAX)
        } else {
            1.0
        };
        let blocks = classes.div_ceil(BLOCK);
        let mut rows = vec![Block([0; BLOCK]); BUCKETS * blocks];
        for bucket in 0..BUCKETS {
            let row = &m.weights[bucket * m.stride..][..classes];
            for (k, w) in row.iter().enumerate() {
                rows[bucket * blocks + k / BLOCK].0[k % BLOCK] = (w / scale).round() as i16;
            }
        }
        Model {
            classes,
            blocks,
            rows,
            scale,
        }
    }
}

impl Floats {
    /// The rows of `features` summed, times `scale`, into `out` (`stride` long; the classes
    /// first, then the padding's zeros).
    fn logits(&self, features: &[Feature], scale: f32, out: &mut [f32]) {
        out.iter_mut().for_each(|x| *x = 0.0);
        let out = &mut out[..self.stride];
        for f in features {
            let row = &self.weights[f.bucket as usize * self.stride..][..self.stride];
            for (o, w) in out.chunks_exact_mut(LANES).zip(row.chunks_exact(LANES)) {
                let o: &mut [f32; LANES] = o.try_into().expect("LANES wide");
                let w: &[f32; LANES] = w.try_into().expect("LANES wide");
                for k in 0..LANES {
                    o[k] += w[k];
                }
            }
        }
        out.iter_mut().for_each(|x| *x *= scale);
    }
}

impl Model {
    pub fn is_empty(&self) -> bool {
        self.classes == 0
    }

    /// Class probabilities for these features.
    pub fn score(&self, features: &[Feature], probs: &mut Vec<f32>) {
        probs.clear();
        if features.is_empty() {
            probs.resize(self.classes, 0.0);
            return;
        }
        let scale = self.scale / (features.len() as f32).sqrt();
        for b in 0..self.blocks {
            let mut acc = [0i32; BLOCK];
            for f in features {
                let row = &self.rows[f.bucket as usize * self.blocks + b].0;
                for k in 0..BLOCK {
                    acc[k] += i32::from(row[k]);
                }
            }
            let n = (self.classes - b * BLOCK).min(BLOCK);
            probs.extend(acc[..n].iter().map(|&x| x as f32 * scale));
        }
        softmax(probs);
    }

    /// How much feature `f` weighed for `class` against the runner-up classes on average.
    pub fn weight(&self, f: &Feature, class: usize) -> f32 {
        let w = |k: usize| {
            f32::from(self.rows[f.bucket as usize * self.blocks + k / BLOCK].0[k % BLOCK])
                * self.scale
        };
        let mean = (0..self.classes).map(w).sum::<f32>() / self.classes as f32;
        w(class) - mean
    }
}

fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_mark_governed_words_and_keep_spans() {
        let text = "do not add payments";
        let mut out = Vec::new();
        features(text, |start| start >= 7, &mut out);
        let words: Vec<_> = out
            .iter()
            .filter(|f| f.end > f.start)
            .map(|f| (&text[f.start as usize..f.end as usize], f.negated))
            .collect();
        assert!(words.contains(&("payments", true)));
        assert!(words.contains(&("do", false)));
        // No spelling features of governed words.
        assert!(!words.contains(&("pay", false)));
        assert!(words.contains(&("no", false)), "{words:?}");
    }

    #[test]
    fn training_is_deterministic_and_learns() {
        let mut f = Vec::new();
        let mut sample = |t: &str, label| {
            features(t, |_| false, &mut f);
            Sample {
                features: f.clone(),
                label,
            }
        };
        let samples = vec![
            sample("refund the order", Label::Is(0)),
            sample("give the money back", Label::Is(0)),
            sample("hello there", Label::Is(1)),
            sample("good morning", Label::Is(1)),
        ];
        let a = Model::train(2, &samples);
        let b = Model::train(2, &samples);
        assert_eq!((&a.rows, a.scale), (&b.rows, b.scale));
        let mut probs = Vec::new();
        let mut q = Vec::new();
        features("refnd the order", |_| false, &mut q);
        a.score(&q, &mut probs);
        assert!(probs[0] > 0.6, "{probs:?}");
    }
}
