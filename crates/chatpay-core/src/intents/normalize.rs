//! Turns what a person typed into the text the matcher reads: lowercase ASCII-ish words separated
//! by single spaces, with contractions and slang expanded ("wanna" -> "want to"), common
//! misspellings fixed, punctuation and emoji removed. Every byte of the result remembers where in
//! the original it came from, so a match can point at what the person wrote.

use super::scan::Literals;

/// Word-level replacements, compiled once.
#[derive(Debug, Clone)]
pub struct Normalizer {
    replace: Literals,
    with: Vec<String>,
    /// A bit per pair of bytes a key can start with (see [`Normalizer::may_start_key`]).
    key_starts: Box<[u64]>,
}

/// Where a word's first two bytes fall in [`Normalizer::key_starts`]; past the text's end the
/// second byte reads as 0.
fn pair_index(first: u8, second: u8) -> usize {
    usize::from(first) << 8 | usize::from(second)
}

/// A normalized utterance.
#[derive(Debug, Default, Clone)]
pub struct Normalized {
    pub text: String,
    /// For each byte of `text`, the byte offset in the original it came from.
    origin: Vec<u32>,
}

impl Normalized {
    /// The original byte range that `text[start..end]` came from.
    pub fn original_span(&self, original: &str, start: usize, end: usize) -> (usize, usize) {
        if self.origin.is_empty() || start >= end {
            return (0, 0);
        }
        let s = self.origin[start.min(self.origin.len() - 1)] as usize;
        let last = self.origin[(end - 1).min(self.origin.len() - 1)] as usize;
        // Extend to the end of the original character (and word) the last byte came from.
        let mut e = last;
        let bytes = original.as_bytes();
        while e < bytes.len() && !is_word_break(original, e) {
            e += original[e..].chars().next().map_or(1, char::len_utf8);
        }
        (s, e.max(s))
    }

    /// How many words further on byte `to` of `text` is than byte `from`: the words that start
    /// in `text[from + 1..=to]`. (Counted when asked, which is rarely: only a negation cue
    /// asks it.)
    pub fn words_between(&self, from: usize, to: usize) -> usize {
        let text = self.text.as_bytes();
        let to = to.min(text.len().saturating_sub(1));
        if from >= to {
            return 0;
        }
        text[from..=to]
            .windows(2)
            .filter(|w| w[0] == b' ' && w[1] != b' ')
            .count()
    }
    /// The bytes of `text` (word breaks) that came from clause punctuation in `original` (`,`
    /// `;` `.` `!` `?` `:`, a dash), not a separator inside a number ("1,299.99"), into `out`:
    /// a clause ends there, and with it a negation's reach and a verb's object.
    pub fn clause_breaks(&self, original: &str, out: &mut Vec<u32>) {
        out.clear();
        let bytes = original.as_bytes();
        for (at, &b) in self.text.as_bytes().iter().enumerate() {
            if b != b' ' {
                continue;
            }
            let Some(&o) = self.origin.get(at) else {
                continue;
            };
            let o = o as usize;
            let Some(&c) = bytes.get(o) else { continue };
            let digits = o > 0
                && bytes[o - 1].is_ascii_digit()
                && bytes.get(o + 1).is_some_and(u8::is_ascii_digit);
            let clause = matches!(c, b',' | b';' | b'.' | b'!' | b'?' | b':')
                || original[o..].starts_with('—')
                || original[o..].starts_with('–');
            if clause && !digits {
                out.push(at as u32);
            }
        }
    }
}

fn is_word_break(s: &str, at: usize) -> bool {
    s[at..]
        .chars()
        .next()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '\'' || c == '’' || c == '_'))
}

/// Folds a character to what the matcher reads; `None` means "word break".
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => "a",
        'ç' | 'Ç' => "c",
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => "e",
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => "i",
        'ñ' | 'Ñ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => "o",
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => "u",
        'ý' | 'ÿ' | 'Ý' => "y",
        'ß' => "ss",
        '’' | '‘' | '`' | '´' => "'",
        '💳' => "card",
        '💰' | '💵' | '💸' | '🤑' | '💲' => "money",
        _ => return None,
    })
}

impl Normalizer {
    /// `pairs` maps a word or phrase (already lowercase) to what it means.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Normalizer {
        let (from, with): (Vec<String>, Vec<String>) = pairs
            .into_iter()
            .map(|(f, t)| (Self::fold_only(f), t.to_owned()))
            // A key with no word characters could never match a whole word.
            .filter(|(f, _)| !f.trim().is_empty())
            .unzip();
        let replace = Literals::anchored(&from).expect("replacement table compiles");
        let mut key_starts = vec![0u64; (1 << 16) / 64].into_boxed_slice();
        let mut set = |i: usize| key_starts[i / 64] |= 1 << (i % 64);
        for key in &from {
            match *key.as_bytes() {
                [first, second, ..] => set(pair_index(first, second)),
                // A one-byte key is a whole word: what follows is a word end.
                [first] => {
                    for end in [0, b' ', b'\''] {
                        set(pair_index(first, end));
                    }
                }
                [] => {}
            }
        }
        Normalizer {
            replace,
            with,
            key_starts,
        }
    }

    /// Whether a replacement key can start at `src[at..]`, from its first two bytes: one bit
    /// test rejects many words before a walk of the replacement automaton.
    fn may_start_key(&self, src: &[u8], at: usize) -> bool {
        let i = pair_index(src[at], src.get(at + 1).copied().unwrap_or(0));
        self.key_starts[i / 64] & (1 << (i % 64)) != 0
    }

    /// Lowercases and folds without replacements (for table keys).
    fn fold_only(s: &str) -> String {
        let mut out = Normalized::default();
        first_pass(s, &mut out);
        out.text
    }

    /// Normalizes `input` into `out` (reusing its buffers).
    pub fn normalize_into(&self, input: &str, scratch: &mut Normalized, out: &mut Normalized) {
        first_pass(input, scratch);
        out.text.clear();
        out.origin.clear();
        let src = scratch.text.as_bytes();
        // At each word start, the longest key that ends at a word end. A possessive or
        // contraction may follow ("stirpe's"); copy_plain drops it later.
        let ends_word = |e: usize| e == src.len() || src[e] == b' ' || src[e] == b'\'';
        let mut copied = 0;
        let mut at = 0;
        while at < src.len() {
            let found = if self.may_start_key(src, at) {
                self.replace.longest_at(src, at, ends_word)
            } else {
                None
            };
            if let Some((end, pattern)) = found {
                copy_plain(scratch, copied, at, out);
                push_replacement(out, &self.with[pattern as usize], scratch.origin[at]);
                copied = end;
                at = end;
            }
            // On to the next word.
            match src[at..].iter().position(|&b| b == b' ') {
                Some(space) => at += space + 1,
                None => break,
            }
        }
        if copied == 0 && !src.contains(&b'\'') {
            // Nothing to replace or drop: the first pass is the result.
            std::mem::swap(scratch, out);
        } else {
            copy_plain(scratch, copied, src.len(), out);
        }
        while out.text.ends_with(' ') {
            out.text.pop();
            out.origin.pop();
        }
    }

    /// Normalizes into a fresh value.
    ///
    /// # Examples
    /// ```
    /// use chatpay_core::intents::Normalizer;
    /// let n = Normalizer::new([("wanna", "want to"), ("paymnets", "payments")]);
    /// assert_eq!(n.normalize("I WANNA add paymnets!! 💳").text, "i want to add payments card");
    /// ```
    pub fn normalize(&self, input: &str) -> Normalized {
        let mut scratch = Normalized::default();
        let mut out = Normalized::default();
        self.normalize_into(input, &mut scratch, &mut out);
        out
    }
}

fn push_replacement(out: &mut Normalized, s: &str, from: u32) {
    for b in s.bytes() {
        if b == b' ' && (out.text.is_empty() || out.text.ends_with(' ')) {
            continue;
        }
        out.text.push(b as char);
        out.origin.push(from);
    }
}

/// Appends `text[from..to]` of `src` with its origins.
fn push_slice(src: &Normalized, from: usize, to: usize, out: &mut Normalized) {
    if from < to {
        out.text.push_str(&src.text[from..to]);
        out.origin.extend_from_slice(&src.origin[from..to]);
    }
}

/// Copies `scratch.text[from..to]`, dropping apostrophes ("stripe's" -> "stripe", "cust'mers" ->
/// "custmers") and never doubling a space.
fn copy_plain(scratch: &Normalized, mut from: usize, to: usize, out: &mut Normalized) {
    let src = scratch.text.as_bytes();
    if from < to && src[from] == b' ' && (out.text.is_empty() || out.text.ends_with(' ')) {
        from += 1;
    }
    while from < to {
        match src[from..to].iter().position(|&b| b == b'\'') {
            None => {
                push_slice(scratch, from, to, out);
                return;
            }
            Some(at) => {
                let quote = from + at;
                push_slice(scratch, from, quote, out);
                // A possessive "'s" goes entirely.
                let possessive = quote + 1 < to
                    && src[quote + 1] == b's'
                    && (quote + 2 >= src.len() || src[quote + 2] == b' ');
                from = quote + if possessive { 2 } else { 1 };
            }
        }
    }
}

/// What each ASCII byte becomes: its lowercase form if it is part of a word, a space for a word
/// break (256 entries, so that indexing by a byte needs no bounds check; the upper half is
/// never read).
const ASCII: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphanumeric() || c == b'\'' || c == b'_' {
            c.to_ascii_lowercase()
        } else {
            b' '
        };
        b += 1;
    }
    t
};

/// Lowercase, fold accents and apostrophes, turn everything that is not part of a word into a
/// single space. Works on bytes (one table lookup per ASCII byte) and hands the buffer back as
/// a `String` without copying.
fn first_pass(input: &str, out: &mut Normalized) {
    let mut buf = std::mem::take(&mut out.text).into_bytes();
    buf.clear();
    buf.reserve(input.len() + 8);
    out.origin.clear();
    out.origin.reserve(input.len() + 8);
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // A run of ASCII, the common case: each byte becomes at most one, written in place with
        // a table lookup and no branch (a word break becomes a space unless one precedes it).
        // (The whole rest, usually: checked a word at a time.)
        let rest = &bytes[i..];
        let run = if rest.is_ascii() {
            rest
        } else {
            &rest[..rest
                .iter()
                .position(|b| !b.is_ascii())
                .unwrap_or(rest.len())]
        };
        let base = buf.len();
        let mut after_space = buf.last().is_none_or(|&l| l == b' ');
        buf.resize(base + run.len(), 0);
        out.origin.resize(base + run.len(), 0);
        let end = base + run.len();
        let (dst, origin) = (&mut buf[base..end], &mut out.origin[base..end]);
        let mut n = 0;
        for (j, &b) in run.iter().enumerate() {
            let m = ASCII[usize::from(b)];
            let word = m != b' ';
            // `n <= j` always; saying so spares the bounds checks.
            let at = n.min(j);
            dst[at] = m;
            origin[at] = (i + j) as u32;
            n += usize::from(word || !after_space);
            after_space = !word;
        }
        buf.truncate(base + n);
        out.origin.truncate(base + n);
        i += run.len();
        if i == bytes.len() {
            break;
        }
        let c = input[i..].chars().next().expect("a char starts here");
        let mut utf8 = [0u8; 4];
        let push = |buf: &mut Vec<u8>, origin: &mut Vec<u32>, s: &[u8]| {
            buf.extend_from_slice(s);
            origin.extend(std::iter::repeat_n(i as u32, s.len()));
        };
        if let Some(folded) = fold(c) {
            // Emoji read as whole words ("card"), accents fold inside a word ("café").
            let standalone = folded.len() > 1 && folded != "ss";
            if standalone && buf.last().is_some_and(|&l| l != b' ') {
                push(&mut buf, &mut out.origin, b" ");
            }
            push(&mut buf, &mut out.origin, folded.as_bytes());
            if standalone {
                push(&mut buf, &mut out.origin, b" ");
            }
        } else if c.is_alphanumeric() {
            for lc in c.to_lowercase() {
                push(
                    &mut buf,
                    &mut out.origin,
                    lc.encode_utf8(&mut utf8).as_bytes(),
                );
            }
        } else if buf.last().is_some_and(|&l| l != b' ') {
            push(&mut buf, &mut out.origin, b" ");
        }
        i += c.len_utf8();
    }
    out.text = String::from_utf8(buf).expect("ASCII bytes and whole UTF-8 characters");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n() -> Normalizer {
        Normalizer::new([
            ("don't", "do not"),
            ("dont", "do not"),
            ("wanna", "want to"),
            ("stirpe", "stripe"),
            ("set up", "setup"),
        ])
    }

    #[test]
    fn expands_folds_and_collapses() {
        let out = n().normalize("  I DON’T wanna set-up Stirpe’s café!!! 🎉 ");
        assert_eq!(out.text, "i do not want to setup stripe cafe");
        assert_eq!(out.words_between(0, out.text.len() - 1), 7);
        assert_eq!(out.words_between(2, 9), 2, "from \"do\" to \"want\"");
        assert_eq!(out.words_between(9, 2), 0);
    }

    #[test]
    fn replacements_respect_word_boundaries() {
        assert_eq!(n().normalize("dontknow").text, "dontknow");
        assert_eq!(n().normalize("stirpes").text, "stirpes");
        // The longest key that ends a word wins; one that would end inside a word ("u r" in
        // "u rock") does not hide a shorter one.
        let n = Normalizer::new([("u", "you"), ("u r", "you are"), ("r", "are")]);
        assert_eq!(n.normalize("u r ok").text, "you are ok");
        assert_eq!(n.normalize("u rock").text, "you rock");
        assert_eq!(n.normalize("ur u").text, "ur you");
    }

    #[test]
    fn spans_point_back_at_the_original() {
        let original = "Hey, I wanna add Payments!";
        let out = n().normalize(original);
        let at = out.text.find("payments").unwrap();
        let (s, e) = out.original_span(original, at, at + "payments".len());
        assert_eq!(&original[s..e], "Payments");
        let at = out.text.find("want to").unwrap();
        let (s, e) = out.original_span(original, at, at + "want to".len());
        assert_eq!(&original[s..e], "wanna");
    }

    #[test]
    fn word_breaks_collapse_across_ascii_and_other_runs() {
        let n = Normalizer::new([] as [(&str, &str); 0]);
        assert_eq!(n.normalize("a—b").text, "a b");
        assert_eq!(n.normalize("¡¡Hola!! — ¿qué?").text, "hola que");
        let original = "  , X ;; y—é ";
        let out = n.normalize(original);
        assert_eq!(out.text, "x y e");
        assert_eq!(out.words_between(0, 2), 1);
        assert_eq!(out.words_between(0, 4), 2);
        assert_eq!(out.words_between(1, 3), 1);
        assert_eq!(out.words_between(3, 99), 1);
        assert_eq!(out.original_span(original, 2, 3), (9, 10));
        assert_eq!(out.original_span(original, 4, 5), (13, 15));
    }

    #[test]
    fn other_scripts_are_kept() {
        assert_eq!(n().normalize("Привет Stripe").text, "привет stripe");
        assert_eq!(n().normalize("").text, "");
        assert_eq!(n().normalize("!!!").text, "");
    }
}
