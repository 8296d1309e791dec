//! Turns what a person typed into the text the matcher reads: lowercase ASCII-ish words separated
//! by single spaces, with contractions and slang expanded ("wanna" -> "want to"), common
//! misspellings fixed, punctuation and emoji removed. Every byte of the result remembers where in
//! the original it came from, so a match can point at what the person wrote.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// Word-level replacements, compiled once.
#[derive(Debug, Clone)]
pub struct Normalizer {
    replace: AhoCorasick,
    with: Vec<String>,
}

/// A normalized utterance.
#[derive(Debug, Default, Clone)]
pub struct Normalized {
    pub text: String,
    /// For each byte of `text`, the byte offset in the original it came from.
    origin: Vec<u32>,
    /// Byte offset in `text` where each word starts.
    pub word_starts: Vec<u32>,
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

    /// Index of the word containing byte `pos` of `text`.
    pub fn word_index(&self, pos: usize) -> usize {
        match self.word_starts.binary_search(&(pos as u32)) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
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
            .unzip();
        let replace = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&from)
            .expect("replacement table compiles");
        Normalizer { replace, with }
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
        out.word_starts.clear();
        let src = scratch.text.as_bytes();
        let mut copied = 0;
        for m in self.replace.find_iter(&scratch.text) {
            let (s, e) = (m.start(), m.end());
            // A possessive or contraction may follow ("stirpe's"); copy_plain drops it later.
            let bounded = (s == 0 || src[s - 1] == b' ')
                && (e == src.len() || src[e] == b' ' || src[e] == b'\'');
            if !bounded {
                continue;
            }
            copy_plain(scratch, copied, s, out);
            let from = scratch.origin[s];
            push_str(out, &self.with[m.pattern().as_usize()], from);
            copied = e;
        }
        copy_plain(scratch, copied, src.len(), out);
        while out.text.ends_with(' ') {
            out.text.pop();
            out.origin.pop();
        }
        let bytes = out.text.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b != b' ' && (i == 0 || bytes[i - 1] == b' ') {
                out.word_starts.push(i as u32);
            }
        }
    }

    /// Normalizes into a fresh value.
    ///
    /// # Examples
    /// ```
    /// use chatpay::intents::Normalizer;
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

fn push_str(out: &mut Normalized, s: &str, from: u32) {
    for b in s.bytes() {
        if b == b' ' && (out.text.is_empty() || out.text.ends_with(' ')) {
            continue;
        }
        out.text.push(b as char);
        out.origin.push(from);
    }
}

/// Copies `scratch.text[from..to]`, dropping apostrophes ("stripe's" -> "stripe", "cust'mers" ->
/// "custmers") and collapsing spaces.
fn copy_plain(scratch: &Normalized, from: usize, to: usize, out: &mut Normalized) {
    let src = scratch.text.as_bytes();
    let mut i = from;
    while i < to {
        let b = src[i];
        if b == b'\'' {
            // A possessive "'s" goes entirely.
            let possessive =
                i + 1 < to && src[i + 1] == b's' && (i + 2 >= src.len() || src[i + 2] == b' ');
            i += if possessive { 2 } else { 1 };
            continue;
        }
        if b == b' ' && (out.text.is_empty() || out.text.ends_with(' ')) {
            i += 1;
            continue;
        }
        // The scratch text is ASCII except for letters of other scripts, copied whole.
        let ch_len = utf8_len(b);
        out.text.push_str(&scratch.text[i..i + ch_len]);
        for _ in 0..ch_len {
            out.origin.push(scratch.origin[i]);
        }
        i += ch_len;
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Lowercase, fold accents and apostrophes, turn everything that is not part of a word into a
/// single space.
fn first_pass(input: &str, out: &mut Normalized) {
    out.text.clear();
    out.origin.clear();
    let space = |out: &mut Normalized, at: usize| {
        if !out.text.is_empty() && !out.text.ends_with(' ') {
            out.text.push(' ');
            out.origin.push(at as u32);
        }
    };
    for (i, c) in input.char_indices() {
        if c.is_ascii() {
            let b = c as u8;
            if b.is_ascii_alphanumeric() || b == b'\'' || b == b'_' {
                out.text.push(b.to_ascii_lowercase() as char);
                out.origin.push(i as u32);
            } else {
                space(out, i);
            }
        } else if let Some(folded) = fold(c) {
            let standalone = folded.len() > 1 && folded != "ss";
            if standalone {
                space(out, i);
            }
            for b in folded.bytes() {
                out.text.push(b as char);
                out.origin.push(i as u32);
            }
            if standalone {
                space(out, i);
            }
        } else if c.is_alphanumeric() {
            for lc in c.to_lowercase() {
                let mut buf = [0u8; 4];
                for _ in lc.encode_utf8(&mut buf).bytes() {
                    out.origin.push(i as u32);
                }
                out.text.push(lc);
            }
        } else {
            space(out, i);
        }
    }
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
        assert_eq!(out.word_starts.len(), 8);
    }

    #[test]
    fn replacements_respect_word_boundaries() {
        assert_eq!(n().normalize("dontknow").text, "dontknow");
        assert_eq!(n().normalize("stirpes").text, "stirpes");
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
    fn other_scripts_are_kept() {
        assert_eq!(n().normalize("Привет Stripe").text, "привет stripe");
        assert_eq!(n().normalize("").text, "");
        assert_eq!(n().normalize("!!!").text, "");
    }
}
