//! What a request is as a whole, beside the words it uses: building something *about* payments
//! ("a pricing table mockup", "a coupon component", "a customers page in the admin") is not
//! doing payments; neither is declining or putting them off ("no payments for now, just build
//! the login"), a hypothetical ("what if we charged later"), or comparing providers ("stripe vs
//! paddle"). Such a request is read as no intent, whichever payment words it holds; the words
//! that decide are data (`[frames]` in `_lexicon.toml`), found by the matcher's one scan.
//!
//! The one structure read here is a verb's object: the words after a build or restyle verb
//! ("add", "make", "write", "change", …) up to a word that ends the object phrase ("on", "to",
//! "with", "so", …) or `object_words` words. If that phrase holds an artifact of app building
//! (page, component, section, table, field, icon, template, copy, …), the request builds that
//! artifact: "add a customers page" builds a page, while "add a Yoga class for $25" and "put a
//! checkout on my landing page" (the artifact comes after "on") do not. An artifact that is
//! payments working ("a checkout page", "a buy button") counts only when restyled ("make the buy
//! button red"), not when added. A working marker ("so people can pay", "real checkout")
//! undoes the design reading.

/// What a frame word is, in the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameWord {
    /// Starts an object phrase and creates it ("add", "build", "put").
    BuildVerb,
    /// Starts an object phrase and changes how an existing thing looks ("make", "change",
    /// "move"); also the subject of a statement about a thing ("the", "my" at the start).
    RestyleVerb,
    /// "the", "my" as the first word: a statement about a thing ("the revenue chart is
    /// broken"), read as a restyle verb there and ignored elsewhere.
    Subject,
    /// A thing apps are built from ("page", "component", "icon").
    Artifact,
    /// An artifact that is payments working when added ("checkout page", "buy button").
    Functional,
    /// Ends an object phrase ("on", "with", "so").
    ObjectEnd,
    /// A design request wherever it occurs ("mockup", "look like", "just the layout").
    Design,
    /// Payments that should work: undoes a design reading ("so people can pay").
    Working,
    /// Declining payments outright ("no real payments", "no money involved").
    Decline,
    /// Putting something off ("later", "next month", "can wait").
    Deferral,
    /// Turning to other work ("just build", "focus on", "first").
    Redirect,
    /// "what if", "hypothetically".
    Hypothetical,
    /// A payment provider ("stripe", "paypal"), for comparisons.
    Provider,
    /// Comparing ("vs", "which is better", "or").
    Comparison,
    /// An opinion asked about a provider ("a good company", "trustworthy").
    Opinion,
}

/// The frame of a whole request that makes it no intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frame {
    Design,
    Declined,
    Deferred,
    Hypothetical,
    Comparison,
}

impl Frame {
    /// The small-talk kind it is answered as: putting payments off or declining them is a
    /// refusal; the others get the fallback.
    pub fn kind(self) -> &'static str {
        match self {
            Frame::Design => "design",
            Frame::Declined | Frame::Deferred => "refusal",
            Frame::Hypothetical => "hypothetical",
            Frame::Comparison => "comparison",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Frame::Design => "design",
            Frame::Declined => "declined",
            Frame::Deferred => "deferred",
            Frame::Hypothetical => "hypothetical",
            Frame::Comparison => "comparison",
        }
    }
}

/// A frame word found in the normalized text (word-bounded): `[start, end)` and what it is.
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameHit {
    pub start: u32,
    pub end: u32,
    pub word: FrameWord,
}

/// The frame of the request whose frame words are `hits` (in any order), with the byte range
/// that decided it; `words_between(from, to)` counts the words starting in `text[from + 1..=to]`.
pub(super) fn read(
    hits: &mut [FrameHit],
    object_words: usize,
    words_between: impl Fn(usize, usize) -> usize,
) -> Option<(Frame, (u32, u32))> {
    if hits.is_empty() {
        return None;
    }
    hits.sort_unstable_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
    let first = |w: FrameWord| hits.iter().find(|h| h.word == w);
    let span = |h: &FrameHit| (h.start, h.end);
    if let Some(h) = first(FrameWord::Decline) {
        return Some((Frame::Declined, span(h)));
    }
    if let (Some(d), Some(_)) = (first(FrameWord::Deferral), first(FrameWord::Redirect)) {
        return Some((Frame::Deferred, span(d)));
    }
    if let Some(h) = first(FrameWord::Hypothetical) {
        return Some((Frame::Hypothetical, span(h)));
    }
    if let Some(h) = first(FrameWord::Opinion) {
        return Some((Frame::Comparison, span(h)));
    }
    if let Some(c) = first(FrameWord::Comparison) {
        let mut providers = hits.iter().filter(|h| h.word == FrameWord::Provider);
        if let (Some(a), Some(b)) = (providers.next(), providers.next())
            && a.start != b.start
        {
            return Some((Frame::Comparison, (a.start.min(c.start), b.end.max(c.end))));
        }
    }
    if first(FrameWord::Working).is_some() {
        return None;
    }
    if let Some(h) = first(FrameWord::Design) {
        return Some((Frame::Design, span(h)));
    }
    // A verb whose object is an artifact.
    for (i, verb) in hits.iter().enumerate() {
        let restyle = match verb.word {
            FrameWord::BuildVerb => false,
            FrameWord::RestyleVerb => true,
            _ => continue,
        };
        for h in &hits[i + 1..] {
            if h.start < verb.end {
                continue;
            }
            if words_between(verb.end as usize - 1, h.start as usize) > object_words {
                break;
            }
            match h.word {
                FrameWord::ObjectEnd => break,
                FrameWord::Artifact => {
                    let functional = hits.iter().any(|f| {
                        f.word == FrameWord::Functional && f.start <= h.start && f.end >= h.end
                    });
                    if restyle || !functional {
                        return Some((Frame::Design, (verb.start, h.end)));
                    }
                }
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(text: &str, word: &str, kind: FrameWord) -> FrameHit {
        let start = text.find(word).unwrap() as u32;
        FrameHit {
            start,
            end: start + word.len() as u32,
            word: kind,
        }
    }

    fn words(text: &str) -> impl Fn(usize, usize) -> usize + '_ {
        move |from, to| {
            text.as_bytes()[from..=to.min(text.len() - 1)]
                .windows(2)
                .filter(|w| w[0] == b' ' && w[1] != b' ')
                .count()
        }
    }

    #[test]
    fn an_artifact_in_the_object_is_a_design_request() {
        use FrameWord::*;
        let t = "add a customers page in the admin";
        let mut hits = [
            hit(t, "add", BuildVerb),
            hit(t, "page", Artifact),
            hit(t, "in", ObjectEnd),
        ];
        assert_eq!(
            read(&mut hits, 6, words(t)).map(|f| f.0),
            Some(Frame::Design)
        );

        // After the end of the object it is where the thing goes, not what is built.
        let t = "put a checkout on my landing page";
        let mut hits = [
            hit(t, "put", BuildVerb),
            hit(t, "on", ObjectEnd),
            hit(t, "page", Artifact),
        ];
        assert_eq!(read(&mut hits, 6, words(t)), None);

        // A functional artifact is payments when added, design when restyled.
        let t = "add a buy button";
        let mut hits = [
            hit(t, "add", BuildVerb),
            hit(t, "buy button", Functional),
            hit(t, "button", Artifact),
        ];
        assert_eq!(read(&mut hits, 6, words(t)), None);
        let t = "make the buy button red";
        let mut hits = [
            hit(t, "make", RestyleVerb),
            hit(t, "buy button", Functional),
            hit(t, "button", Artifact),
        ];
        assert_eq!(
            read(&mut hits, 6, words(t)).map(|f| f.0),
            Some(Frame::Design)
        );
    }

    #[test]
    fn declining_deferring_and_comparing() {
        use FrameWord::*;
        let t = "payments later just build the login";
        let mut hits = [hit(t, "later", Deferral), hit(t, "just build", Redirect)];
        assert_eq!(
            read(&mut hits, 6, words(t)).map(|f| f.0),
            Some(Frame::Deferred)
        );
        let t = "come back to this later";
        let mut hits = [hit(t, "later", Deferral)];
        assert_eq!(read(&mut hits, 6, words(t)), None);
        let t = "stripe vs paddle";
        let mut hits = [
            hit(t, "stripe", Provider),
            hit(t, "vs", Comparison),
            hit(t, "paddle", Provider),
        ];
        assert_eq!(
            read(&mut hits, 6, words(t)).map(|f| f.0),
            Some(Frame::Comparison)
        );
        let t = "subs started vs cancelled";
        let mut hits = [hit(t, "vs", Comparison)];
        assert_eq!(read(&mut hits, 6, words(t)), None);
    }
}
