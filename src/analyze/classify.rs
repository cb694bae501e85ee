//! Classification: logits to probabilities.

/// The most classes a classifier may have: probabilities live in a fixed
/// array, so a result is made without allocating (bundles with more
/// labels are refused at load).
pub const MAX_CLASSES: usize = 32;

/// Probabilities per label and the top class.
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    pub probabilities: heapless::Vec<f32, MAX_CLASSES>,
    pub top: usize,
    /// Top probability reached the model's `min_confidence`.
    pub confident: bool,
}

impl Classification {
    /// A classification from given probabilities (tests, goldens).
    pub fn from_probabilities(p: &[f32], top: usize, confident: bool) -> Classification {
        Classification {
            probabilities: p.iter().copied().take(MAX_CLASSES).collect(),
            top,
            confident,
        }
    }
}

/// The X-ray mode's analyzer: softmax and the top class, confident when
/// its probability reaches `min_confidence`.
pub struct Classifier {
    pub min_confidence: f32,
}

impl super::Analyzer for Classifier {
    fn analyze(&mut self, e: &super::Evidence<'_>) -> Option<super::Verdict> {
        classify(e.output, self.min_confidence).map(super::Verdict::Classification)
    }
}

/// Numerically stable softmax; `None` for empty, non-finite or too many
/// logits (a model fault must never become a made-up class).
pub fn classify(logits: &[f32], min_confidence: f32) -> Option<Classification> {
    if logits.is_empty() || logits.len() > MAX_CLASSES || logits.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probabilities: heapless::Vec<f32, MAX_CLASSES> =
        logits.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = probabilities.iter().sum();
    for p in probabilities.iter_mut() {
        *p /= sum;
    }
    let top = probabilities
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)?;
    Some(Classification {
        confident: probabilities[top] >= min_confidence,
        top,
        probabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_picks_max() {
        let c = classify(&[1.0, 3.0, 0.5, -2.0], 0.5).unwrap();
        assert_eq!(c.top, 1);
        assert!((c.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(c.confident);
        assert!(!classify(&[0.0, 0.0, 0.0, 0.0], 0.5).unwrap().confident);
        assert!(classify(&[f32::NAN, 1.0], 0.5).is_none());
        assert!(classify(&[], 0.5).is_none());
        assert!(classify(&[0.0; MAX_CLASSES + 1], 0.5).is_none());
    }
}
